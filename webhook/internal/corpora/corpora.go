// Package corpora locates the shared test corpora (shared/corpora/...) that
// sit beside the repository checkout, for tests only.
package corpora

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrNotFound is returned when no shared/corpora directory is reachable.
var ErrNotFound = errors.New("corpora: shared/corpora not found beside the checkout (set VIGIL_CORPORA)")

// Dir returns the directory of the named corpus, e.g. Dir("psa"). It honours
// $VIGIL_CORPORA, else walks up from the working directory looking for
// shared/corpora/<name> (the project's shared copy), else uses the copy
// vendored in this package's testdata, so a clone anywhere is
// self-contained.
func Dir(name string) (string, error) {
	if d := os.Getenv("VIGIL_CORPORA"); d != "" {
		return filepath.Join(d, name), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	var vendored string
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "corpora", name)
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c, nil
		}
		if v := filepath.Join(d, "webhook", "internal", "corpora", "testdata", name); vendored == "" {
			if st, err := os.Stat(v); err == nil && st.IsDir() {
				vendored = v
			}
		}
		if filepath.Dir(d) == d {
			if vendored != "" {
				return vendored, nil
			}
			return "", ErrNotFound
		}
	}
}
