//go:generate go run ./gen -root ../..

package event

import (
	"fmt"
	"net/netip"
	"sort"
)

// Type is the wire type of a field's value.
type Type uint8

// Field value types. Values are part of the Wasm ABI.
const (
	TypeU64     Type = 1 // 8 bytes, little endian
	TypeI64     Type = 2 // 8 bytes, little endian, two's complement
	TypeBool    Type = 3 // 1 byte, 0 or 1
	TypeStr     Type = 4 // UTF-8 bytes, no terminator
	TypeStrList Type = 5 // repeated (u16 len, bytes)
	TypeAddr    Type = 6 // 4 bytes (IPv4) or 16 bytes (IPv6), network order
)

func (t Type) String() string {
	switch t {
	case TypeU64:
		return "u64"
	case TypeI64:
		return "i64"
	case TypeBool:
		return "bool"
	case TypeStr:
		return "string"
	case TypeStrList:
		return "string list"
	case TypeAddr:
		return "ip address"
	}
	return "unknown"
}

// FieldID is a field's stable number on the wire. IDs are never reused.
//
// # Notes
//
// Ranges: 1–999 runtime event fields, 1000–1999 admission object fields,
// 2000–2999 behavior-detection fields.
type FieldID uint16

// Field is one entry of the registry.
type Field struct {
	ID   FieldID
	Name string // dotted name, e.g. "proc.name"
	Type Type
	Desc string

	u func(*Event) uint64
	i func(*Event) int64
	b func(*Event) bool
	s func(*Event) string
	l func(*Event) []string
	a func(*Event) netip.Addr
}

// Value returns the field's value in e as a Go value: uint64, int64, bool,
// string, []string or netip.Addr.
func (f *Field) Value(e *Event) any {
	switch f.Type {
	case TypeU64:
		return f.u(e)
	case TypeI64:
		return f.i(e)
	case TypeBool:
		return f.b(e)
	case TypeStr:
		return f.s(e)
	case TypeStrList:
		return f.l(e)
	case TypeAddr:
		return f.a(e)
	}
	return nil
}

// IsZero reports whether the field is empty in e; zero fields are not sent.
func (f *Field) IsZero(e *Event) bool {
	switch f.Type {
	case TypeU64:
		return f.u(e) == 0
	case TypeI64:
		return f.i(e) == 0
	case TypeBool:
		return !f.b(e)
	case TypeStr:
		return f.s(e) == ""
	case TypeStrList:
		return len(f.l(e)) == 0
	case TypeAddr:
		return !f.a(e).IsValid()
	}
	return true
}

func u64(id FieldID, name, desc string, g func(*Event) uint64) Field {
	return Field{ID: id, Name: name, Type: TypeU64, Desc: desc, u: g}
}
func i64(id FieldID, name, desc string, g func(*Event) int64) Field {
	return Field{ID: id, Name: name, Type: TypeI64, Desc: desc, i: g}
}
func boolean(id FieldID, name, desc string, g func(*Event) bool) Field {
	return Field{ID: id, Name: name, Type: TypeBool, Desc: desc, b: g}
}
func str(id FieldID, name, desc string, g func(*Event) string) Field {
	return Field{ID: id, Name: name, Type: TypeStr, Desc: desc, s: g}
}
func strs(id FieldID, name, desc string, g func(*Event) []string) Field {
	return Field{ID: id, Name: name, Type: TypeStrList, Desc: desc, l: g}
}
func addr(id FieldID, name, desc string, g func(*Event) netip.Addr) Field {
	return Field{ID: id, Name: name, Type: TypeAddr, Desc: desc, a: g}
}

