package sensor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
)

// TestDropsAreCounted overfills a one-page ring buffer while nobody reads
// it and checks the books balance exactly: every open the helper made is
// either sent or counted as dropped, and every sent one is delivered.
func TestDropsAreCounted(t *testing.T) {
	requireSensorKernel(t)
	dir := fileTestDir(t)
	hot := filepath.Join(dir, "hot")
	if err := os.WriteFile(hot, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{RingBufferBytes: os.Getpagesize(), Interest: []Interest{{Prefix: hot, Mode: ReportAlways}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n = 5000
	runHelper(t, dir, "openloop", hot, strconv.Itoa(n))
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	open := st.Kinds[event.KindOpen]
	if open.Sent+open.Dropped != n {
		t.Fatalf("sent %d + dropped %d != %d opens", open.Sent, open.Dropped, n)
	}
	if open.Dropped == 0 {
		t.Fatalf("a one-page ring buffer absorbed %d records unread", n)
	}
	var perCPU uint64
	for _, d := range st.DroppedPerCPU {
		perCPU += d
	}
	if perCPU != st.Dropped || st.Dropped < open.Dropped {
		t.Fatalf("per-CPU drops %d, total %d, open drops %d", perCPU, st.Dropped, open.Dropped)
	}

	var delivered atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(e *event.Event) {
			if e.Kind == event.KindOpen && e.File.Path == hot {
				delivered.Add(1)
			}
		})
	}()
	for deadline := time.Now().Add(10 * time.Second); delivered.Load() < open.Sent && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if delivered.Load() != open.Sent {
		t.Fatalf("delivered %d of %d sent", delivered.Load(), open.Sent)
	}
	st, _ = s.Stats()
	if st.DecodeErrors != 0 || st.Delivered[event.KindOpen] != open.Sent {
		t.Fatalf("decode errors %d, delivered opens %d", st.DecodeErrors, st.Delivered[event.KindOpen])
	}
	t.Logf("%d opens: %d sent, %d dropped (one-page ring, unread)", n, open.Sent, open.Dropped)
}

func TestRunStopsAndCloseIsIdempotent(t *testing.T) {
	requireSensorKernel(t)
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Run(ctx, func(*event.Event) {}); err != nil {
		t.Fatalf("run after ctx end: %v", err)
	}
	// A liveness bound, not a timing measurement: Run must notice the end
	// of ctx without waiting for more events.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %v to return after its context ended", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.Run(context.Background(), func(*event.Event) {}); err != ErrClosed {
		t.Fatalf("run after close: %v, want ErrClosed", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	requireSensorKernel(t)
	for _, cfg := range []Config{
		{RingBufferBytes: 3 << 20},
		{RingBufferBytes: 100},
		{Interest: []Interest{{Prefix: "nope", Mode: ReportAlways}}},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}
