package sensor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/event"
)

// TestDropsAreCounted overfills a 1 MiB ring buffer while nobody reads it
// (8000 records of about 260 bytes need 2 MiB) and checks the books balance
// exactly: every open the helper made is either sent or counted as dropped,
// per kind, per CPU and per cgroup, and every sent one is delivered.
func TestDropsAreCounted(t *testing.T) {
	requireSensorKernel(t)
	dir := fileTestDir(t)
	hot := filepath.Join(dir, "hot")
	if err := os.WriteFile(hot, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{RingBufferBytes: 1 << 20, Interest: []Interest{{Prefix: hot, Mode: ReportAlways}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n = 8000
	cgfd, cgid := testCgroup(t)
	cmd := helperCmd(dir, "openloop", hot, strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openloop: %v\n%s", err, out)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	open := st.Kinds[event.KindOpen]
	if open.Sent+open.Dropped != n {
		t.Fatalf("sent %d + dropped %d != %d opens", open.Sent, open.Dropped, n)
	}
	if open.Dropped == 0 || open.Sent == 0 {
		t.Fatalf("%d opens into a 1 MiB ring: %d sent, %d dropped; want both", n, open.Sent, open.Dropped)
	}
	var perCPU uint64
	for _, d := range st.DroppedPerCPU {
		perCPU += d
	}
	if perCPU != st.Dropped || st.Dropped < open.Dropped {
		t.Fatalf("per-CPU drops %d, total %d, open drops %d", perCPU, st.Dropped, open.Dropped)
	}

	// The helper's own exec and exit records may be lost too.
	if d := st.DroppedByCgroup[cgid]; d < open.Dropped || d > open.Dropped+2 {
		t.Fatalf("cgroup %d charged %d drops, the helper lost %d opens", cgid, d, open.Dropped)
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
	t.Logf("%d opens: %d sent, %d dropped (1 MiB ring, unread)", n, open.Sent, open.Dropped)
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
