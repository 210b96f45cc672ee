// Package webhook owns Vigil's validating admission webhook: a TLS-only
// fasthttp server that reviews Pods and every pod-template owner, applies
// the Pod Security Standards per namespace mode (enforce or audit), records
// each admitted revision's expected behavior as the initial baseline, opens
// release windows for rollouts, and serves both to the node guards over a
// small JSON API (see Client).
//
// Subpackages: object (reading admitted objects), pss (the checks, also
// buildable as a Wasm guest), store (bbolt persistence).
package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/store"
)

// Config configures a Server. The zero value of every duration and limit
// means its default.
type Config struct {
	// Addr is the TLS listen address, e.g. ":8443" or "127.0.0.1:0".
	Addr string
	// CertFile and KeyFile are the serving key pair (PEM).
	CertFile, KeyFile string
	// StorePath is the bbolt file holding profiles and windows.
	StorePath string
	// WindowDuration is how long a release window stays open (default 30m).
	WindowDuration time.Duration
	// DefaultMode applies to namespaces with no configured or labelled mode.
	DefaultMode Mode
	// NamespaceModes pin namespaces' modes; they win over namespace labels.
	NamespaceModes map[string]Mode

	// ReadTimeout bounds reading one request, TLS handshake included
	// (default 5s); WriteTimeout writing one response (default 5s);
	// IdleTimeout an idle keep-alive connection (default 90s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxBodyBytes caps a request body (default 6 MiB: an object and its
	// old version, each up to etcd's 1.5 MiB, in JSON with headroom).
	MaxBodyBytes int
	// Concurrency caps requests served at once (default 4096).
	Concurrency int

	// Rules, when set, is the admission policy: Wasm rule modules, the Pod
	// Security Standards pack among them (see WasmRules). When nil the
	// native Go checks of webhook/pss run instead, which only tests, the
	// benchmarks' baseline and `--admission-rules native` use.
	Rules AdmissionRules
	// RuleFailure is what a failing rule does to a request [FailOpen].
	RuleFailure FailurePolicy
	// MaxRuleEventBytes bounds the wire-encoded admission event handed to
	// Rules [32 KiB, about 900 containers; a realistic 3-container pod is
	// about 1 KiB]. A guest's time grows with the object (the Go-built PSS
	// pack takes ~1.4 ms of CPU per KiB), and a guest that runs past its
	// deadline is quarantined, which would leave every later request to the
	// failure policy: so a larger object is denied in enforce namespaces
	// (warned in audit ones) without running the rules, whatever the
	// failure policy.
	MaxRuleEventBytes int

	// Profiles, when set, also receives every recorded revision and opened
	// release window, off the admission path (the CRD backend: a
	// crd.Writer). The bbolt store and the local API keep working either
	// way; at start the store's content is re-queued to it, so what a
	// restart or a full queue lost is written eventually.
	Profiles ProfileSink

	// AuditLog receives one JSON line per audit record; nil discards.
	AuditLog io.Writer
	// Logger for operational messages; nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.WindowDuration == 0 {
		c.WindowDuration = 30 * time.Minute
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 90 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 6 << 20
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4096
	}
	if c.MaxRuleEventBytes == 0 {
		c.MaxRuleEventBytes = 32 << 10
	}
	if c.AuditLog == nil {
		c.AuditLog = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ProfileSink receives recorded revisions. Enqueue must not block: it runs
// on the admission path. It reports false when it dropped the update (and
// counted the drop).
type ProfileSink interface {
	Enqueue(wk profile.WorkloadKey, revision string, ps []profile.Expected, w *profile.ReleaseWindow) bool
	// Collectors are registered with the server's metrics.
	Collectors() []prometheus.Collector
}

// Server is the admission webhook. Create it with New, run it with Serve,
// stop it with Close.
type Server struct {
	cfg     Config
	store   *store.Store
	ln      net.Listener
	http    *fasthttp.Server
	metrics *metrics
	handler fasthttp.RequestHandler
	// unmarshal decodes reviews and objects (goccy/go-json; tests swap in
	// encoding/json for the comparison benchmark).
	unmarshal object.Unmarshal
	// stdEncode answers with encoding/json instead of appendResponse (the
	// net/http comparison benchmark's "plain" server).
	stdEncode bool
	// wireBufs pools admission-event buffers ([]byte, valid only during
	// AdmissionRules.EvaluateAdmission).
	wireBufs sync.Pool

	modesMu    sync.RWMutex
	labelModes map[string]Mode

	auditMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
	ready     chan struct{}
}

// New opens the store, loads the certificate and listens on cfg.Addr. The
// server answers nothing until Serve.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if cfg.StorePath == "" {
		return nil, errors.New("webhook: no store path")
	}
	tlsCfg, err := serverTLS(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, labelModes: map[string]Mode{}, ready: make(chan struct{}), unmarshal: gojson.Unmarshal}
	if err := s.loadLabelModes(); err != nil {
		st.Close()
		return nil, err
	}
	s.metrics = newMetrics()
	if cfg.Profiles != nil {
		s.metrics.reg.MustRegister(cfg.Profiles.Collectors()...)
		if err := s.resyncProfiles(); err != nil {
			st.Close()
			return nil, err
		}
	}
	s.handler = s.route
	s.http = &fasthttp.Server{
		Handler:                       s.handler,
		ErrorHandler:                  s.transportError,
		Name:                          "vigil-webhook",
		ReadTimeout:                   cfg.ReadTimeout,
		WriteTimeout:                  cfg.WriteTimeout,
		IdleTimeout:                   cfg.IdleTimeout,
		MaxRequestBodySize:            cfg.MaxBodyBytes,
		Concurrency:                   cfg.Concurrency,
		NoDefaultServerHeader:         false,
		DisableHeaderNamesNormalizing: false,
		ReduceMemoryUsage:             false,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{cfg.Logger},
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	s.ln = tls.NewListener(ln, tlsCfg)
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until ctx is done or Close is called.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	close(s.ready)
	s.cfg.Logger.Info("webhook serving", "addr", s.ln.Addr().String())
	select {
	case <-ctx.Done():
		return s.Close()
	case err := <-errc:
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return err
	}
}

