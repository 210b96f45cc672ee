// Package metrics serves the guard's Prometheus /metrics, /healthz and
// /readyz endpoints. It owns no counters itself: each component exposes a
// Stats() snapshot and registers a collector that reads it at scrape time,
// so the numbers come from one place and cannot drift.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the HTTP endpoint.
type Server struct {
	Registry *prometheus.Registry
	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	ready    func() error
	once     sync.Once
	done     chan error
}

// New creates a registry with the Go and process collectors already in it.
func New() *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{Registry: reg, ready: func() error { return errors.New("starting") }}
}

// SetReady installs the readiness check; /readyz answers 503 with its error
// until it returns nil.
func (s *Server) SetReady(f func() error) {
	s.mu.Lock()
	s.ready = f
	s.mu.Unlock()
}

// CollectFunc registers a collector that calls f at each scrape.
func (s *Server) CollectFunc(descs []*prometheus.Desc, f func(ch chan<- prometheus.Metric)) error {
	return s.Registry.Register(&funcCollector{descs: descs, f: f})
}

type funcCollector struct {
	descs []*prometheus.Desc
	f     func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.f(ch) }

// Listen binds addr and serves in the background. Addr() reports the bound
// address (useful with port 0).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		f := s.ready
		s.mu.Unlock()
		if err := f(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	return nil
}

// Addr is the bound address, or "" before Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close shuts the endpoint down. Safe to call twice.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		if e := <-s.done; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	})
	return err
}
