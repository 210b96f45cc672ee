package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newBaselineCmd is a placeholder until its issue lands; it refuses to run
// rather than pretend.
func newBaselineCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "baseline",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("baseline: not built yet")
		},
	}
}
