// Package enforce owns Vigil's enforcement: it resolves the effective mode
// (enforce, audit, off) per workload and rule, probes every enforcement
// backend on this node at start-up, compiles deny decisions into the shared
// BPF maps, and falls back along a documented ladder:
//
//  1. BPF-LSM hooks deny exec, open, connect, ptrace, mount, module load
//     and setuid in the kernel with EPERM.
//  2. Without BPF-LSM: fanotify permission events deny exec and open,
//     cgroup sock_addr programs deny connect/sendmsg/bind, and an exec
//     tracepoint kills denied executables with an in-kernel SIGKILL.
//  3. When no in-kernel decision is possible: a verdict kill from
//     userspace through a pidfd, checked against the process start time.
//
// A workload can also be locked to an exec allow-list (Enforcer.Lock, the
// baseline profile lock): BPF-LSM denies anything else with EPERM, exec_kill
// kills it without LSM, and exec_kill checks argv[0] of multi-call binaries
// on both rungs.
//
// In audit mode the same programs record "would have denied" and allow.
// It also persists those records (AuditStore) for the promotion report.
package enforce

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Backend is one rung of the enforcement ladder. Values match the BACKEND_*
// constants in bpf/enforce/enforce.h.
type Backend uint8

// Backends.
const (
	BackendLSM        Backend = 1 // BPF-LSM hooks
	BackendCgroupSock Backend = 2 // cgroup sock_addr programs
	BackendExecKill   Backend = 3 // sched_process_exec + bpf_send_signal
	BackendFanotify   Backend = 4 // fanotify permission events
	BackendPidfd      Backend = 5 // userspace verdict kill
	backendMax                = BackendPidfd
)

var backendNames = map[Backend]string{
	BackendLSM: "lsm", BackendCgroupSock: "cgroup_sock", BackendExecKill: "exec_kill",
	BackendFanotify: "fanotify", BackendPidfd: "pidfd",
}

func (b Backend) String() string {
	if n, ok := backendNames[b]; ok {
		return n
	}
	return fmt.Sprintf("Backend(%d)", b)
}

// ParseBackend parses a backend name as used in config (`require: [lsm]`).
func ParseBackend(s string) (Backend, error) {
	for b, n := range backendNames {
		if n == strings.ToLower(strings.TrimSpace(s)) {
			return b, nil
		}
	}
	return 0, fmt.Errorf("unknown enforcement backend %q", s)
}

// Backends lists every backend in ladder order.
func Backends() []Backend {
	return []Backend{BackendLSM, BackendCgroupSock, BackendExecKill, BackendFanotify, BackendPidfd}
}

// Sentinel errors a caller decides on.
var (
	// ErrLSMUnavailable reports that BPF-LSM cannot enforce on this node:
	// "bpf" is not among the active LSMs or its programs do not load.
	ErrLSMUnavailable = errors.New("bpf-lsm unavailable")
	// ErrBackendRequired reports that a backend the config requires is
	// not active, so enforce mode refuses to start rather than degrade.
	ErrBackendRequired = errors.New("required enforcement backend unavailable")
	// ErrProtected reports a workload the enforcer never acts on.
	ErrProtected = errors.New("protected workload")
)

// Status is one backend's probe result.
type Status struct {
	Backend Backend `json:"backend"`
	Active  bool    `json:"active"`
	// Covers lists what the backend enforces on this node when active.
	Covers []string `json:"covers,omitempty"`
	// Reason says why the backend is inactive, from the real probe.
	Reason string `json:"reason,omitempty"`
}

// MarshalText lets Backend appear by name in JSON.
func (b Backend) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses a backend name.
func (b *Backend) UnmarshalText(p []byte) error {
	v, err := ParseBackend(string(p))
	*b = v
	return err
}

// Report is the result of probing every backend on this node.
type Report struct {
	Backends []Status `json:"backends"`
	// LSMs is the content of /sys/kernel/security/lsm.
	LSMs string `json:"lsms"`
}

// Active reports whether backend b probed active.
func (r Report) Active(b Backend) bool {
	for _, s := range r.Backends {
		if s.Backend == b {
			return s.Active
		}
	}
	return false
}

// Status returns b's probe result.
func (r Report) Status(b Backend) Status {
	for _, s := range r.Backends {
		if s.Backend == b {
			return s
		}
	}
	return Status{Backend: b, Reason: "not probed"}
}

// Require returns ErrBackendRequired (wrapping ErrLSMUnavailable for lsm)
// when any of the required backends is inactive.
func (r Report) Require(required []Backend) error {
	var missing []string
	lsm := false
	for _, b := range required {
		if !r.Active(b) {
			missing = append(missing, fmt.Sprintf("%s (%s)", b, r.Status(b).Reason))
			lsm = lsm || b == BackendLSM
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	err := fmt.Errorf("%w: %s", ErrBackendRequired, strings.Join(missing, ", "))
	if lsm {
		return fmt.Errorf("%w; %w", err, ErrLSMUnavailable)
	}
	return err
}

// String renders the report as `vigil status` prints it.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "active LSMs: %s\n", r.LSMs)
	for _, s := range r.Backends {
		state := "active"
		detail := strings.Join(s.Covers, ", ")
		if !s.Active {
			state, detail = "inactive", s.Reason
		}
		fmt.Fprintf(&b, "  %-12s %-8s %s\n", s.Backend, state, detail)
	}
	return b.String()
}

// Collectors returns Prometheus collectors for the report:
// vigil_enforce_backend_active{backend=...} is 1 or 0.
func (r Report) Collectors() []prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vigil_enforce_backend_active",
		Help: "Whether an enforcement backend probed active on this node (1) or not (0).",
	}, []string{"backend"})
	for _, s := range r.Backends {
		v := 0.0
		if s.Active {
			v = 1
		}
		g.WithLabelValues(s.Backend.String()).Set(v)
	}
	return []prometheus.Collector{g}
}