// Close stops accepting, waits for in-flight requests (bounded by the
// write timeout), and closes the store. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+time.Second)
		defer cancel()
		err := s.http.ShutdownWithContext(ctx)
		// Shutdown closes the listener only when Serve ran.
		if lerr := s.ln.Close(); err == nil && lerr != nil && !errors.Is(lerr, net.ErrClosed) {
			err = lerr
		}
		if serr := s.store.Close(); err == nil {
			err = serr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Handler is the request router, for in-process benchmarks and tests.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handler }

// Registry is the server's own Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (s *Server) route(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/validate":
		if !ctx.IsPost() {
			s.fail(ctx, fasthttp.StatusMethodNotAllowed, "method", "POST an AdmissionReview")
			return
		}
		s.validate(ctx)
	case "/healthz":
		ctx.SetBodyString("ok")
	case "/readyz":
		select {
		case <-s.ready:
			ctx.SetBodyString("ok")
		default:
			ctx.Error("not serving", fasthttp.StatusServiceUnavailable)
		}
	case "/metrics":
		s.metrics.handler(ctx)
	case "/v1/profiles":
		s.apiProfiles(ctx)
	case "/v1/windows":
		s.apiWindows(ctx)
	default:
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}

func (s *Server) validate(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	status, body, kind, op, verdict := s.Review(ctx.PostBody())
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	s.metrics.observe(kind, op, verdict, time.Since(start))
}

