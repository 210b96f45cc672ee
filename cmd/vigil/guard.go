package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard"
	"github.com/vigilsec/vigil/guard/config"
)

type guardFlags struct {
	configPath string
	mode       string
	env        string
	rulesDir   string
	events     bool
	metrics    string
	stateDir   string
	logLevel   string
}

func newGuardCmd() *cobra.Command {
	var f guardFlags
	cmd := &cobra.Command{
		Use:   "guard",
		Short: "Run the node guard: eBPF sensors, Wasm rules, enforcement, behavior detection",
		Long: `Run the node guard on this host.

It loads the eBPF sensors, evaluates the Wasm rules in --rules, learns each
workload's behavior, and acts per mode: enforce kills or blocks, audit only
records what would have been done, off evaluates nothing. Alerts are JSON
lines on stdout (and any outputs the config file adds).`,
		Example: `  vigil guard --mode audit --rules wasm-rules/build
  vigil guard --config /etc/vigil/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			return runGuard(cmd, cfg, f.logLevel)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configPath, "config", "", "config file (YAML); flags override it")
	fl.StringVar(&f.mode, "mode", "", "mode: audit, enforce or off (default from --env)")
	fl.StringVar(&f.env, "env", "", "environment preset: staging (audit) or production (enforce)")
	fl.StringVar(&f.rulesDir, "rules", "", "directory of .wasm rule modules")
	fl.BoolVar(&f.events, "events", false, "also print every event as a JSON line")
	fl.StringVar(&f.metrics, "metrics", "", "listen address for /metrics, /healthz, /readyz (\"off\" disables)")
	fl.StringVar(&f.stateDir, "state-dir", "", "directory for the audit and baseline databases")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func (f *guardFlags) config(cmd *cobra.Command) (config.Config, error) {
	cfg := config.Default()
	if f.configPath != "" {
		var err error
		if cfg, err = config.Load(f.configPath); err != nil {
			return cfg, err
		}
	}
	fl := cmd.Flags()
	if fl.Changed("env") {
		cfg.Environment = f.env
	}
	if fl.Changed("mode") {
		cfg.Mode = config.ModeName(f.mode)
	}
	if fl.Changed("rules") {
		cfg.Rules.Dir = f.rulesDir
	}
	if fl.Changed("events") {
		cfg.Output.Events = f.events
	}
	if fl.Changed("metrics") {
		cfg.Metrics.Listen = f.metrics
		if f.metrics == "off" {
			cfg.Metrics.Listen = ""
		}
	}
	if fl.Changed("state-dir") {
		cfg.StateDir = f.stateDir
	}
	return cfg, cfg.Validate()
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runGuard(cmd *cobra.Command, cfg config.Config, level string) error {
	log, err := newLogger(level)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	g, err := guard.New(ctx, guard.Options{Config: cfg, Stdout: cmd.OutOrStdout(), Log: log})
	if err != nil {
		return err
	}
	defer g.Close()
	notifySystemd("READY=1")
	err = g.Run(ctx)
	notifySystemd("STOPPING=1")
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	return err
}
