package rulebuild

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const repoRoot = "../../.."

func TestDetect(t *testing.T) {
	for dir, want := range map[string]Lang{
		"sdk/go/example":                        Go,
		"sdk/c/example":                         C,
		"sdk/rust/example":                      Rust,
		"wasm-rules/conformance/rust":           Rust,
		"sdk/assemblyscript/example":            AssemblyScript,
		"wasm-rules/conformance/assemblyscript": AssemblyScript,
		"wasm-rules/hostile/trap.wat":           WAT,
	} {
		got, err := Detect(filepath.Join(repoRoot, dir))
		if err != nil || got != want {
			t.Errorf("Detect(%s) = %q, %v; want %q", dir, got, err, want)
		}
	}
	// A Cargo.toml alone marks Rust, a package.json alone AssemblyScript.
	for file, want := range map[string]Lang{"Cargo.toml": Rust, "package.json": AssemblyScript} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, file), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := Detect(d); err != nil || got != want {
			t.Errorf("Detect(dir with %s) = %q, %v; want %q", file, got, err, want)
		}
	}
	if _, err := Detect(t.TempDir()); !errors.Is(err, ErrUnknownLanguage) {
		t.Errorf("empty dir: %v, want ErrUnknownLanguage", err)
	}
}

// A Rust or AssemblyScript directory without its entry file is a clear
// error before any compiler runs.
func TestMissingEntry(t *testing.T) {
	for file, want := range map[string]string{"Cargo.toml": "src/lib.rs or lib.rs", "package.json": "assembly/index.ts or index.ts"} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, file), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Build(context.Background(), d, Options{SDKRoot: repoRoot})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s only: %v, want an error naming %s", file, err, want)
		}
	}
}

// TestRustSDKUnit runs the Rust SDK's own unit tests (decoding, malformed
// batches, output records, metadata) natively with the same rustc.
func TestRustSDKUnit(t *testing.T) {
	rustc := rustcTool()
	if _, err := exec.LookPath(rustc); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rustc: %v (scripts/deps.sh wasm)", err)
		}
		t.Skipf("rustc: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sdk-test")
	out, err := exec.Command(rustc, "--edition=2021", "--test", "-o", bin, filepath.Join(repoRoot, "sdk", "rust", "src", "lib.rs")).CombinedOutput()
	if err != nil {
		t.Fatalf("rustc --test: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test result: ok") {
		t.Fatalf("rust SDK tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestDetectByFile(t *testing.T) {
	for files, want := range map[string]Lang{
		"go.mod":            Go,
		"main.go":           Go,
		"Cargo.toml":        Rust,
		"src/lib.rs":        Rust,
		"package.json":      AssemblyScript,
		"assembly/index.ts": AssemblyScript,
		"rule.c":            C,
		"rule.wat":          WAT,
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, files)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
		got, err := Detect(dir)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", files, got, err, want)
		}
	}
	if _, err := Detect(t.TempDir()); !errors.Is(err, ErrUnknownLanguage) {
		t.Errorf("empty dir: %v", err)
	}
}
