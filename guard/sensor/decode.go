package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	bpfsensor "github.com/vigilsec/vigil/bpf/sensor"
	"github.com/vigilsec/vigil/guard/event"
)

// Record flags, the kernel's EVF_* values.
const (
	flagArgsTrunc = 1
	flagExeMemfd  = 2
	flagExeUpper  = 4
	flagPathTrunc = 8
	flagPathLong  = 16
)

const (
	afInet  = 2
	afInet6 = 10
)

// headerSize is the fixed part of a ring-buffer record; the strings follow.
const headerSize = int(unsafe.Offsetof(bpfsensor.SensorEvent{}.Data))

// Decode errors. A record that fails to decode is counted in
// Stats.DecodeErrors and skipped.
var (
	ErrShortRecord = errors.New("record shorter than its header")
	ErrBadString   = errors.New("record string runs past its end")
	ErrBadKind     = errors.New("record has an unknown kind")
)

// Decoder turns raw ring-buffer records into events. It is not safe for
// concurrent use; each reader owns one.
type Decoder struct {
	// bootWall is the wall-clock time at ktime 0, so Time = bootWall + ktime.
	bootWall int64
	hdr      bpfsensor.SensorEvent
}

// NewDecoder returns a decoder converting kernel timestamps with the given
// wall-clock time of monotonic zero (see BootWallClock).
func NewDecoder(bootWall time.Time) *Decoder {
	return &Decoder{bootWall: bootWall.UnixNano()}
}

