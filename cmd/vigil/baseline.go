package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard/baseline"
)

// baselineConfig is what `vigil baseline` subcommands need.
type baselineConfig struct {
	DB   string
	JSON bool
	// Progress receives status lines for long reads (nil: none).
	Progress io.Writer
}

func newBaselineCmd() *cobra.Command {
	var cfg baselineConfig
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "List, inspect and accept learned behavior profiles",
		Long: "Works on the guard's persisted profile store. The guard holds the store\n" +
			"open while it runs; these commands wait briefly and then refuse.",
		Example: `  vigil baseline list
  vigil baseline show shop/Deployment/cart:app@7d4b9c
  vigil baseline accept shop/Deployment/cart:app@7d4b9c exec:/usr/bin/curl`,
	}
	cmd.PersistentFlags().StringVar(&cfg.DB, "db", "/var/lib/vigil/baseline.db", "profile store (bbolt file)")
	cmd.PersistentFlags().BoolVar(&cfg.JSON, "json", false, "print JSON")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List profiles: key, state, behaviors, events",
			Long: "Lists every behavior profile: its key (namespace/Kind/name:container@revision),\n" +
				"state (learning, stable, ...), number of learned behaviors and events seen.",
			Example: "  vigil baseline list\n  vigil baseline list --json --db /var/lib/vigil/baseline.db",
			Args:    cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				cfg.Progress = c.ErrOrStderr()
				return runBaselineList(c.Context(), cfg, c.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "show KEY",
			Short: "Show one profile's behaviors (KEY is namespace/Kind/name:container@revision)",
			Long: "Prints one profile: its state (and the profile it inherited from, if any),\n" +
				"its event counts, and every behavior it holds, one per line.",
			Example: "  vigil baseline show shop/Deployment/cart:app@7d4b9c\n  vigil baseline show --json shop/Deployment/cart:app@7d4b9c",
			Args:    cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return runBaselineShow(c.Context(), cfg, args[0], c.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "accept KEY BEHAVIOR...",
			Short: "Fold reviewed behaviors (e.g. exec:/usr/bin/curl) into a profile",
			Long: "Marks behaviors an operator reviewed as normal for the profile, so they no\n" +
				"longer raise deviation alerts. BEHAVIOR is kind:value, as 'show' prints it.",
			Example: "  vigil baseline accept shop/Deployment/cart:app@7d4b9c exec:/usr/bin/curl open:/etc/passwd",
			Args:    cobra.MinimumNArgs(2),
			RunE: func(c *cobra.Command, args []string) error {
				return runBaselineAccept(c.Context(), cfg, args[0], args[1:], c.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "lock KEY",
			Short: "Lock a ready profile: execs outside it are denied in the kernel",
			Long: "Marks a ready profile locked in the store. The guard loads it locked at\n" +
				"start and puts its exec allow-list in force for every running container\n" +
				"of that revision (deny in enforce mode, \"would have denied\" in audit\n" +
				"mode; rule \"Profile lock\"), with or without baseline.lock.",
			Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return runBaselineSetLock(c.Context(), cfg, args[0], true, c.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "unlock KEY",
			Short: "Unlock a profile (back to ready)",
			Long: "Marks a locked profile ready again. The guard lifts the lock at start.\n" +
				"With baseline.lock on, the guard locks every ready profile again; keep\n" +
				"one unlocked with the mode override `modes.rules: {\"NS/NAME:Profile lock\": off}`.",
			Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				return runBaselineSetLock(c.Context(), cfg, args[0], false, c.OutOrStdout())
			},
		},
	)
	return cmd
}

func openBaselineStore(path string) (*baseline.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("baseline store: %w", err)
	}
	s, err := baseline.OpenStore(path, time.Second)
	if errors.Is(err, baseline.ErrStoreLocked) {
		return nil, fmt.Errorf("%w (is a guard running? stop it, or accept through its API)", err)
	}
	return s, err
}

