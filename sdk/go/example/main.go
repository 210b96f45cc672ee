// Command example is a Vigil rule written in Go: a shell started inside a
// container. See ../README.md.
package main

import vigil "github.com/vigilsec/vigil/sdk/go"

func init() {
	vigil.Module("go-example", "0.1.0")
	vigil.Register(vigil.Rule{
		Name:        "Terminal shell in container",
		Description: "A shell (bash, sh, zsh) was started inside a container.",
		Priority:    vigil.Warning,
		Kinds:       []vigil.Kind{vigil.KindExec},
		Tags:        []string{"container", "shell", "mitre_execution", "T1059"},
	}, Evaluate)
}

// Evaluate is the rule.
func Evaluate(e *vigil.Event) vigil.Verdict {
	if e.ContainerId() == "" {
		return vigil.Allow()
	}
	switch e.ProcName() {
	case "bash", "sh", "zsh":
		return vigil.Fire("Shell spawned in a container",
			vigil.FieldProcName, vigil.FieldProcArgs, vigil.FieldContainerId, vigil.FieldK8sPod)
	}
	return vigil.Allow()
}

func main() {}