// runtimeFields are the kernel-event fields (ids 1–999).
var runtimeFields = []Field{
	u64(1, "evt.kind", "Event kind number (see Kinds).", func(e *Event) uint64 { return uint64(e.Kind) }),
	u64(2, "evt.time", "Wall-clock time, ns since the Unix epoch.", func(e *Event) uint64 {
		if e.Time.IsZero() {
			return 0
		}
		return uint64(e.Time.UnixNano())
	}),
	u64(3, "evt.cpu", "CPU the event was recorded on.", func(e *Event) uint64 { return uint64(e.CPU) }),
	i64(4, "evt.ret", "Syscall return value where known (negative errno on failure).", func(e *Event) int64 { return e.Ret }),

	u64(10, "proc.pid", "Process id (thread-group id) in the host pid namespace.", func(e *Event) uint64 { return uint64(e.Proc.PID) }),
	u64(11, "proc.tid", "Thread id in the host pid namespace.", func(e *Event) uint64 { return uint64(e.Proc.TID) }),
	u64(12, "proc.ppid", "Parent process id.", func(e *Event) uint64 { return uint64(e.Proc.PPID) }),
	str(13, "proc.name", "Command name (comm), at most 15 bytes.", func(e *Event) string { return e.Proc.Name }),
	str(14, "proc.exe", "Resolved path of the executable.", func(e *Event) string { return e.Proc.Exe }),
	strs(15, "proc.args", "Argument vector including argv[0], bounded (see proc.args_truncated).", func(e *Event) []string { return e.Proc.Args }),
	boolean(16, "proc.args_truncated", "Set when argv exceeded the sensor's bound.", func(e *Event) bool { return e.Proc.ArgsTruncated }),
	str(17, "proc.cwd", "Working directory where known.", func(e *Event) string { return e.Proc.Cwd }),
	u64(18, "proc.tty", "Controlling tty device number, 0 when none.", func(e *Event) uint64 { return uint64(e.Proc.TTY) }),
	u64(19, "proc.cgroup_id", "Cgroup v2 id of the task.", func(e *Event) uint64 { return e.Proc.CgroupID }),
	u64(20, "proc.pidns", "Pid namespace inode number.", func(e *Event) uint64 { return uint64(e.Proc.PidNS) }),
	u64(21, "proc.mntns", "Mount namespace inode number.", func(e *Event) uint64 { return uint64(e.Proc.MntNS) }),
	boolean(22, "proc.exe_memfd", "The executable is a memfd (fileless exec).", func(e *Event) bool { return e.Proc.ExeMemfd }),
	boolean(23, "proc.exe_upper", "The executable lives on an overlayfs upper layer (written after the container started).", func(e *Event) bool { return e.Proc.ExeUpper }),
	i64(24, "proc.exit_code", "Exit code (exit events).", func(e *Event) int64 { return int64(e.Proc.ExitCode) }),
	str(25, "proc.pname", "Parent's command name.", func(e *Event) string {
		if len(e.Proc.Ancestors) > 0 {
			return e.Proc.Ancestors[0].Name
		}
		return ""
	}),
	str(26, "proc.pexe", "Parent's executable path.", func(e *Event) string {
		if len(e.Proc.Ancestors) > 0 {
			return e.Proc.Ancestors[0].Exe
		}
		return ""
	}),
	strs(27, "proc.ancestors", "Command names of the parent chain, nearest first, bounded.", func(e *Event) []string {
		if len(e.Proc.Ancestors) == 0 {
			return nil
		}
		out := make([]string, len(e.Proc.Ancestors))
		for i, a := range e.Proc.Ancestors {
			out[i] = a.Name
		}
		return out
	}),
	u64(28, "proc.start_time", "Task start time, ns since boot.", func(e *Event) uint64 { return e.Proc.StartTime }),
	str(29, "proc.exec_path", "Path the program was executed by (exec events): the path given to execve, or the interpreter as named on a #! line. proc.exe is the file it resolved to.", func(e *Event) string { return e.Proc.ExecPath }),

	u64(40, "user.uid", "Real user id.", func(e *Event) uint64 { return uint64(e.Proc.UID) }),
	u64(41, "user.gid", "Real group id.", func(e *Event) uint64 { return uint64(e.Proc.GID) }),
	u64(42, "user.euid", "Effective user id.", func(e *Event) uint64 { return uint64(e.Proc.EUID) }),
	u64(43, "user.egid", "Effective group id.", func(e *Event) uint64 { return uint64(e.Proc.EGID) }),
	u64(44, "user.loginuid", "Audit login uid (4294967295 when unset).", func(e *Event) uint64 { return uint64(e.Proc.LoginUID) }),

	str(60, "container.id", "Container id (empty on the host).", func(e *Event) string { return e.Container.ID }),
	str(61, "container.runtime", "Container runtime: docker, containerd, cri-o, podman or runc.", func(e *Event) string { return e.Container.Runtime }),
	str(62, "container.name", "Container name as the runtime knows it.", func(e *Event) string { return e.Container.Name }),
	str(63, "container.image", "Image reference.", func(e *Event) string { return e.Container.Image }),
	str(64, "container.image_digest", "Image content digest where known.", func(e *Event) string { return e.Container.ImageDigest }),

	str(80, "k8s.pod_uid", "Pod UID, from the kubepods cgroup path.", func(e *Event) string { return e.K8s.PodUID }),
	str(81, "k8s.ns", "Pod namespace.", func(e *Event) string { return e.K8s.Namespace }),
	str(82, "k8s.pod", "Pod name.", func(e *Event) string { return e.K8s.Pod }),
	str(83, "k8s.container", "Container name in the pod spec.", func(e *Event) string { return e.K8s.ContainerName }),
	str(84, "k8s.workload", "Owning workload, e.g. Deployment/web.", func(e *Event) string { return e.K8s.Workload }),
	str(85, "k8s.revision", "Workload revision: pod-template hash or image digest.", func(e *Event) string { return e.K8s.Revision }),

	str(100, "file.path", "Path acted on, resolved where possible.", func(e *Event) string { return e.File.Path }),
	str(101, "file.new_path", "Destination of rename, link or symlink.", func(e *Event) string { return e.File.NewPath }),
	u64(102, "file.flags", "open(2) flags.", func(e *Event) uint64 { return uint64(e.File.Flags) }),
	u64(103, "file.mode", "open(2) or chmod(2) mode.", func(e *Event) uint64 { return uint64(e.File.Mode) }),

	u64(120, "net.family", "Address family: 2 AF_INET, 10 AF_INET6, 17 AF_PACKET.", func(e *Event) uint64 { return uint64(e.Net.Family) }),
	u64(121, "net.proto", "IP protocol (6 TCP, 17 UDP) or ethertype for packet sockets.", func(e *Event) uint64 { return uint64(e.Net.Proto) }),
	u64(122, "net.sock_type", "Socket type: 1 SOCK_STREAM, 2 SOCK_DGRAM, 3 SOCK_RAW.", func(e *Event) uint64 { return uint64(e.Net.SockType) }),
	addr(123, "net.src_addr", "Local address.", func(e *Event) netip.Addr { return e.Net.Src.Addr() }),
	u64(124, "net.src_port", "Local port.", func(e *Event) uint64 { return uint64(e.Net.Src.Port()) }),
	addr(125, "net.dst_addr", "Remote address.", func(e *Event) netip.Addr { return e.Net.Dst.Addr() }),
	u64(126, "net.dst_port", "Remote port.", func(e *Event) uint64 { return uint64(e.Net.Dst.Port()) }),
	i64(127, "net.fd", "Socket descriptor; for dup_socket the target descriptor.", func(e *Event) int64 { return int64(e.Net.FD) }),
	i64(128, "net.backlog", "listen(2) backlog.", func(e *Event) int64 { return int64(e.Net.Backlog) }),

	str(140, "priv.op", "Privilege syscall name, e.g. setresuid, finit_module.", func(e *Event) string { return e.Priv.Op }),
	i64(141, "priv.id0", "First uid/gid argument (real), -1 when unchanged.", func(e *Event) int64 { return e.Priv.IDs[0] }),
	i64(142, "priv.id1", "Second uid/gid argument (effective), -1 when unchanged.", func(e *Event) int64 { return e.Priv.IDs[1] }),
	i64(143, "priv.id2", "Third uid/gid argument (saved), -1 when unchanged.", func(e *Event) int64 { return e.Priv.IDs[2] }),
	u64(144, "priv.cap_effective", "capset effective set.", func(e *Event) uint64 { return e.Priv.Caps[0] }),
	u64(145, "priv.cap_permitted", "capset permitted set.", func(e *Event) uint64 { return e.Priv.Caps[1] }),
	u64(146, "priv.cap_inheritable", "capset inheritable set.", func(e *Event) uint64 { return e.Priv.Caps[2] }),
	i64(147, "priv.ptrace_request", "ptrace request number.", func(e *Event) int64 { return e.Priv.Request }),
	u64(148, "priv.target_pid", "ptrace target pid.", func(e *Event) uint64 { return uint64(e.Priv.TargetPID) }),
	u64(149, "priv.flags", "unshare/setns/mount/memfd_create flags.", func(e *Event) uint64 { return e.Priv.Flags }),
	str(150, "priv.mount_source", "mount source.", func(e *Event) string { return e.Priv.Source }),
	str(151, "priv.mount_target", "mount or umount target.", func(e *Event) string { return e.Priv.Target }),
	str(152, "priv.fstype", "mount filesystem type.", func(e *Event) string { return e.Priv.FSType }),
	str(153, "priv.name", "memfd name or kernel module name.", func(e *Event) string { return e.Priv.Name }),
}

