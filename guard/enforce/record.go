package enforce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// Record is one decision a backend made: "denied" in enforce mode, "would
// have denied" in audit mode. Kernel backends produce them through the ring
// buffer; fanotify and the pidfd killer produce them in userspace.
type Record struct {
	// KTimeNs is CLOCK_MONOTONIC at the decision (bpf_ktime_get_ns).
	KTimeNs  uint64
	Backend  Backend
	Kind     event.Kind
	Action   alert.Action
	Mode     alert.Mode
	Denied   bool
	PID, TID uint32
	CgroupID uint64
	// WorkloadID and RuleID are the ids the enforcer assigned when it
	// compiled the policy; Workload and Rule are filled from them.
	WorkloadID, RuleID uint32
	Workload           string
	Rule               string
	Comm               string
	// Name is the file name (exec, open) as the kernel saw it.
	Name     string
	Path     string
	Dev, Ino uint64
	Addr     netip.Addr
	Port     uint16
}

// ErrShortRecord reports a ring buffer sample smaller than a record.
var ErrShortRecord = errors.New("short enforcement record")

var recordSize = int(unsafe.Sizeof(enforcebpf.LsmRecord{}))

// DecodeRecord parses one ring buffer sample. The bytes come from the
// kernel but are treated as untrusted: sizes and enums are checked.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) < recordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(b), recordSize)
	}
	var raw enforcebpf.LsmRecord
	if err := binary.Read(bytes.NewReader(b[:recordSize]), binary.NativeEndian, &raw); err != nil {
		return Record{}, fmt.Errorf("decode enforcement record: %w", err)
	}
	backend := Backend(raw.Backend)
	if backend == 0 || backend > backendMax {
		return Record{}, fmt.Errorf("decode enforcement record: unknown backend %d", raw.Backend)
	}
	mode := alert.Mode(raw.Mode)
	if mode != alert.ModeAudit && mode != alert.ModeEnforce {
		return Record{}, fmt.Errorf("decode enforcement record: bad mode %d", raw.Mode)
	}
	r := Record{
		KTimeNs:    raw.Ktime,
		Backend:    backend,
		Kind:       event.Kind(raw.Kind),
		Action:     alert.Action(raw.Action),
		Mode:       mode,
		Denied:     raw.Denied != 0,
		PID:        raw.Tgid,
		TID:        raw.Pid,
		CgroupID:   raw.Cgroup,
		WorkloadID: raw.Workload,
		RuleID:     raw.Rule,
		Comm:       cstring(raw.Comm[:]),
		Name:       cstring(raw.Name[:]),
		Dev:        raw.Dev,
		Ino:        raw.Ino,
		Port:       raw.Port,
	}
	if r.Kind == event.KindConnect || r.Kind == event.KindBind {
		r.Addr = netip.AddrFrom16(raw.Addr).Unmap()
	}
	return r, nil
}

func cstring(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// Alert renders the record as an alert with the effective mode, the action
// and whether it was taken.
func (r Record) Alert() alert.Alert {
	a := alert.Alert{
		Rule:     r.Rule,
		Priority: alert.Critical,
		Source:   "enforce",
		Mode:     r.Mode,
		Action:   r.Action,
		Taken:    r.Denied,
		Backend:  r.Backend.String(),
		Fields: map[string]any{
			"proc.pid":  r.PID,
			"proc.name": r.Comm,
		},
	}
	switch r.Kind {
	case event.KindExec, event.KindOpen:
		a.Fields["file.name"] = r.Name
		if r.Path != "" {
			a.Fields["file.path"] = r.Path
		}
	case event.KindConnect, event.KindBind:
		a.Fields["net.dst_ip"] = r.Addr.String()
		a.Fields["net.dst_port"] = r.Port
	}
	a.Message = fmt.Sprintf("%s %s by %s (pid %d) in %s [%s]", r.verb(), r.Kind, r.Comm, r.PID, r.Workload, r.Backend)
	return a
}

func (r Record) verb() string {
	a := alert.Alert{Action: r.Action, Taken: r.Denied}
	return a.WouldHave()
}
