package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newWebhookCmd is a placeholder until its issue lands; it refuses to run
// rather than pretend.
func newWebhookCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "webhook",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("webhook: not built yet")
		},
	}
}