// Review handles one AdmissionReview body and returns the HTTP status and
// response body. It is the whole admission path minus HTTP, shared by the
// fasthttp server and the net/http comparison in the benchmarks.
func (s *Server) Review(body []byte) (code int, resp []byte, kind, op string, verdict Verdict) {
	req, err := decodeReview(s.unmarshal, body)
	if err != nil {
		s.metrics.decodeErrors.WithLabelValues("review").Inc()
		return fasthttp.StatusBadRequest, errorBody(400, err.Error()), "", "", "bad_request"
	}
	kind, op = req.Kind.Kind, string(req.Operation)
	now := s.cfg.Now()
	o, err := s.review(req, now)
	if err != nil {
		s.metrics.decodeErrors.WithLabelValues("object").Inc()
		return fasthttp.StatusBadRequest, errorBody(400, err.Error()), kind, op, "bad_request"
	}
	for _, v := range o.violations {
		if o.verdict == Denied {
			s.metrics.denials.WithLabelValues(v.Check).Inc()
		}
	}
	if o.storeErr != nil {
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Error("record rollout", "err", o.storeErr, "uid", req.UID)
	}
	if o.recorded {
		s.metrics.revisions.Inc()
	}
	if w := o.window; w != nil {
		s.metrics.windows.Inc()
		s.cfg.Logger.Info("release window", "namespace", w.Workload.Namespace, "workload", w.Workload.Workload,
			"revision", w.Revision, "prev", w.PrevRevision, "changed", w.Changed, "user", w.User)
	}
	for _, a := range []*AuditRecord{o.ruleAudit, o.audit} {
		if a == nil {
			continue
		}
		a.Time, a.UID, a.Kind, a.Namespace, a.Name, a.Operation = now, string(req.UID), kind, req.Namespace, req.Name, op
		a.User, a.Verdict = req.UserInfo.Username, o.verdict
		s.writeAudit(a)
	}
	b, err := o.marshal(s.stdEncode)
	if err != nil {
		// Our own response failed to marshal: a bug, not bad input.
		return fasthttp.StatusInternalServerError, errorBody(500, err.Error()), kind, op, "error"
	}
	return fasthttp.StatusOK, b, kind, op, o.verdict
}

func (s *Server) writeAudit(a *AuditRecord) {
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	b = append(b, '\n')
	s.auditMu.Lock()
	_, err = s.cfg.AuditLog.Write(b)
	s.auditMu.Unlock()
	s.metrics.audits.WithLabelValues(a.Reason).Inc()
	if err != nil {
		s.metrics.auditErrors.Inc()
	}
}

// transportError answers requests fasthttp could not read: an oversized
// body is 413, a timeout 408, anything else 400. Never 5xx for bad input.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	var tooBig *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, "too_large",
			"request body exceeds "+strconv.Itoa(s.cfg.MaxBodyBytes)+" bytes")
	case errors.As(err, &tooBig):
		s.fail(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request header too large")
	case errors.As(err, &netErr) && netErr.Timeout():
		s.fail(ctx, fasthttp.StatusRequestTimeout, "timeout", "request timeout")
	default:
		s.fail(ctx, fasthttp.StatusBadRequest, "http", "malformed HTTP request: "+err.Error())
	}
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, code int, reason, msg string) {
	s.metrics.decodeErrors.WithLabelValues(reason).Inc()
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(errorBody(code, msg))
}

// modeFor resolves a namespace's mode: configured, else labelled, else
// the default.
func (s *Server) modeFor(ns string) Mode {
	if m, ok := s.cfg.NamespaceModes[ns]; ok {
		return m
	}
	s.modesMu.RLock()
	m, ok := s.labelModes[ns]
	s.modesMu.RUnlock()
	if ok {
		return m
	}
	return s.cfg.DefaultMode
}

func (s *Server) setLabelMode(ns, mode string) error {
	if err := s.store.SetNamespaceMode(ns, mode); err != nil {
		return err
	}
	s.modesMu.Lock()
	defer s.modesMu.Unlock()
	if mode == "" {
		delete(s.labelModes, ns)
		return nil
	}
	m, err := ParseMode(mode)
	if err != nil {
		return err
	}
	s.labelModes[ns] = m
	return nil
}

func (s *Server) loadLabelModes() error {
	modes, err := s.store.NamespaceModes()
	if err != nil {
		return err
	}
	for ns, v := range modes {
		m, err := ParseMode(v)
		if err != nil {
			s.cfg.Logger.Warn("stored namespace mode ignored", "namespace", ns, "err", err)
			continue
		}
		s.labelModes[ns] = m
	}
	return nil
}

// ---- metrics ----

