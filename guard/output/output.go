// Package output delivers alerts to the places on-call engineers already
// look: JSON lines (stdout or a rotated file), HTTP POST in the
// Falcosidekick payload format, and syslog. Every sink is asynchronous behind
// a bounded queue, so a slow sink never stalls the guard; what a full queue
// refuses is counted per sink, never dropped silently.
package output

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/vigilsec/vigil/guard/alert"
)

// Sink receives alerts. Send must not be called after Close.
type Sink interface {
	// Name identifies the sink in metrics and logs.
	Name() string
	// Write delivers one alert synchronously.
	Write(*alert.Alert) error
	Close() error
}

// Stats counts what happened to alerts, per sink.
type Stats struct {
	Sink    string
	Sent    uint64
	Dropped uint64 // queue full
	Failed  uint64 // the sink returned an error
}

// Fanout sends every alert to each sink through its own bounded queue and
// goroutine.
type Fanout struct {
	queues []*queue
	once   sync.Once
	wg     sync.WaitGroup
}

type queue struct {
	sink                 Sink
	ch                   chan *alert.Alert
	sent, dropped, fails atomic.Uint64
	lastErr              atomic.Value // error
}

// NewFanout starts one delivery goroutine per sink. depth bounds each queue.
func NewFanout(depth int, sinks ...Sink) *Fanout {
	if depth <= 0 {
		depth = 4096
	}
	f := &Fanout{}
	for _, s := range sinks {
		q := &queue{sink: s, ch: make(chan *alert.Alert, depth)}
		f.queues = append(f.queues, q)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for a := range q.ch {
				if err := q.sink.Write(a); err != nil {
					q.fails.Add(1)
					q.lastErr.Store(err)
					continue
				}
				q.sent.Add(1)
			}
		}()
	}
	return f
}

// Send enqueues a on every sink without blocking.
func (f *Fanout) Send(a *alert.Alert) {
	for _, q := range f.queues {
		select {
		case q.ch <- a:
		default:
			q.dropped.Add(1)
		}
	}
}

// Stats reports per-sink counters.
func (f *Fanout) Stats() []Stats {
	out := make([]Stats, 0, len(f.queues))
	for _, q := range f.queues {
		out = append(out, Stats{Sink: q.sink.Name(), Sent: q.sent.Load(), Dropped: q.dropped.Load(), Failed: q.fails.Load()})
	}
	return out
}

// Close drains the queues, then closes every sink. Safe to call twice.
func (f *Fanout) Close() error {
	var errs []error
	f.once.Do(func() {
		for _, q := range f.queues {
			close(q.ch)
		}
		f.wg.Wait()
		for _, q := range f.queues {
			if err := q.sink.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
