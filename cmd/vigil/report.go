package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard/enforce"
)

type reportConfig struct {
	DB    string
	Since string
	JSON  bool
	Out   io.Writer
	// Progress receives status lines for long reads (nil: none).
	Progress io.Writer
	Now      func() time.Time
}

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Reports built from what the guards recorded",
		Long: `Reports read the guard's audit record store (--db). In audit mode (staging)
every verdict the guard did not carry out is recorded; 'would-block' sums them
per workload: the evidence for switching production to enforce.`,
		Example: `  vigil report would-block --since 7d
  vigil report would-block --db /var/lib/vigil/audit.db --json`,
	}
	cfg := reportConfig{Out: os.Stdout, Now: time.Now}
	wb := &cobra.Command{
		Use:   "would-block",
		Short: "What enforce mode would have blocked or killed, per workload (the promotion report)",
		Long: `Lists, per workload, every rule whose kill or block verdict audit mode only
recorded, with counts, first and last time seen and example events. An empty
report means enforce mode would have changed nothing over --since.
Progress on large stores goes to stderr.`,
		Example: `  vigil report would-block
  vigil report would-block --since 36h --json | jq '.[].workload'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Progress = cmd.ErrOrStderr()
			return runWouldBlock(cmd.Context(), cfg)
		},
	}
	wb.Flags().StringVar(&cfg.DB, "db", enforce.DefaultAuditDB, "audit record store written by the guard")
	wb.Flags().StringVar(&cfg.Since, "since", "7d", "how far back to look (e.g. 7d, 36h, 1d12h)")
	wb.Flags().BoolVar(&cfg.JSON, "json", false, "print JSON")
	cmd.AddCommand(wb)
	return cmd
}

func runWouldBlock(_ context.Context, cfg reportConfig) error {
	since, err := enforce.ParseSince(cfg.Since)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.DB); err != nil {
		return fmt.Errorf("audit store: %w", err)
	}
	s, err := enforce.OpenAuditStore(cfg.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	from := cfg.Now().Add(-since)
	prog := cfg.Progress
	if prog == nil {
		prog = io.Discard
	}
	start := time.Now()
	fmt.Fprintf(prog, "==> reading audit records since %s from %s\n", from.UTC().Format(time.RFC3339), cfg.DB)
	recs, err := s.Since(from)
	if err != nil {
		return err
	}
	fmt.Fprintf(prog, "==> %d records read in %s\n", len(recs), time.Since(start).Round(time.Millisecond))
	rep := enforce.ReportWouldBlock(recs)
	if cfg.JSON {
		enc := json.NewEncoder(cfg.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(cfg.Out, "Would-block report since %s (%s)\n", from.UTC().Format(time.RFC3339), cfg.Since)
	if len(rep) == 0 {
		fmt.Fprintln(cfg.Out, "No audit-mode decisions recorded: enforce mode would have changed nothing.")
		return nil
	}
	for _, w := range rep {
		var total uint64
		for _, e := range w.Entries {
			total += e.Count
		}
		fmt.Fprintf(cfg.Out, "\n%s: %d actions would have been taken\n", w.Workload, total)
		for _, e := range w.Entries {
			fmt.Fprintf(cfg.Out, "  %-24s would have %-6s %-8s x%-6d first %s  last %s\n", e.Rule, verb(e.Action), e.Kind,
				e.Count, e.FirstSeen.UTC().Format(time.RFC3339), e.LastSeen.UTC().Format(time.RFC3339))
			fmt.Fprintf(cfg.Out, "      e.g. %s\n", strings.Join(e.Examples, "; "))
		}
	}
	return nil
}

func verb(action string) string {
	switch action {
	case "kill":
		return "killed"
	case "block":
		return "blocked"
	}
	return action
}
