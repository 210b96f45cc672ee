package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRecordCmd is a placeholder until its issue lands; it refuses to run
// rather than pretend.
func newRecordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "record",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("record: not built yet")
		},
	}
}
