package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newGuardCmd is a placeholder until its issue lands; it refuses to run
// rather than pretend.
func newGuardCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "guard",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("guard: not built yet")
		},
	}
}