var (
	byID   map[FieldID]*Field
	byName map[string]*Field
)

// registry is every field, in ascending ID order: the runtime fields, then
// the admission fields (admission.go) and the behavior-detection fields
// (deviation.go).
var registry []Field

func init() {
	registry = append(append(append([]Field(nil), runtimeFields...), admissionFields...), deviationFields...)
	sort.SliceStable(registry, func(i, j int) bool { return registry[i].ID < registry[j].ID })
	byID = make(map[FieldID]*Field, len(registry))
	byName = make(map[string]*Field, len(registry))
	for i := range registry {
		f := &registry[i]
		if _, dup := byID[f.ID]; dup {
			panic(fmt.Sprintf("event: duplicate field id %d", f.ID))
		}
		if _, dup := byName[f.Name]; dup {
			panic(fmt.Sprintf("event: duplicate field name %q", f.Name))
		}
		byID[f.ID] = f
		byName[f.Name] = f
	}
}

// Fields returns the registry in ascending ID order. The slice is shared;
// callers must not modify it.
func Fields() []Field { return registry }

// FieldByName looks a field up by its dotted name.
func FieldByName(name string) (*Field, bool) {
	f, ok := byName[name]
	return f, ok
}

// FieldByID looks a field up by its wire id.
func FieldByID(id FieldID) (*Field, bool) {
	f, ok := byID[id]
	return f, ok
}

// FieldNames returns all field names, sorted.
func FieldNames() []string {
	out := make([]string, 0, len(registry))
	for i := range registry {
		out = append(out, registry[i].Name)
	}
	sort.Strings(out)
	return out
}
