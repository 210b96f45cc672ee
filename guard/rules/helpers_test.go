package rules

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/privtest"
)

const repoRoot = "../.."

var (
	buildOnce sync.Once
	buildErr  error
	buildLog  []byte
)

// buildDir returns wasm-rules/build after bringing it up to date with
// scripts/build-rules.sh (incremental: quick when nothing changed).
func buildDir(t testing.TB) string {
	t.Helper()
	privtest.RequireTool(t, "/usr/bin/clang-14")
	privtest.RequireTool(t, "/usr/bin/wat2wasm")
	buildOnce.Do(func() {
		cmd := exec.Command("scripts/build-rules.sh")
		cmd.Dir = repoRoot
		buildLog, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("scripts/build-rules.sh: %v\n%s", buildErr, buildLog)
	}
	return filepath.Join(repoRoot, "wasm-rules", "build")
}

// newEngine copies the given module files into a fresh directory and loads
// it.
func newEngine(t testing.TB, cfg Config, files ...string) *Engine {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	for _, f := range files {
		copyFile(t, f, filepath.Join(cfg.Dir, filepath.Base(f)))
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	// Write then rename, as a deployment would, so a polling reload never
	// reads a half-written module.
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// expectedReason reads the ";; expect: ErrXxx" header of a hostile module's
// .wat source.
func expectedReason(t testing.TB, wasm string) error {
	t.Helper()
	src := filepath.Join(repoRoot, "wasm-rules", "hostile", strings.TrimSuffix(filepath.Base(wasm), ".wasm")+".wat")
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	name := strings.TrimSpace(strings.TrimPrefix(line, ";; expect:"))
	for _, e := range []error{ErrNotWasm, ErrMissingExport, ErrUnknownImport, ErrABIVersion, ErrBadMeta, ErrInit,
		ErrTrap, ErrDeadline, ErrMemoryLimit, ErrBadPointer, ErrBadOutput, ErrSlow} {
		if errName(e) == name {
			return e
		}
	}
	t.Fatalf("%s: unknown expectation %q", src, name)
	return nil
}

func errName(e error) string {
	switch {
	case errors.Is(e, ErrNotWasm):
		return "ErrNotWasm"
	case errors.Is(e, ErrMissingExport):
		return "ErrMissingExport"
	case errors.Is(e, ErrUnknownImport):
		return "ErrUnknownImport"
	case errors.Is(e, ErrABIVersion):
		return "ErrABIVersion"
	case errors.Is(e, ErrBadMeta):
		return "ErrBadMeta"
	case errors.Is(e, ErrInit):
		return "ErrInit"
	case errors.Is(e, ErrTrap):
		return "ErrTrap"
	case errors.Is(e, ErrDeadline):
		return "ErrDeadline"
	case errors.Is(e, ErrMemoryLimit):
		return "ErrMemoryLimit"
	case errors.Is(e, ErrBadPointer):
		return "ErrBadPointer"
	case errors.Is(e, ErrBadOutput):
		return "ErrBadOutput"
	case errors.Is(e, ErrSlow):
		return "ErrSlow"
	}
	return ""
}

func moduleStats(t testing.TB, e *Engine, name string) ModuleStats {
	t.Helper()
	for _, m := range e.Stats().Modules {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("module %s not loaded", name)
	return ModuleStats{}
}

// waitFor polls cond for up to 30 s (reloads poll every 20 ms in tests;
// the bound covers compiling a module on a loaded machine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
