package sensor

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	bpfsensor "github.com/vigilsec/vigil/bpf/sensor"
	"github.com/vigilsec/vigil/guard/event"
)

// record lays out a ring-buffer record exactly as the kernel does: the
// generated header, then the strings back to back.
func record(h bpfsensor.SensorEvent, strs ...string) []byte {
	for i := range h.StrLen {
		h.StrLen[i] = 0
		if i < len(strs) {
			h.StrLen[i] = uint16(len(strs[i]))
		}
	}
	b := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&h)), headerSize)...)
	for _, s := range strs {
		b = append(b, s...)
	}
	return b
}

func comm(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

func TestDecodeKinds(t *testing.T) {
	boot := time.Unix(1_700_000_000, 0)
	base := bpfsensor.SensorEvent{Ktime: 5e9, Pid: 10, Tid: 11, Ppid: 1, Uid: 1000, Euid: 0, Loginuid: 4294967295,
		CgroupId: 77, StartTime: 4e9, Cpu: 1, Comm: comm("bash")}
	with := func(kind uint16, f func(*bpfsensor.SensorEvent)) bpfsensor.SensorEvent {
		h := base
		h.Kind = kind
		f(&h)
		return h
	}
	v4 := [16]uint8{127, 0, 0, 1}
	cases := []struct {
		name string
		raw  []byte
		want func(*event.Event)
	}{
		{"exec", record(with(1, func(h *bpfsensor.SensorEvent) { h.Flags = flagArgsTrunc | flagExeUpper }),
			"/usr/bin/curl\x00", "curl\x00-s\x00\x00x", "/root\x00"),
			func(e *event.Event) {
				e.Proc.Exe, e.Proc.Args, e.Proc.Cwd = "/usr/bin/curl", []string{"curl", "-s", "", "x"}, "/root"
				e.Proc.ArgsTruncated, e.Proc.ExeUpper = true, true
			}},
		{"exit by signal", record(with(3, func(h *bpfsensor.SensorEvent) { h.Arg[0] = 9 })),
			func(e *event.Event) { e.Proc.ExitCode = -9 }},
		{"exit 3", record(with(3, func(h *bpfsensor.SensorEvent) { h.Arg[0] = 3 << 8 })),
			func(e *event.Event) { e.Proc.ExitCode = 3 }},
		{"open", record(with(10, func(h *bpfsensor.SensorEvent) { h.Arg = [4]uint64{0o101, 0o644}; h.Ret = 3 }), "/etc/x\x00"),
			func(e *event.Event) { e.File = event.File{Path: "/etc/x", Flags: 0o101, Mode: 0o644}; e.Ret = 3 }},
		{"truncated path", record(with(12, func(h *bpfsensor.SensorEvent) { h.Flags = flagPathTrunc }), "/deep\x00", "/b\x00"),
			func(e *event.Event) { e.File = event.File{Path: "…/deep", NewPath: "…/b"} }},
		{"long path", record(with(10, func(h *bpfsensor.SensorEvent) { h.Flags = flagPathLong }), "/long\x00"),
			func(e *event.Event) { e.File = event.File{Path: "/long…"} }},
		{"connect", record(with(20, func(h *bpfsensor.SensorEvent) {
			h.Family, h.SockType, h.Proto, h.Saddr, h.Sport, h.Daddr, h.Dport, h.Arg[0] = 2, 1, 6, v4, 40000, v4, 80, 5
		})), func(e *event.Event) {
			lo := netip.MustParseAddr("127.0.0.1")
			e.Net = event.Net{Family: 2, SockType: 1, Proto: 6, Src: netip.AddrPortFrom(lo, 40000), Dst: netip.AddrPortFrom(lo, 80), FD: 5}
		}},
		{"setresuid", record(with(30, func(h *bpfsensor.SensorEvent) {
			h.Syscall = 117
			h.Arg = [4]uint64{0, ^uint64(0), 5}
		})), func(e *event.Event) { e.Priv = event.Priv{Op: "setresuid", IDs: [3]int64{0, -1, 5}} }},
		{"mount", record(with(34, func(h *bpfsensor.SensorEvent) { h.Syscall = 165; h.Arg[3] = 2 }), "src\x00", "/mnt\x00", "\x00"),
			func(e *event.Event) { e.Priv = event.Priv{Op: "mount", Source: "src", Target: "/mnt", Flags: 2} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got event.Event
			if err := NewDecoder(boot).Decode(tc.raw, &got); err != nil {
				t.Fatal(err)
			}
			var h bpfsensor.SensorEvent
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), headerSize), tc.raw)
			want := event.Event{Kind: event.Kind(h.Kind), KTimeNs: 5e9, Time: boot.Add(5 * time.Second), CPU: 1,
				Proc: event.Process{PID: 10, TID: 11, PPID: 1, UID: 1000, LoginUID: 4294967295, Name: "bash", CgroupID: 77, StartTime: 4e9}}
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	ok := record(bpfsensor.SensorEvent{Kind: 10}, "/x\x00")
	long := record(bpfsensor.SensorEvent{Kind: 10}, "/x\x00")
	long = long[:len(long)-1]
	for name, tc := range map[string]struct {
		raw  []byte
		want error
	}{
		"short":          {ok[:headerSize-1], ErrShortRecord},
		"empty":          {nil, ErrShortRecord},
		"string too big": {long, ErrBadString},
		"unknown kind":   {record(bpfsensor.SensorEvent{Kind: 99}), ErrBadKind},
		"admission kind": {record(bpfsensor.SensorEvent{Kind: 100}), ErrBadKind},
	} {
		var e event.Event
		if err := NewDecoder(time.Now()).Decode(tc.raw, &e); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the ring-buffer decoder: it must
// return an error or an event whose strings come from the input, never
// panic or read past the record.
func FuzzDecode(f *testing.F) {
	f.Add(record(bpfsensor.SensorEvent{Kind: 1}, "/bin/sh\x00", "sh\x00-c\x00", "/\x00"))
	f.Add(record(bpfsensor.SensorEvent{Kind: 12, Flags: flagPathTrunc}, "/a\x00", "/b\x00"))
	f.Add(record(bpfsensor.SensorEvent{Kind: 21, Family: 10}))
	f.Add(record(bpfsensor.SensorEvent{Kind: 34, Syscall: 165}, "a", "b", "c", "d"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e event.Event
		if err := NewDecoder(time.Unix(0, 0)).Decode(raw, &e); err != nil {
			return
		}
		if len(raw) < headerSize {
			t.Fatalf("decoded a %d-byte record", len(raw))
		}
		n := len(e.File.Path) + len(e.File.NewPath) + len(e.Proc.Exe) + len(e.Proc.Cwd) + len(e.Priv.Source) + len(e.Priv.Target) + len(e.Priv.FSType) + len(e.Priv.Name)
		for _, a := range e.Proc.Args {
			n += len(a)
		}
		if n > len(raw)-headerSize+len("…")*10 {
			t.Fatalf("decoded %d string bytes from a %d-byte body", n, len(raw)-headerSize)
		}
		_ = e.AppendJSON(nil)
		_ = event.AppendEvent(nil, &e)
	})
}

// BenchmarkDecode is the reader's per-record cost for an exec record.
func BenchmarkDecode(b *testing.B) {
	raw := record(bpfsensor.SensorEvent{Kind: 1, Comm: comm("curl")}, "/usr/bin/curl\x00", "curl\x00-s\x00https://example.com/\x00", "/root\x00")
	d := NewDecoder(time.Now())
	b.ReportAllocs()
	for b.Loop() {
		var e event.Event
		if err := d.Decode(raw, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKindsMatchKernel checks bpf/include/common.h's EV_* numbers against
// event.Kind, through the enum bpf2go generates from the object's BTF.
func TestKindsMatchKernel(t *testing.T) {
	pairs := map[bpfsensor.SensorVigilKind]event.Kind{
		bpfsensor.SensorVigilKindEV_EXEC: event.KindExec, bpfsensor.SensorVigilKindEV_FORK: event.KindFork,
		bpfsensor.SensorVigilKindEV_EXIT: event.KindExit, bpfsensor.SensorVigilKindEV_OPEN: event.KindOpen,
		bpfsensor.SensorVigilKindEV_UNLINK: event.KindUnlink, bpfsensor.SensorVigilKindEV_RENAME: event.KindRename,
		bpfsensor.SensorVigilKindEV_LINK: event.KindLink, bpfsensor.SensorVigilKindEV_SYMLINK: event.KindSymlink,
		bpfsensor.SensorVigilKindEV_CHMOD: event.KindChmod, bpfsensor.SensorVigilKindEV_CONNECT: event.KindConnect,
		bpfsensor.SensorVigilKindEV_ACCEPT: event.KindAccept, bpfsensor.SensorVigilKindEV_BIND: event.KindBind,
		bpfsensor.SensorVigilKindEV_LISTEN: event.KindListen, bpfsensor.SensorVigilKindEV_PACKET_SOCKET: event.KindPacketSocket,
		bpfsensor.SensorVigilKindEV_DUP_SOCKET: event.KindDupSocket, bpfsensor.SensorVigilKindEV_SETUID: event.KindSetuid,
		bpfsensor.SensorVigilKindEV_SETGID: event.KindSetgid, bpfsensor.SensorVigilKindEV_CAPSET: event.KindCapset,
		bpfsensor.SensorVigilKindEV_PTRACE: event.KindPtrace, bpfsensor.SensorVigilKindEV_MOUNT: event.KindMount,
		bpfsensor.SensorVigilKindEV_UMOUNT: event.KindUmount, bpfsensor.SensorVigilKindEV_UNSHARE: event.KindUnshare,
		bpfsensor.SensorVigilKindEV_SETNS: event.KindSetns, bpfsensor.SensorVigilKindEV_MODULE_LOAD: event.KindModuleLoad,
		bpfsensor.SensorVigilKindEV_MEMFD: event.KindMemfd,
	}
	for k, want := range pairs {
		if event.Kind(k) != want {
			t.Errorf("kernel kind %d, event.Kind %v (%d)", k, want, want)
		}
	}
	for _, k := range event.Kinds() {
		if k >= event.KindAdmission {
			continue
		}
		if _, ok := pairs[bpfsensor.SensorVigilKind(k)]; !ok {
			t.Errorf("event kind %v has no kernel counterpart", k)
		}
	}
	if int(bpfsensor.SensorVigilKindEV_KIND_MAX) <= int(event.KindMemfd) {
		t.Errorf("EV_KIND_MAX %d does not cover every kind", bpfsensor.SensorVigilKindEV_KIND_MAX)
	}
}
