// Command vigil is Vigil's single binary: the node guard, the admission
// webhook, and the tools around them. main only parses flags; each
// subcommand's work lives in its package behind a run(ctx, cfg) error.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vigil",
		Short:         "Enforcing admission-plus-runtime guard for containers and Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newGuardCmd(),
		newWebhookCmd(),
		newRulesCmd(),
		newRecordCmd(),
		newStatusCmd(),
		newReportCmd(),
		newBaselineCmd(),
	)
	return root
}
