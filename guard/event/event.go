// Package event owns Vigil's event model: the typed Event struct that every
// sensor produces, the field registry that names each of its fields once, and
// the compact binary wire format that carries events to Wasm rules.
//
// The registry (see fields.go) is the single source of truth: docs, host
// accessors and the SDK getters in every guest language are generated from it
// by `go run ./guard/event/gen`.
package event

import (
	"net/netip"
	"time"
)

// Kind is the type of an event. Values are part of the Wasm ABI and never
// change meaning; new kinds take new numbers.
type Kind uint16

// Event kinds. Keep in step with bpf/common.h (EV_*), which mirrors them.
const (
	KindInvalid Kind = 0

	// Process.
	KindExec Kind = 1
	KindFork Kind = 2
	KindExit Kind = 3

	// Files.
	KindOpen    Kind = 10
	KindUnlink  Kind = 11
	KindRename  Kind = 12
	KindLink    Kind = 13
	KindSymlink Kind = 14
	KindChmod   Kind = 15

	// Network.
	KindConnect      Kind = 20
	KindAccept       Kind = 21
	KindBind         Kind = 22
	KindListen       Kind = 23
	KindPacketSocket Kind = 24
	KindDupSocket    Kind = 25

	// Privilege.
	KindSetuid     Kind = 30
	KindSetgid     Kind = 31
	KindCapset     Kind = 32
	KindPtrace     Kind = 33
	KindMount      Kind = 34
	KindUmount     Kind = 35
	KindUnshare    Kind = 36
	KindSetns      Kind = 37
	KindModuleLoad Kind = 38
	KindMemfd      Kind = 39

	// Admission: a Kubernetes object under review instead of a kernel event.
	KindAdmission Kind = 100

	// Deviation: a behavior-detection finding (produced in userspace).
	KindDeviation Kind = 110
)

var kindNames = map[Kind]string{
	KindExec: "exec", KindFork: "fork", KindExit: "exit",
	KindOpen: "open", KindUnlink: "unlink", KindRename: "rename", KindLink: "link",
	KindSymlink: "symlink", KindChmod: "chmod",
	KindConnect: "connect", KindAccept: "accept", KindBind: "bind", KindListen: "listen",
	KindPacketSocket: "packet_socket", KindDupSocket: "dup_socket",
	KindSetuid: "setuid", KindSetgid: "setgid", KindCapset: "capset", KindPtrace: "ptrace",
	KindMount: "mount", KindUmount: "umount", KindUnshare: "unshare", KindSetns: "setns",
	KindModuleLoad: "module_load", KindMemfd: "memfd_create",
	KindAdmission: "admission", KindDeviation: "deviation",
}

var kindByName = func() map[string]Kind {
	m := make(map[string]Kind, len(kindNames))
	for k, n := range kindNames {
		m[n] = k
	}
	return m
}()

// String returns the kind's stable name, as used in JSON and rule metadata.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "unknown"
}

// ParseKind returns the kind with the given stable name.
func ParseKind(name string) (Kind, bool) {
	k, ok := kindByName[name]
	return k, ok
}

// Kinds returns every defined kind in ascending order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kindNames))
	for k := Kind(0); k < 256; k++ {
		if _, ok := kindNames[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// Event is one observed behavior with all of its context. Sensors fill the
// kernel-side fields; the process table, container resolver and Kubernetes
// enrichment fill the rest before rules see it.
type Event struct {
	Kind Kind
	// Time is wall-clock time derived from the kernel's monotonic timestamp.
	Time time.Time
	// KTimeNs is the raw bpf_ktime_get_ns timestamp, kept for latency math.
	KTimeNs uint64
	CPU     uint32

	Proc      Process
	Container Container
	K8s       K8s
	File      File
	Net       Net
	Priv      Priv
	// Ret is the syscall's return value where the sensor sees it (exit
	// tracepoints), else 0.
	Ret int64
}

// Process describes the acting task.
type Process struct {
	PID, TID, PPID uint32
	UID, GID       uint32
	EUID, EGID     uint32
	LoginUID       uint32
	Name           string // comm, at most 15 bytes
	Exe            string // resolved executable path
	// ExecPath is the path the program was executed by, as the kernel
	// matched it: the path given to execve, or the interpreter as named on
	// a #! line (exec events). Exe says /bin/busybox for `sh` and `wget`
	// alike; ExecPath's last component tells them apart.
	ExecPath string
	Args     []string
	// ArgsTruncated is set when argv exceeded the sensor's bound.
	ArgsTruncated bool
	Cwd           string
	TTY           uint32 // tty device number, 0 if none
	CgroupID      uint64
	PidNS, MntNS  uint32
	// ExeMemfd is set when the executable is a memfd (fileless exec).
	ExeMemfd bool
	// ExeUpper is set when the executable lives on an overlayfs upper layer,
	// i.e. it was written after the container started (drop-and-exec).
	ExeUpper  bool
	ExitCode  int32
	StartTime uint64 // task start time, ns since boot; with PID it is unique
	// Ancestors lists the parent chain, nearest first, up to a bound.
	Ancestors []Ancestor
}

// Ancestor is one link of a process's parent chain.
type Ancestor struct {
	PID  uint32 `json:"pid"`
	Name string `json:"name"`
	Exe  string `json:"exe,omitempty"`
}

// Container is the container a task runs in; empty on the host.
type Container struct {
	ID      string
	Runtime string // docker, containerd, cri-o, podman, runc
	Name    string
	Image   string
	// ImageDigest is the image's content digest where the runtime knows it.
	ImageDigest string
}

// K8s is Kubernetes context for a container that belongs to a pod.
type K8s struct {
	PodUID        string
	Namespace     string
	Pod           string
	ContainerName string
	// Workload is the owning controller, for example "Deployment/web".
	Workload string
	// Revision is the pod-template hash or image digest of the workload.
	Revision string
}

// File describes the file an event acts on.
type File struct {
	Path string
	// NewPath is the destination of rename, link and symlink.
	NewPath string
	Flags   uint32 // open(2) flags
	Mode    uint32 // open(2) mode, or chmod mode
}

// Net describes a socket operation.
type Net struct {
	Family   uint16 // AF_INET, AF_INET6, AF_PACKET, AF_UNIX
	Proto    uint16 // IPPROTO_TCP, IPPROTO_UDP, or ethertype for AF_PACKET
	SockType uint16 // SOCK_STREAM, SOCK_DGRAM, SOCK_RAW
	Src      netip.AddrPort
	Dst      netip.AddrPort
	// FD is the socket's descriptor; for dup_socket, the target descriptor
	// (0, 1 or 2).
	FD      int32
	Backlog int32
}

// Priv describes a privilege-relevant operation.
type Priv struct {
	// Op names the syscall, e.g. "setresuid", "finit_module".
	Op string
	// IDs holds the uid/gid arguments (real, effective, saved), -1 = unchanged.
	IDs [3]int64
	// Caps holds capset's effective, permitted and inheritable sets.
	Caps [3]uint64
	// Request and Target describe ptrace.
	Request   int64
	TargetPID uint32
	// Flags carries unshare/setns/mount/memfd flags.
	Flags uint64
	// Source, Target and FSType describe mount; Target also umount.
	Source, Target, FSType string
	// Name is the memfd name or kernel module name.
	Name string
}

// InContainer reports whether the event comes from inside a container.
func (e *Event) InContainer() bool { return e.Container.ID != "" }
