// Command conformance is the conformance module (../README.md) in Go.
package main

import (
	"net/netip"

	vigil "github.com/vigilsec/vigil/sdk/go"
)

func init() {
	vigil.Module("conformance", "1.0.0")
	vigil.Register(vigil.Rule{Name: "conf-shell", Kinds: []vigil.Kind{vigil.KindExec}, Priority: vigil.Warning},
		func(e *vigil.Event) vigil.Verdict {
			if n := e.ProcName(); e.ContainerId() != "" && (n == "bash" || n == "sh") {
				return vigil.Alert(vigil.Default, "shell in container", vigil.FieldProcName, vigil.FieldContainerId)
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-kill-port", Kinds: []vigil.Kind{vigil.KindConnect}, Priority: vigil.Notice},
		func(e *vigil.Event) vigil.Verdict {
			if e.NetDstPort() == 4444 {
				return vigil.Kill(vigil.Critical, "connect to 4444", vigil.FieldNetDstPort)
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-block-arg", Kinds: []vigil.Kind{vigil.KindExec}, Priority: vigil.Error, Action: vigil.ActionBlock},
		func(e *vigil.Event) vigil.Verdict {
			if e.ProcArgs().Contains("--evil") {
				return vigil.Fire("evil argument")
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-addr", Kinds: []vigil.Kind{vigil.KindConnect}, Priority: vigil.Notice},
		func(e *vigil.Event) vigil.Verdict {
			if a := e.NetDstAddr(); a.Is6() && a == netip.IPv6Loopback() {
				return vigil.Fire("loopback v6")
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-setuid", Kinds: []vigil.Kind{vigil.KindSetuid}, Priority: vigil.Critical},
		func(e *vigil.Event) vigil.Verdict {
			if e.PrivId0() == -1 && e.PrivId1() == 0 && e.UserEuid() != 0 {
				return vigil.Fire("setuid root", vigil.FieldPrivId1, vigil.FieldUserEuid)
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-memfd", Kinds: []vigil.Kind{vigil.KindExec}, Priority: vigil.Critical},
		func(e *vigil.Event) vigil.Verdict {
			if e.ProcExeMemfd() {
				return vigil.Alert(vigil.Critical, "memfd exec")
			}
			return vigil.Allow()
		})
	vigil.Register(vigil.Rule{Name: "conf-observe", Kinds: []vigil.Kind{vigil.KindExec}, Priority: vigil.Debug},
		func(e *vigil.Event) vigil.Verdict { return vigil.Observe("exec", vigil.FieldProcExe) })
	vigil.Register(vigil.Rule{Name: "conf-admission", Kinds: []vigil.Kind{vigil.KindAdmission}, Priority: vigil.Warning, Action: vigil.ActionBlock},
		func(e *vigil.Event) vigil.Verdict { return vigil.Block(vigil.Default, "admission denied") })
}

func main() {}
