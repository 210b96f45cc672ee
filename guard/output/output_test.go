package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

func sampleAlert() *alert.Alert {
	return &alert.Alert{
		Time: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC), Rule: "Terminal shell in container",
		Priority: alert.Warning, Message: "shell in container web", Tags: []string{"container", "shell", "mitre_execution"},
		Source: "rule", Mode: alert.ModeEnforce, Action: alert.ActionKill, Taken: true, Backend: "bpf_send_signal",
		Event: &event.Event{Kind: event.KindExec, Time: time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC),
			Proc: event.Process{PID: 7, Name: "sh", Exe: "/bin/sh", Args: []string{"sh", "-i"},
				Ancestors: []event.Ancestor{{PID: 6, Name: "runc:[2:INIT]"}}},
			Container: event.Container{ID: "c1", Image: "nginx:1.25"},
			K8s:       event.K8s{Namespace: "shop", Pod: "web-1", Workload: "Deployment/web", Revision: "abc123"}},
		Deploy: &alert.DeployContext{Workload: "Deployment/web", Revision: "abc123", User: "alice", WindowOpen: true, Changed: []string{"image"}},
	}
}

func TestJSONLinesOneObjectPerLine(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONLines(&buf)
	for i := 0; i < 3; i++ {
		if err := j.Write(sampleAlert()); err != nil {
			t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(&buf)
	n := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		if m["rule"] != "Terminal shell in container" || m["mode"] != "enforce" || m["action"] != "kill" || m["priority"] != "Warning" {
			t.Fatalf("line %d lacks context: %v", n, m)
		}
		ev := m["event"].(map[string]any)
		if ev["k8s.pod"] != "web-1" || ev["proc.ancestors"].([]any)[0] != "runc:[2:INIT]" {
			t.Fatalf("event context missing: %v", ev)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("got %d lines", n)
	}
}

func TestRotatingFileRotates(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "alerts.jsonl")
	j, err := NewJSONFile(p, 2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := j.Write(sampleAlert()); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, name := range []string{"alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Size() > 2000 {
			t.Fatalf("%s is %d bytes, over the limit", name, st.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "alerts.jsonl.3")); err == nil {
		t.Fatal("kept more files than asked")
	}
}

func TestSidekickPostsFalcoPayload(t *testing.T) {
	var mu sync.Mutex
	var got []SidekickPayload
	fails := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 { // first attempt fails: the sink must retry
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var p SidekickPayload
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("bad payload: %v", err)
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		got = append(got, p)
	}))
	defer srv.Close()
	s := NewSidekick(srv.URL, time.Second, 2)
	if err := s.Write(sampleAlert()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("got %d posts", len(got))
	}
	p := got[0]
	if p.Rule != "Terminal shell in container" || p.Priority != "Warning" || p.Source != "syscall" || len(p.UUID) != 36 {
		t.Fatalf("payload %+v", p)
	}
	for k, want := range map[string]any{"k8s.ns.name": "shop", "k8s.pod.name": "web-1", "container.id": "c1",
		"proc.cmdline": "sh -i", "vigil.outcome": "killed", "vigil.deploy.user": "alice", "proc.pname": "runc:[2:INIT]"} {
		if p.OutputFields[k] != want {
			t.Errorf("output_fields[%s] = %v, want %v", k, p.OutputFields[k], want)
		}
	}
}

func TestSidekickClientErrorIsNotRetried(t *testing.T) {
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	if err := NewSidekick(srv.URL, time.Second, 3).Write(sampleAlert()); err == nil || n != 1 {
		t.Fatalf("err %v after %d posts", err, n)
	}
}

func TestSyslogUDPAndUnixgram(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sock := filepath.Join(t.TempDir(), "log")
	uc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	for _, tc := range []struct {
		network, addr string
		pc            net.PacketConn
	}{{"udp", pc.LocalAddr().String(), pc}, {"unixgram", sock, uc}} {
		s, err := NewSyslog(tc.network, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(sampleAlert()); err != nil {
			t.Fatalf("%s: %v", tc.network, err)
		}
		buf := make([]byte, 64<<10)
		_ = tc.pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := tc.pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		msg := string(buf[:n])
		// local0 (16) * 8 + warning (4) = 132
		if !strings.HasPrefix(msg, "<132>1 2026-12-06T03:00:00Z ") || !strings.Contains(msg, `"rule":"Terminal shell in container"`) {
			t.Fatalf("%s: message %q", tc.network, msg)
		}
		s.Close()
		s.Close()
	}
	if _, err := NewSyslog("carrier-pigeon", "x"); err == nil {
		t.Fatal("bad network accepted")
	}
}

type blockingSink struct{ release chan struct{} }

func (b *blockingSink) Name() string { return "blocking" }
func (b *blockingSink) Write(*alert.Alert) error {
	<-b.release
	return nil
}
func (b *blockingSink) Close() error { return nil }

func TestFanoutCountsDropsAndNeverBlocks(t *testing.T) {
	slow := &blockingSink{release: make(chan struct{})}
	var buf bytes.Buffer
	f := NewFanout(2, slow, NewJSONLines(&buf))
	for i := 0; i < 10; i++ {
		f.Send(sampleAlert()) // must not block although slow never drains
	}
	close(slow.release)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	if st[0].Sent+st[0].Dropped != 10 || st[0].Dropped < 7 {
		t.Fatalf("slow sink stats %+v", st[0])
	}
	if st[1].Sent+st[1].Dropped != 10 {
		t.Fatalf("jsonl stats %+v", st[1])
	}
	if got := strings.Count(buf.String(), "\n"); uint64(got) != st[1].Sent {
		t.Fatalf("jsonl wrote %d lines, counted %d", got, st[1].Sent)
	}
}

func TestDedupCollapsesRepeats(t *testing.T) {
	d := NewDedup(time.Minute, 0)
	t0 := time.Unix(1000, 0)
	a := sampleAlert()
	if !d.Admit(a, t0) {
		t.Fatal("first occurrence suppressed")
	}
	for i := 1; i <= 99; i++ {
		if d.Admit(sampleAlert(), t0.Add(time.Duration(i)*100*time.Millisecond)) {
			t.Fatalf("repeat %d delivered", i)
		}
	}
	other := sampleAlert()
	other.Event.Container.ID = "c2"
	if !d.Admit(other, t0.Add(time.Second)) {
		t.Fatal("same rule in another container was suppressed")
	}
	if got := d.Flush(t0.Add(30 * time.Second)); len(got) != 0 {
		t.Fatalf("flushed before the window closed: %d", len(got))
	}
	sum := d.Flush(t0.Add(2 * time.Minute))
	if len(sum) != 1 || sum[0].Count != 100 || !sum[0].FirstSeen.Equal(t0) || !sum[0].LastSeen.Equal(t0.Add(9900*time.Millisecond)) {
		t.Fatalf("summary %+v", sum)
	}
	if d.Suppressed != 99 {
		t.Fatalf("suppressed %d", d.Suppressed)
	}
	if !d.Admit(sampleAlert(), t0.Add(3*time.Minute)) {
		t.Fatal("new window suppressed")
	}
}