// Decode parses one record into e, overwriting it entirely.
func (d *Decoder) Decode(raw []byte, e *event.Event) error {
	if len(raw) < headerSize {
		return fmt.Errorf("%w: %d bytes", ErrShortRecord, len(raw))
	}
	// The header is copied into a typed value (never aliased), so a short or
	// unaligned slice cannot be read out of bounds.
	h := &d.hdr
	copy(unsafe.Slice((*byte)(unsafe.Pointer(h)), headerSize), raw[:headerSize])
	kind := event.Kind(h.Kind)
	if kind.String() == "unknown" || kind >= event.KindAdmission {
		return fmt.Errorf("%w: %d", ErrBadKind, h.Kind)
	}

	var strs [len(h.StrLen)][]byte
	data := raw[headerSize:]
	off := 0
	for i, n := range h.StrLen {
		if int(n) > len(data)-off {
			return fmt.Errorf("%w: string %d wants %d bytes, %d left", ErrBadString, i, n, len(data)-off)
		}
		strs[i] = data[off : off+int(n)]
		off += int(n)
	}

	*e = event.Event{
		Kind:    kind,
		KTimeNs: h.Ktime,
		Time:    time.Unix(0, d.bootWall+int64(h.Ktime)),
		CPU:     h.Cpu,
		Ret:     h.Ret,
		Proc: event.Process{
			PID: h.Pid, TID: h.Tid, PPID: h.Ppid,
			UID: h.Uid, GID: h.Gid, EUID: h.Euid, EGID: h.Egid, LoginUID: h.Loginuid,
			Name:      cstr(unsafe.Slice((*byte)(unsafe.Pointer(&h.Comm[0])), len(h.Comm))),
			TTY:       h.Tty,
			CgroupID:  h.CgroupId,
			PidNS:     h.Pidns,
			MntNS:     h.Mntns,
			StartTime: h.StartTime,
		},
	}
	pathTrunc, pathLong := h.Flags&flagPathTrunc != 0, h.Flags&flagPathLong != 0
	switch kind {
	case event.KindExec:
		e.Proc.Exe = cstr(strs[0])
		e.Proc.Args = splitArgs(strs[1])
		e.Proc.ArgsTruncated = h.Flags&flagArgsTrunc != 0
		e.Proc.Cwd = cstr(strs[2])
		e.Proc.ExecPath = cstr(strs[3])
		e.Proc.ExeMemfd = h.Flags&flagExeMemfd != 0
		e.Proc.ExeUpper = h.Flags&flagExeUpper != 0
	case event.KindExit:
		e.Proc.ExitCode = exitCode(uint32(h.Arg[0]))
	case event.KindOpen:
		e.File = event.File{Path: cstr(strs[0]), Flags: uint32(h.Arg[0]), Mode: uint32(h.Arg[1])}
	case event.KindUnlink, event.KindRename, event.KindLink, event.KindSymlink, event.KindChmod:
		e.File = event.File{Path: cstr(strs[0]), NewPath: cstr(strs[1]), Flags: uint32(h.Arg[0]), Mode: uint32(h.Arg[1])}
	case event.KindConnect, event.KindAccept, event.KindBind, event.KindListen, event.KindDupSocket:
		e.Net = event.Net{
			Family: h.Family, Proto: h.Proto, SockType: h.SockType,
			Src: addrPort(h.Family, h.Saddr, h.Sport), Dst: addrPort(h.Family, h.Daddr, h.Dport),
			FD: int32(h.Arg[0]), Backlog: int32(h.Arg[1]),
		}
	case event.KindPacketSocket:
		e.Net = event.Net{Family: h.Family, Proto: h.Proto, SockType: h.SockType, FD: int32(h.Arg[0])}
	case event.KindSetuid, event.KindSetgid:
		e.Priv = event.Priv{IDs: [3]int64{int64(h.Arg[0]), int64(h.Arg[1]), int64(h.Arg[2])}}
	case event.KindCapset:
		e.Priv = event.Priv{Caps: [3]uint64{h.Arg[0], h.Arg[1], h.Arg[2]}}
	case event.KindPtrace:
		e.Priv = event.Priv{Request: int64(h.Arg[0]), TargetPID: uint32(h.Arg[1])}
	case event.KindMount:
		e.Priv = event.Priv{Source: cstr(strs[0]), Target: cstr(strs[1]), FSType: cstr(strs[2]), Flags: h.Arg[3]}
	case event.KindUmount:
		e.Priv = event.Priv{Target: cstr(strs[0]), Flags: h.Arg[3]}
	case event.KindUnshare, event.KindSetns:
		e.Priv = event.Priv{Flags: h.Arg[3]}
	case event.KindModuleLoad, event.KindMemfd:
		e.Priv = event.Priv{Name: cstr(strs[0]), Flags: h.Arg[3]}
	}
	if kind >= event.KindSetuid && kind <= event.KindMemfd {
		e.Priv.Op = syscallName(h.Syscall)
	}
	// Mark cut paths so that no rule mistakes them for whole ones: a path
	// deeper than the walk keeps its deepest components ("…/a/b"), a path
	// longer than the buffer keeps its root side ("/a/b…"). The flags are
	// per record, so every path of the record is marked.
	for _, p := range []*string{&e.File.Path, &e.File.NewPath, &e.Proc.Exe, &e.Proc.Cwd, &e.Priv.Name} {
		if *p == "" {
			continue
		}
		if pathTrunc {
			*p = "…" + *p
		}
		if pathLong {
			*p += "…"
		}
	}
	return nil
}

// cstr returns b up to its first NUL.
func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// splitArgs splits the kernel's NUL-separated argv bytes.
func splitArgs(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// exitCode turns a wait status into the exit code, or -signal when the
// process was killed by a signal.
func exitCode(status uint32) int32 {
	if sig := status & 0x7f; sig != 0 {
		return -int32(sig)
	}
	return int32((status >> 8) & 0xff)
}

func addrPort(family uint16, a [16]uint8, port uint16) netip.AddrPort {
	switch family {
	case afInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port)
	case afInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a), port)
	}
	return netip.AddrPort{}
}

// syscallNames maps the x86-64 numbers of the privilege syscalls to names.
var syscallNames = map[uint16]string{
	105: "setuid", 106: "setgid", 113: "setreuid", 114: "setregid",
	117: "setresuid", 119: "setresgid", 126: "capset", 101: "ptrace",
	165: "mount", 166: "umount2", 272: "unshare", 308: "setns",
	175: "init_module", 313: "finit_module", 319: "memfd_create",
}

func syscallName(nr uint16) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	return fmt.Sprintf("syscall_%d", nr)
}
