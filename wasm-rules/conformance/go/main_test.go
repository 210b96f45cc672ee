//go:build !wasip1

package main

import (
	"testing"

	vigil "github.com/vigilsec/vigil/sdk/go"
)

// The native shim runs the same cases the host runs against the Wasm build.
func TestConformanceNative(t *testing.T) {
	res, err := vigil.CheckCases("../cases.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
}
