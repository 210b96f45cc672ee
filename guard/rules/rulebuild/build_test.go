package rulebuild

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDetect(t *testing.T) {
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
