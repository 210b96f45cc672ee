package enforce

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	enforcebpf "github.com/vigilsec/vigil/bpf/enforce"
	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

func encodeRecord(t testing.TB, r enforcebpf.LsmRecord) []byte {
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeRecord(t *testing.T) {
	raw := enforcebpf.LsmRecord{Ktime: 42, Tgid: 7, Pid: 8, Kind: uint16(event.KindConnect),
		Action: uint8(alert.ActionBlock), Mode: uint8(alert.ModeAudit), Backend: uint8(BackendCgroupSock),
		Port: 443, Workload: 3, Rule: 4}
	raw.Addr[10], raw.Addr[11], raw.Addr[12], raw.Addr[15] = 0xff, 0xff, 10, 1
	copy8(raw.Comm[:], "curl")
	r, err := DecodeRecord(encodeRecord(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != 7 || r.TID != 8 || r.Comm != "curl" || r.Addr.String() != "10.0.0.1" || r.Port != 443 ||
		r.Denied || r.Mode != alert.ModeAudit || r.Backend != BackendCgroupSock {
		t.Fatalf("decoded %+v", r)
	}
	if a := r.Alert(); a.WouldHave() != "would have blocked" {
		got := a.WouldHave()
		t.Errorf("WouldHave = %q", got)
	}
	if _, err := DecodeRecord(make([]byte, 10)); !errors.Is(err, ErrShortRecord) {
		t.Errorf("short record: %v", err)
	}
	raw.Backend = 99
	if _, err := DecodeRecord(encodeRecord(t, raw)); err == nil {
		t.Error("bad backend accepted")
	}
}

func copy8(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
}

func FuzzDecodeRecord(f *testing.F) {
	good := enforcebpf.LsmRecord{Kind: uint16(event.KindExec), Mode: 2, Backend: 1, Action: 3}
	copy8(good.Name[:], "sh")
	f.Add(encodeRecord(f, good))
	f.Add([]byte{})
	f.Add(make([]byte, recordSize))
	f.Add(bytes.Repeat([]byte{0xff}, recordSize+5))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if r.Backend == 0 || r.Backend > backendMax || len(r.Comm) > 16 || len(r.Name) > 32 {
			t.Fatalf("accepted invalid record %+v", r)
		}
		_ = r.Alert()
	})
}

func FuzzParseFanMeta(f *testing.F) {
	good := make([]byte, fanMetaSize)
	binary.NativeEndian.PutUint32(good[0:], uint32(fanMetaSize))
	good[4] = 3 // FANOTIFY_METADATA_VERSION
	binary.NativeEndian.PutUint16(good[6:], uint16(fanMetaSize))
	binary.NativeEndian.PutUint64(good[8:], 0x10000)
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:fanMetaSize-1])
	bad := append([]byte(nil), good...)
	binary.NativeEndian.PutUint32(bad[0:], 1<<30)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseFanMeta(b)
		if err != nil {
			return
		}
		if int(m.Event_len) < fanMetaSize || int(m.Event_len) > len(b) {
			t.Fatalf("accepted event_len %d for %d bytes", m.Event_len, len(b))
		}
	})
}
