package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DefaultMode() != alert.ModeAudit {
		t.Fatalf("default mode %v, want audit", c.DefaultMode())
	}
}

func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want alert.Mode
	}{
		{"environment: production", alert.ModeEnforce},
		{"environment: staging", alert.ModeAudit},
		{"environment: production\nmode: audit", alert.ModeAudit},
		{"mode: off", alert.ModeOff},
	} {
		c := Default()
		if err := Parse([]byte(tc.yaml), &c); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.DefaultMode(); got != tc.want {
			t.Errorf("%q: mode %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

func TestFullFileLoads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	os.WriteFile(p, []byte(`
environment: production
require: [lsm]
modes:
  namespaces: {staging-shop: audit}
  workloads: {"shop/Deployment/web": enforce}
  rules: {"Terminal shell in container": enforce}
rules:
  dir: /etc/vigil/rules
  pinning: true
  pins: {pack.wasm: "sha256:`+strings.Repeat("ab", 32)+`"}
  timeout: 50ms
output:
  file: {path: /var/log/vigil/alerts.jsonl, maxSizeMiB: 100, keep: 5}
  falcosidekick: {url: "http://sidekick:2801/", retries: 3}
  syslog: {network: udp, address: "127.0.0.1:514"}
  dedupWindow: 2m
metrics: {listen: ":9464"}
`), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules.Timeout.Std() != 50*time.Millisecond || c.Output.DedupWindow.Std() != 2*time.Minute || c.Output.File.Keep != 5 {
		t.Fatalf("parsed %+v", c)
	}
	if c.Rules.MemoryLimitMiB != 64 {
		t.Fatalf("default lost: memoryLimitMiB %d", c.Rules.MemoryLimitMiB)
	}
}

func TestBadConfigGivesClearErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"environmnet: production", "unknown field"},
		{"environment: prod", `environment "prod"`},
		{"mode: block", `unknown mode "block"`},
		{"mode: on", "not a mode"},
		{"modes: {namespaces: {a: off}}", "__ok__"},
		{"require: [selinux]", `unknown backend "selinux"`},
		{"modes: {namespaces: {a: maybe}}", `modes.namespaces["a"]`},
		{"modes: {workloads: {web: audit}}", "namespace/workload"},
		{"actions: {x: obliterate}", `unknown action "obliterate"`},
		{"rules: {pins: {x.wasm: deadbeef}}", "sha256:<64"},
		{"rules: {timeout: 5}", "duration"},
		{"rules: {timeout: 10us}", "at least 1ms"},
		{"sensor: {openAlways: [etc/shadow]}", "must be absolute"},
		{"sensor: {ringBufferMiB: 3}", "power of two"},
		{"output: {falcosidekick: {url: sidekick:2801}}", "want http(s)"},
		{"output: {syslog: {network: smoke, address: x}}", "unixgram, udp or tcp"},
		{"metrics: {listen: nope}", "metrics.listen"},
		{"rules: [1, 2]", "cannot unmarshal"},
		{"baseline: {profilesSource: crd, statusInterval: 10s, nodeName: n1}", "__ok__"},
		{"baseline: {profilesSource: etcd}", "want api or crd"},
		{"baseline: {profilesSource: crd, profilesURL: 'https://w', profilesCA: ca.pem}", "set one or the other"},
	} {
		c := Default()
		err := Parse([]byte(tc.yaml), &c)
		if tc.want == "__ok__" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.yaml, err, tc.want)
		}
	}
	c := Default()
	err := Parse([]byte("mode: x\nrequire: [z]"), &c)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), `"z"`) {
		t.Fatalf("want both problems reported and ErrInvalid: %v", err)
	}
	if _, err := Load("/nonexistent/vigil.yaml"); err == nil {
		t.Fatal("missing file accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("environment: production\nmodes: {namespaces: {a: audit}}"))
	f.Add([]byte("rules: {timeout: 1s, pins: {a: b}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Default()
		_ = Parse(b, &c)
	})
}

func TestPolicies(t *testing.T) {
	c := Default()
	err := Parse([]byte(`
policies:
  - name: no-shadow
    action: block
    match: {namespace: shop, workload: Deployment/web}
    openPaths: [/etc/shadow]
    connect: ["10.0.0.0/8", "1.2.3.4:443", ":3333", "[2001:db8::1]:22"]
    execNames: [nc]
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		pfx  string
		port uint16
	}{
		{"10.0.0.0/8", "10.0.0.0/8", 0}, {"1.2.3.4:443", "1.2.3.4/32", 443}, {":3333", "0.0.0.0/0", 3333},
		{"[2001:db8::1]:22", "2001:db8::1/128", 22}, {"2001:db8::/32", "2001:db8::/32", 0}, {"10.1.2.3/8", "10.0.0.0/8", 0},
	} {
		p, port, err := ParseNet(tc.in)
		if err != nil || p.String() != tc.pfx || port != tc.port {
			t.Errorf("ParseNet(%q) = %v %d %v, want %s %d", tc.in, p, port, err, tc.pfx, tc.port)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"policies: [{name: a, action: block}]", "denies nothing"},
		{"policies: [{name: a, action: nuke, execNames: [x]}]", `action "nuke"`},
		{"policies: [{action: kill, execNames: [x]}]", "name is empty"},
		{"policies: [{name: a, action: kill, openPaths: [etc/shadow]}]", "not absolute"},
		{"policies: [{name: a, action: kill, execNames: [averyveryverylongname]}]", "at most 15 bytes"},
		{"policies: [{name: a, action: kill, connect: [\"10.0.0.0/33\"]}]", "network match"},
		{"policies: [{name: a, action: kill, connect: [\":99999\"]}]", "port"},
		{"policies: [{name: a, action: kill, deny: [reboot]}]", `deny "reboot"`},
	} {
		c := Default()
		if err := Parse([]byte(tc.yaml), &c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