type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	latency        prometheus.Histogram
	denials        *prometheus.CounterVec
	decodeErrors   *prometheus.CounterVec
	audits         *prometheus.CounterVec
	auditErrors    prometheus.Counter
	storeErrors    prometheus.Counter
	ruleErrors     prometheus.Counter
	ruleFailClosed prometheus.Counter
	ruleOversized  prometheus.Counter
	revisions      prometheus.Counter
	windows        prometheus.Counter
	handler        fasthttp.RequestHandler
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_requests_total", Help: "Admission reviews by kind, operation and verdict.",
		}, []string{"kind", "operation", "verdict"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_webhook_request_duration_seconds", Help: "Time to decide one admission review, HTTP excluded.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1},
		}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_denials_total", Help: "Denied reviews, by violated check.",
		}, []string{"check"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_decode_errors_total", Help: "Requests rejected as unreadable, by reason.",
		}, []string{"reason"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_webhook_audit_records_total", Help: "Audit records written, by reason.",
		}, []string{"reason"}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_audit_write_errors_total", Help: "Audit records that could not be written.",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_store_errors_total", Help: "Rollouts that could not be recorded (admission was not affected).",
		}),
		ruleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_rule_errors_total", Help: "Admission rule evaluations that failed (see vigil_webhook_rule_fail_closed_total for the denied ones).",
		}),
		ruleFailClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_rule_fail_closed_total", Help: "Requests denied because admission rules failed and the failure policy is closed.",
		}),
		ruleOversized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_rule_oversized_total", Help: "Objects not handed to admission rules because their event exceeds the size limit (denied in enforce namespaces).",
		}),
		revisions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_recorded_revisions_total", Help: "New workload revisions recorded as expected behavior.",
		}),
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_webhook_release_windows_total", Help: "Release windows opened.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.denials, m.decodeErrors, m.audits, m.auditErrors, m.storeErrors, m.ruleErrors,
		m.ruleFailClosed, m.ruleOversized, m.revisions, m.windows, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// knownLabels bounds label values taken from requests, so a client sending
// made-up kinds cannot grow the metric set without limit.
var knownLabels = map[string]bool{
	"Pod": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true, "DaemonSet": true, "Job": true,
	"CronJob": true, "Namespace": true, "": true,
	"CREATE": true, "UPDATE": true, "DELETE": true, "CONNECT": true,
}

func bounded(v string) string {
	if knownLabels[v] {
		return v
	}
	return "other"
}

func (m *metrics) observe(kind, op string, v Verdict, d time.Duration) {
	m.requests.WithLabelValues(bounded(kind), bounded(op), string(v)).Inc()
	m.latency.Observe(d.Seconds())
}

// fasthttpLogger routes fasthttp's connection errors (timeouts, oversized
// bodies: already answered and counted) to debug level.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...))
}

// Run serves cfg until ctx is done: the body of `vigil webhook`.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx)
}

// resyncProfiles queues every revision in the store, with the latest
// window opened for it, to cfg.Profiles: the CRD backend's applies are
// idempotent, and this is how a revision whose write was lost (a kill -9,
// a full queue, the CRD backend enabled late) reaches the cluster.
func (s *Server) resyncProfiles() error {
	type rev struct {
		wk  profile.WorkloadKey
		rev string
	}
	ps, _, err := s.store.Profiles(0, 0)
	if err != nil {
		return fmt.Errorf("resync profiles: %w", err)
	}
	ws, err := s.store.Windows(0, false, s.cfg.Now())
	if err != nil {
		return fmt.Errorf("resync windows: %w", err)
	}
	var order []rev
	byRev := map[rev][]profile.Expected{}
	for _, p := range ps {
		r := rev{profile.WorkloadKey{Namespace: p.Key.Namespace, Workload: p.Key.Workload}, p.Key.Revision}
		if _, ok := byRev[r]; !ok {
			order = append(order, r)
		}
		byRev[r] = append(byRev[r], p.Expected)
	}
	windows := map[rev]*profile.ReleaseWindow{}
	for i := range ws {
		windows[rev{ws[i].Workload, ws[i].Revision}] = &ws[i].ReleaseWindow
	}
	for _, r := range order {
		s.cfg.Profiles.Enqueue(r.wk, r.rev, byRev[r], windows[r])
		delete(windows, r)
	}
	// Windows of revisions whose profiles were recorded before this store
	// (none in practice) go alone.
	for r, w := range windows {
		s.cfg.Profiles.Enqueue(r.wk, r.rev, nil, w)
	}
	return nil
}
