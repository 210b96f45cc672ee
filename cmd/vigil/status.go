package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard/enforce"
)

type statusConfig struct {
	JSON bool
	Out  io.Writer
}

func newStatusCmd() *cobra.Command {
	cfg := statusConfig{Out: os.Stdout}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Probe and print this node's enforcement backends",
		Long: "status probes every enforcement backend on this node for real (it loads the\n" +
			"BPF programs and marks a temporary file with fanotify) and prints which are\n" +
			"active, and why the others are not. Needs root.",
		Example: "  sudo vigil status\n  sudo vigil status --json",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runStatus(cmd.Context(), cfg) },
	}
	cmd.Flags().BoolVar(&cfg.JSON, "json", false, "print the report as JSON")
	return cmd
}

func runStatus(_ context.Context, cfg statusConfig) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("status: probing enforcement backends needs root")
	}
	// Staging mode: the probe loads programs but no workload is enforced.
	e, err := enforce.New(enforce.Config{Modes: enforce.ModeConfig{Preset: enforce.PresetStaging}})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	rep := e.Report()
	if err := e.Close(); err != nil {
		return fmt.Errorf("status: close probe: %w", err)
	}
	if cfg.JSON {
		enc := json.NewEncoder(cfg.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintln(cfg.Out, "Enforcement backends on this node:")
	_, err = fmt.Fprint(cfg.Out, rep.String())
	return err
}
