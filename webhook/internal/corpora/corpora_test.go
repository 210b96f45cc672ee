package corpora

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The vendored copy must equal the project's shared corpus wherever both
// exist, so tests in a clone without ../shared run against the same oracle.
func TestVendoredPSAMatchesShared(t *testing.T) {
	vendored := filepath.Join("testdata", "psa")
	n := 0
	err := filepath.WalkDir(vendored, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		return nil
	})
	if err != nil || n < 148 {
		t.Fatalf("vendored corpus: %d files, err %v; want the 148 pods plus index", n, err)
	}
	t.Setenv("VIGIL_CORPORA", "")
	dir, err := Dir("psa")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(vendored)
	if dir == abs {
		t.Logf("no shared corpus beside this checkout; using the vendored copy")
		return
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(vendored, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: vendored copy differs from %s (err %v)", rel, dir, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
