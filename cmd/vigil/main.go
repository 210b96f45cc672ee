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
		Use:   "vigil",
		Short: "Enforcing admission-plus-runtime guard for containers and Kubernetes",
		Long: `Vigil is one binary for the node guard (eBPF sensors, Wasm rules, kill/block
or audit), the validating admission webhook, and the tools around them:
building and unit-testing rules, recording fixtures, the would-block report
and the learned behavior profiles.

Run 'vigil COMMAND --help' for each command's flags and examples.`,
		Example: `  sudo vigil guard --env staging --rules wasm-rules/build
  vigil rules build sdk/c/example && vigil rules test sdk/c/example
  vigil report would-block --since 7d`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Applies to every subcommand: name the command whose help lists its
	// flags, since the bare "unknown flag" does not say where to look.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%s: %w (see '%s --help')", c.CommandPath(), err, c.CommandPath())
	})
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
