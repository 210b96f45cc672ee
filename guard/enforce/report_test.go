package enforce

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

func TestReportRequireAndMetrics(t *testing.T) {
	rep := Report{LSMs: "lockdown,capability", Backends: []Status{
		{Backend: BackendLSM, Reason: "bpf not among active LSMs"},
		{Backend: BackendCgroupSock, Active: true, Covers: []string{"connect"}},
		{Backend: BackendFanotify, Active: true},
	}}
	if err := rep.Require([]Backend{BackendCgroupSock, BackendFanotify}); err != nil {
		t.Errorf("met requirement: %v", err)
	}
	err := rep.Require([]Backend{BackendLSM})
	if !errors.Is(err, ErrBackendRequired) || !errors.Is(err, ErrLSMUnavailable) || !strings.Contains(err.Error(), "bpf not among") {
		t.Errorf("require lsm: %v", err)
	}
	if err := rep.Require([]Backend{BackendPidfd}); !errors.Is(err, ErrBackendRequired) || errors.Is(err, ErrLSMUnavailable) {
		t.Errorf("require unprobed pidfd: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(rep.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vigil_enforce_backend_active" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if got["lsm"] != 0 || got["cgroup_sock"] != 1 || got["fanotify"] != 1 || len(got) != 3 {
		t.Errorf("gauges %v", got)
	}
	if s := rep.String(); !strings.Contains(s, "lsm          inactive bpf not among") || !strings.Contains(s, "cgroup_sock  active   connect") {
		t.Errorf("status text:\n%s", s)
	}
	for _, b := range Backends() {
		if p, err := ParseBackend(b.String()); err != nil || p != b {
			t.Errorf("ParseBackend(%s) = %v, %v", b, p, err)
		}
	}
	if _, err := ParseBackend("selinux"); err == nil {
		t.Error("unknown backend accepted")
	}
}

func TestRecordStored(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	r := Record{KTimeNs: 1_000_000_000, Backend: BackendCgroupSock, Kind: event.KindConnect, Action: alert.ActionBlock,
		Mode: alert.ModeAudit, Workload: "a/b", Rule: "r", Comm: "curl", Addr: netip.MustParseAddr("10.1.2.3"), Port: 443}
	s := r.Stored(now, 3_000_000_000)
	if !s.Time.Equal(now.Add(-2*time.Second)) || s.Object != "10.1.2.3:443" || s.Kind != "connect" || s.Mode != "audit" || s.Backend != "cgroup_sock" {
		t.Errorf("stored %+v", s)
	}
	r = Record{Kind: event.KindOpen, Name: "shadow", Path: "/etc/shadow", Mode: alert.ModeEnforce, Backend: BackendLSM}
	if s := r.Stored(now, 5); s.Object != "/etc/shadow" || !s.Time.Equal(now) {
		t.Errorf("stored %+v", s)
	}
}
