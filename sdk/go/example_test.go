//go:build !wasip1

package vigil_test

import (
	"fmt"

	vigil "github.com/vigilsec/vigil/sdk/go"
)

// A rule is one function; under `go test` the native shim runs it on
// fixture events.
func Example() {
	vigil.Register(vigil.Rule{Name: "Shell", Priority: vigil.Warning, Kinds: []vigil.Kind{vigil.KindExec}},
		func(e *vigil.Event) vigil.Verdict {
			if e.ProcName() == "bash" && e.ContainerId() != "" {
				return vigil.Fire("shell in container", vigil.FieldProcName)
			}
			return vigil.Allow()
		})
	got, err := vigil.EvaluateJSON([]byte(`{"kind":"exec","proc.name":"bash","container.id":"abc"}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(got[0])
	got, _ = vigil.EvaluateJSON([]byte(`{"kind":"exec","proc.name":"bash"}`))
	fmt.Println(len(got))
	// Output:
	// verdict "Shell" alert/Warning "shell in container" [proc.name]
	// 0
}
