package enforce

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrProcessChanged reports that a pid no longer names the process a
// verdict was about (it exited and the pid was reused).
var ErrProcessChanged = errors.New("process changed (pid reused)")

// ErrProcessGone reports that the target exited before the kill.
var ErrProcessGone = errors.New("process already exited")

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat start times. It is
// 100 on every Linux architecture Vigil supports.
const clockTicks = 100

// StartTicks converts a task start time in nanoseconds since boot (the
// sensor's Process.StartTime) to /proc's clock ticks.
func StartTicks(startNs uint64) uint64 { return startNs / (1e9 / clockTicks) }

// ProcStartTicks reads a process's start time (field 22 of
// /proc/<pid>/stat) in clock ticks since boot.
func ProcStartTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, ErrProcessGone
		}
		return 0, err
	}
	// comm (field 2) may hold spaces and parentheses; fields resume after
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat: no comm", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat start time: %w", pid, err)
	}
	return v, nil
}

// killVerified sends SIGKILL to pid only if it is still the process that
// started at startTicks. The pidfd is opened first: it pins the process,
// so a start time that matches after opening proves the signal reaches the
// intended process and never a successor that reused the pid.
func killVerified(pid int, startTicks uint64) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrProcessGone
		}
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	got, err := ProcStartTicks(pid)
	if err != nil {
		return err
	}
	if got != startTicks {
		return fmt.Errorf("%w: pid %d started at %d, verdict was for %d", ErrProcessChanged, pid, got, startTicks)
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrProcessGone
		}
		return fmt.Errorf("pidfd_send_signal %d: %w", pid, err)
	}
	return nil
}

// probePidfd proves pidfd_open and pidfd_send_signal work by signalling
// the guard itself with signal 0.
func probePidfd() error {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return fmt.Errorf("pidfd_send_signal: %w", err)
	}
	return nil
}
