package rules

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Causes with which a cpuWatch cancels a guest call.
var (
	// errCPUDeadline: the guest's thread used the whole CPU budget.
	errCPUDeadline = errors.New("cpu deadline")
	// errWallCap: the wall-clock cap passed before the budget was used,
	// so the node, not the guest, is slow.
	errWallCap = errors.New("wall-clock cap")
)

// cpuWatch bounds one guest call by the CPU time of the thread running it,
// not by wall time. A wall-clock deadline mistakes a starved node for a
// stuck guest: at load 20 on two cores a healthy 1 ms batch can wait past
// 100 ms for a CPU, and quarantining the rule pack then loses detection
// exactly when the node is under stress. The watch wakes when the budget
// could have been spent, reads the guest thread's CPU clock, and either
// cancels (errCPUDeadline) or sleeps for the rest of the budget; a separate
// wall cap still bounds how long one batch can hold its caller
// (errWallCap).
//
// The caller must hold its OS thread (runtime.LockOSThread) from newCPUWatch
// until stop, so the clock read is the guest's.
type cpuWatch struct {
	clock   int32 // the calling thread's CPU clock id
	start   time.Duration
	budget  time.Duration
	wallEnd time.Time
	cancel  context.CancelCauseFunc

	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
}

// threadClock is the clock id of thread tid's CPU time (Linux
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)), readable from any thread.
func threadClock(tid int) int32 {
	const cpuclockSched, perThread = 2, 4
	return ^int32(tid)<<3 | cpuclockSched | perThread
}

func clockNow(clock int32) (time.Duration, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(clock, &ts) != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// newCPUWatch starts watching the calling thread; cancel is called with
// errCPUDeadline or errWallCap.
func newCPUWatch(cancel context.CancelCauseFunc, budget, wallCap time.Duration) *cpuWatch {
	w := &cpuWatch{clock: threadClock(unix.Gettid()), budget: budget, cancel: cancel,
		wallEnd: time.Now().Add(wallCap)}
	w.start, _ = clockNow(w.clock)
	w.timer = time.AfterFunc(budget, w.check)
	return w
}

func (w *cpuWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now, ok := clockNow(w.clock)
	used := now - w.start
	switch {
	case !ok || used >= w.budget:
		// An unreadable clock means the thread is gone or the kernel
		// refuses per-thread clocks: fall back to the wall deadline.
		w.cancel(errCPUDeadline)
	case !time.Now().Before(w.wallEnd):
		w.cancel(errWallCap)
	default:
		// The earliest the budget can run out is after the rest of it.
		w.timer.Reset(min(max(w.budget-used, time.Millisecond), time.Until(w.wallEnd)+time.Millisecond))
	}
}

// stop ends the watch; after it returns, cancel is never called.
func (w *cpuWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.timer.Stop()
}