func runBaselineList(_ context.Context, cfg baselineConfig, out io.Writer) error {
	s, err := openBaselineStore(cfg.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "==> reading profiles from %s\n", cfg.DB)
	}
	start := time.Now()
	ps, err := s.List()
	if err != nil && len(ps) == 0 {
		return err
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "==> %d profiles read in %s\n", len(ps), time.Since(start).Round(time.Millisecond))
	}
	sums := make([]baseline.Summary, 0, len(ps))
	for _, p := range ps {
		sums = append(sums, baseline.Summarize(p))
	}
	if cfg.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if e := enc.Encode(sums); e != nil {
			return e
		}
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tSTATE\tPARENT\tBEHAVIORS\tLEARNED\tEVENTS\tCREATED")
	for _, m := range sums {
		parent := m.Parent
		if parent == "" {
			parent = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", baseline.FormatKey(m.Key), m.State, parent,
			m.Behaviors, m.Learned, m.Events, m.Created.UTC().Format(time.RFC3339))
	}
	if e := tw.Flush(); e != nil {
		return e
	}
	// Damaged records were skipped; say so after listing the rest.
	return err
}

func runBaselineShow(_ context.Context, cfg baselineConfig, key string, out io.Writer) error {
	k, err := baseline.ParseKey(key)
	if err != nil {
		return err
	}
	s, err := openBaselineStore(cfg.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	p, err := s.Get(k)
	if err != nil {
		return err
	}
	bs := p.Behaviors()
	if cfg.JSON {
		strs := make([]string, len(bs))
		for i, b := range bs {
			strs[i] = b.String()
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			baseline.Summary
			Behaviors []string `json:"behaviors"`
		}{baseline.Summarize(p), strs})
	}
	fmt.Fprintf(out, "profile %s\nstate %s", baseline.FormatKey(k), p.State)
	if p.Parent != "" {
		fmt.Fprintf(out, " (inherited from %s)", p.Parent)
	}
	fmt.Fprintf(out, "\nevents %d, learned %d since creation\n", p.Events, p.Learned)
	for _, b := range bs {
		fmt.Fprintln(out, b)
	}
	return nil
}

func runBaselineAccept(_ context.Context, cfg baselineConfig, key string, behaviors []string, out io.Writer) error {
	k, err := baseline.ParseKey(key)
	if err != nil {
		return err
	}
	bs := make([]baseline.Behavior, len(behaviors))
	for i, s := range behaviors {
		if bs[i], err = baseline.ParseBehavior(s); err != nil {
			return err
		}
	}
	s, err := openBaselineStore(cfg.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, b := range bs {
		grew, err := s.Accept(k, b)
		if err != nil {
			return err
		}
		if grew {
			fmt.Fprintf(out, "accepted %s\n", b)
		} else {
			fmt.Fprintf(out, "already in profile: %s\n", b)
		}
	}
	return nil
}

// runBaselineSetLock moves a profile between ready and locked in the store.
// The guard holds the store while it runs, so this works on a stopped
// guard, which reads the state at its next start.
func runBaselineSetLock(_ context.Context, cfg baselineConfig, key string, lock bool, out io.Writer) error {
	k, err := baseline.ParseKey(key)
	if err != nil {
		return err
	}
	s, err := openBaselineStore(cfg.DB)
	if err != nil {
		return err
	}
	defer s.Close()
	p, err := s.Get(k)
	if err != nil {
		return err
	}
	want := baseline.StateReady
	if lock {
		want = baseline.StateLocked
	}
	switch {
	case p.State == want:
		fmt.Fprintf(out, "%s is already %s\n", key, want)
		return nil
	case p.State == baseline.StateLearning:
		return fmt.Errorf("lock %s: %w", key, baseline.ErrNotReady)
	}
	p.State = want
	if err := s.Put(p); err != nil {
		return err
	}
	if lock {
		fmt.Fprintf(out, "locked %s: %d executables allowed\n", key, len(p.AllowedExecs()))
	} else {
		fmt.Fprintf(out, "unlocked %s\n", key)
	}
	return nil
}
