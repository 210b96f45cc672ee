// Command pause is the sandbox ("pause") process of the e2e cluster's pods.
// No registry is reachable from the test machines, so the harness builds
// this static binary and packs it as vigil.local/pause:e2e. Like the
// upstream pause it holds the pod's namespaces open, reaps zombies (it is
// PID 1 when the pod shares its PID namespace) and exits on SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run()) }

func run() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return 0
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return 0
}
