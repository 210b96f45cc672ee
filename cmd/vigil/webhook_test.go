package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/pss"
)

func TestWebhookFlags(t *testing.T) {
	modes := filepath.Join(t.TempDir(), "modes")
	os.WriteFile(modes, []byte("# pins\nprod = enforce:restricted\nkube-system=off\n"), 0o600)
	var f webhookFlags
	cmd := newWebhookCmdWith(&f)
	if err := cmd.ParseFlags([]string{"--self-signed", "--namespace-modes-file", modes,
		"--namespace-mode", "prod=audit:baseline", "--default-mode", "enforce", "--release-window", "1h"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.server.NamespaceModes["prod"] != (webhook.Mode{Action: webhook.Audit, Level: pss.Baseline}) {
		t.Errorf("flag pin does not win over the file: %v", c.server.NamespaceModes["prod"])
	}
	if c.server.NamespaceModes["kube-system"].Action != webhook.Off || c.server.DefaultMode.Action != webhook.Enforce {
		t.Errorf("modes %v default %v", c.server.NamespaceModes, c.server.DefaultMode)
	}
	if c.server.RuleFailure != webhook.FailOpen || c.rules.Dir != "" || c.rules.Timeout != time.Second || c.server.MaxRuleEventBytes != 32<<10 {
		t.Errorf("admission rules defaults: %v %+v", c.server.RuleFailure, c.rules)
	}
	if c.server.WindowDuration.Hours() != 1 || !c.selfSigned {
		t.Errorf("window %v self-signed %v", c.server.WindowDuration, c.selfSigned)
	}

	// auto: bbolt alone off-cluster, crd when given a kubeconfig or in a pod.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		args []string
		crd  bool
	}{
		{nil, false},
		{[]string{"--kubeconfig", "/k"}, true},
		{[]string{"--profiles-backend", "bbolt", "--kubeconfig", "/k"}, false},
		{[]string{"--profiles-backend", "crd"}, true},
	} {
		var f webhookFlags
		if err := newWebhookCmdWith(&f).ParseFlags(append([]string{"--self-signed"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		if c, err := f.config(); err != nil || c.crd != tc.crd {
			t.Errorf("%v: crd %v (%v), want %v", tc.args, c.crd, err, tc.crd)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	if c, _ := f.config(); !c.crd || !c.crdAuto {
		t.Error("auto in a pod: want crd, falling back when the pod has no token")
	}

	for _, bad := range [][]string{
		{}, // no TLS material
		{"--self-signed", "--default-mode", "loud"},
		{"--self-signed", "--namespace-mode", "prod"},
		{"--self-signed", "--namespace-mode", "prod=enforce:strict"},
		{"--self-signed", "--admission-rule-failure", "maybe"},
		{"--self-signed", "--admission-rules-unchecked", "md5:abc"},
		{"--self-signed", "--admission-rules-unchecked", "sha256:ABCDEF"},
		{"--self-signed", "--profiles-backend", "etcd"},
	} {
		var f webhookFlags
		cmd := newWebhookCmdWith(&f)
		if err := cmd.ParseFlags(bad); err != nil {
			t.Fatal(err)
		}
		if _, err := f.config(); err == nil {
			t.Errorf("%s: accepted", strings.Join(bad, " "))
		}
	}
}

func TestWebhookAdmissionRulesFlags(t *testing.T) {
	var f webhookFlags
	cmd := newWebhookCmdWith(&f)
	if err := cmd.ParseFlags([]string{"--self-signed", "--admission-rules", "/srv/rules", "--admission-rule-failure", "closed",
		"--admission-rule-timeout", "20ms", "--admission-rules-cache", "",
		"--admission-rules-unchecked", "sha256:" + strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	c, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.server.RuleFailure != webhook.FailClosed || c.rules.Dir != "/srv/rules" || c.rules.Timeout != 20*time.Millisecond || c.rules.CacheDir != "" ||
		len(c.rules.Unchecked) != 1 || c.rules.Unchecked[0] != strings.Repeat("ab", 32) {
		t.Fatalf("%v %+v", c.server.RuleFailure, c.rules)
	}
	// A rules directory that does not exist stops the webhook before it
	// listens: it must not serve without its policy.
	c.selfSigned, c.dir, c.auditPath = true, t.TempDir(), filepath.Join(t.TempDir(), "audit")
	c.server.Addr, c.server.StorePath = "127.0.0.1:0", filepath.Join(t.TempDir(), "db")
	c.rules.Dir = filepath.Join(t.TempDir(), "missing")
	if err := runWebhook(t.Context(), c); err == nil || !strings.Contains(err.Error(), "admission rules") {
		t.Fatalf("missing rules dir: %v", err)
	}
}
