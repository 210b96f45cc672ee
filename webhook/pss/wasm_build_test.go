package pss_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestBuildsAsWasmGuest keeps the package compilable as a Wasm guest, the
// promise that lets the same checks run behind the rule ABI.
func TestBuildsAsWasmGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a wasip1 build; skipped in -short")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 build: %v\n%s", err, out)
	}
}
