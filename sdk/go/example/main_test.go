//go:build !wasip1

package main

import (
	"testing"

	vigil "github.com/vigilsec/vigil/sdk/go"
)

// Plain `go test` runs the rule natively on the same fixtures that
// `vigil rules test` runs against the Wasm build.
func TestFixtures(t *testing.T) {
	res, err := vigil.CheckCases("fixtures/shell.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
}

func TestShellOnHostIsAllowed(t *testing.T) {
	got, err := vigil.EvaluateJSON([]byte(`{"kind":"exec","proc.name":"sh"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("got %v, want nothing", got)
	}
}
