package sensor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/internal/privtest"
)

// helperEnv selects a behaviour when the test binary re-executes itself as
// a child (see TestMain and helpers_test.go).
const helperEnv = "VIGIL_SENSOR_HELPER"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		fn, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		if err := fn(os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// collector runs a sensor and keeps every event it reports.
type collector struct {
	s      *Sensor
	mu     sync.Mutex
	events []*event.Event
	cancel context.CancelFunc
	done   chan error
}

// requireSensorKernel gates on root, BTF and raw tracepoints. tp_btf
// programs need nothing more on a kernel that has those (the Tracing probe
// itself loads an fentry program, which this host forbids), so a failure
// past this point fails the test.
func requireSensorKernel(t testing.TB) {
	t.Helper()
	privtest.RequireBTF(t)
	privtest.RequireProgramType(t, ebpf.RawTracepoint)
}

func startSensor(t testing.TB, cfg Config) *collector {
	t.Helper()
	requireSensorKernel(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start sensor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- s.Run(ctx, func(e *event.Event) {
			c.mu.Lock()
			c.events = append(c.events, e)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	})
	return c
}

// waitFor returns the first event matching match, failing after a timeout.
func (c *collector) waitFor(t testing.TB, what string, match func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		for _, e := range c.events {
			if match(e) {
				c.mu.Unlock()
				return e
			}
		}
		n := len(c.events)
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event among %d received", what, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// all returns every event matching match seen so far.
func (c *collector) all(match func(*event.Event) bool) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*event.Event
	for _, e := range c.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitExit waits until pid's exit event arrives. Records of one task reach
// the ring buffer in order, so after it every earlier event of pid is in.
func (c *collector) waitExit(t testing.TB, pid uint32) *event.Event {
	t.Helper()
	return c.waitFor(t, fmt.Sprintf("exit of %d", pid), func(e *event.Event) bool {
		return e.Kind == event.KindExit && e.Proc.PID == pid
	})
}

// runHelper re-executes the test binary as a child running the named
// helper, waits for it and returns its pid.
func runHelper(t testing.TB, dir, name string, args ...string) uint32 {
	t.Helper()
	cmd := helperCmd(dir, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", name, err, out)
	}
	return uint32(cmd.Process.Pid)
}

func helperCmd(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	cmd.Dir = dir
	return cmd
}

func of(kind event.Kind, pid uint32) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == kind && e.Proc.PID == pid }
}

func ofPath(kind event.Kind, pid uint32, path string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Kind == kind && e.Proc.PID == pid && e.File.Path == path
	}
}
