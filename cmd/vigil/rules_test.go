package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/privtest"
)

// `vigil rules test` passes good fixtures and exits non-zero on a bad one.
func TestRulesTestCommand(t *testing.T) {
	mod := filepath.Join("..", "..", "wasm-rules", "build", "examples", "c-example.wasm")
	privtest.RequireTool(t, mod) // built by `make rules`
	dir := t.TempDir()
	fix := filepath.Join(dir, "fixtures")
	os.MkdirAll(fix, 0o755)
	good := `{"cases":[{"name":"shell","event":{"kind":"exec","proc.name":"sh","container.id":"c"},"expect":[{"rule":"Terminal shell in container","priority":"Warning"}]},
	                     {"name":"host","event":{"kind":"exec","proc.name":"sh"},"expect":[]}]}`
	os.WriteFile(filepath.Join(fix, "good.json"), []byte(good), 0o644)
	var out bytes.Buffer
	if err := runRulesTest(context.Background(), &out, io.Discard, rulesTestConfig{dir: dir, module: mod}); err != nil {
		t.Fatalf("good fixtures failed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "2 passed, 0 failed") {
		t.Fatalf("output:\n%s", out.String())
	}
	bad := `{"cases":[{"name":"wrong priority","event":{"kind":"exec","proc.name":"sh","container.id":"c"},"expect":[{"rule":"Terminal shell in container","priority":"Critical"}]}]}`
	os.WriteFile(filepath.Join(fix, "bad.json"), []byte(bad), 0o644)
	out.Reset()
	err := runRulesTest(context.Background(), &out, io.Discard, rulesTestConfig{dir: dir, module: mod})
	if err == nil || !strings.Contains(out.String(), "FAIL bad.json: wrong priority: rule \"Terminal shell in container\": priority Warning, want Critical") {
		t.Fatalf("bad fixture: err=%v\n%s", err, out.String())
	}
}
