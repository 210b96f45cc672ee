package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	if c.server.WindowDuration.Hours() != 1 || !c.selfSigned {
		t.Errorf("window %v self-signed %v", c.server.WindowDuration, c.selfSigned)
	}

	for _, bad := range [][]string{
		{}, // no TLS material
		{"--self-signed", "--default-mode", "loud"},
		{"--self-signed", "--namespace-mode", "prod"},
		{"--self-signed", "--namespace-mode", "prod=enforce:strict"},
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
