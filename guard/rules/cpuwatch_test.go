package rules

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// watchCall runs body on a locked thread under a cpuWatch, as module.call
// does, and returns the cancel cause and the wall time it took.
func watchCall(budget, wallCap time.Duration, body func(ctx context.Context)) (error, time.Duration) {
	type result struct {
		cause error
		took  time.Duration
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		start := time.Now()
		w := newCPUWatch(cancel, budget, wallCap)
		body(ctx)
		w.stop()
		res <- result{context.Cause(ctx), time.Since(start)}
	}()
	r := <-res
	return r.cause, r.took
}

func TestCPUWatchSpinningGuestHitsCPUDeadline(t *testing.T) {
	cause, _ := watchCall(20*time.Millisecond, time.Minute, func(ctx context.Context) {
		for ctx.Err() == nil {
		}
	})
	if !errors.Is(cause, errCPUDeadline) {
		t.Fatalf("cause %v, want errCPUDeadline", cause)
	}
}

// A guest that waits (here: sleeps, as a starved thread would) uses no CPU,
// so only the wall cap ends it, and not before the cap.
func TestCPUWatchIdleGuestOnlyHitsWallCap(t *testing.T) {
	const wallCap = 300 * time.Millisecond
	cause, took := watchCall(20*time.Millisecond, wallCap, func(ctx context.Context) {
		for ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	})
	if !errors.Is(cause, errWallCap) {
		t.Fatalf("cause %v, want errWallCap", cause)
	}
	if took < wallCap {
		t.Fatalf("cancelled after %v, before the %v wall cap", took, wallCap)
	}
}

func TestCPUWatchStopPreventsCancel(t *testing.T) {
	cause, _ := watchCall(5*time.Millisecond, 10*time.Millisecond, func(context.Context) {})
	if cause != nil {
		t.Fatalf("cause %v after a call that finished in time", cause)
	}
	time.Sleep(30 * time.Millisecond) // a late timer must not fire into a stopped watch
}

// The clock id must name the calling thread: reading it from this thread
// agrees with CLOCK_THREAD_CPUTIME_ID.
func TestThreadClockIsTheThreads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < 1e6; i++ {
		_ = i * i
	}
	before := threadCPU()
	got, ok := clockNow(threadClock(unix.Gettid()))
	after := threadCPU()
	if !ok || got < before || got > after {
		t.Fatalf("thread clock %v (ok=%v), want within [%v, %v]", got, ok, before, after)
	}
}
