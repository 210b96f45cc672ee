package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard"
	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules/fixture"
)

type recordFlags struct {
	out       string
	duration  time.Duration
	count     int
	kinds     []string
	container string
	comm      string
	hostToo   bool
}

func newRecordCmd() *cobra.Command {
	var f recordFlags
	cmd := &cobra.Command{
		Use:   "record",
		Short: "Capture live events into a rule test fixture",
		Long: `Capture live, fully enriched events from this host's sensors into a
fixture file that 'vigil rules test' runs. Each recorded event becomes a case
with an empty expectation (no verdict); edit the expectations of the cases
your rule should fire on, and keep the rest as negative cases.`,
		Example: `  vigil record --out shell.json --kind exec --container 3f2a --duration 30s
  vigil record --out all.json --count 200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRecord(cmd.Context(), f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.out, "out", "o", "-", "fixture file to write (- for stdout)")
	fl.DurationVar(&f.duration, "duration", 30*time.Second, "stop after this long")
	fl.IntVar(&f.count, "count", 0, "stop after this many events (0: no limit)")
	fl.StringSliceVar(&f.kinds, "kind", nil, "event kinds to keep, e.g. exec,open,connect (default all)")
	fl.StringVar(&f.container, "container", "", "keep events of containers whose id starts with this")
	fl.StringVar(&f.comm, "comm", "", "keep events of processes with this command name")
	fl.BoolVar(&f.hostToo, "host", true, "keep host (non-container) events when --container is not set")
	return cmd
}

// recorder filters events and collects them as fixture cases.
type recorder struct {
	f     recordFlags
	kinds map[event.Kind]bool
	mu    sync.Mutex
	cases []fixture.Case
	done  chan struct{}
	once  sync.Once
}

func newRecorder(f recordFlags) (*recorder, error) {
	r := &recorder{f: f, done: make(chan struct{})}
	if len(f.kinds) > 0 {
		r.kinds = map[event.Kind]bool{}
		for _, k := range f.kinds {
			kind, ok := event.ParseKind(strings.TrimSpace(k))
			if !ok {
				return nil, fmt.Errorf("unknown event kind %q", k)
			}
			r.kinds[kind] = true
		}
	}
	return r, nil
}

func (r *recorder) keep(e *event.Event) bool {
	if r.kinds != nil && !r.kinds[e.Kind] {
		return false
	}
	if r.f.container != "" && !strings.HasPrefix(e.Container.ID, r.f.container) {
		return false
	}
	if r.f.container == "" && !r.f.hostToo && e.Container.ID == "" {
		return false
	}
	if r.f.comm != "" && e.Proc.Name != r.f.comm {
		return false
	}
	return true
}

func (r *recorder) add(e *event.Event) {
	if !r.keep(e) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f.count > 0 && len(r.cases) >= r.f.count {
		return
	}
	r.cases = append(r.cases, fixture.Case{
		Name:   fmt.Sprintf("%03d %s %s", len(r.cases)+1, e.Kind, e.Proc.Name),
		Event:  json.RawMessage(e.AppendJSON(nil)),
		Expect: []fixture.Expect{},
	})
	if r.f.count > 0 && len(r.cases) >= r.f.count {
		r.once.Do(func() { close(r.done) })
	}
}

func (r *recorder) write(w io.Writer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(fixture.File{Cases: r.cases})
}

func runRecord(ctx context.Context, f recordFlags, progress io.Writer) error {
	rec, err := newRecorder(f)
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.Rules.Dir = ""
	cfg.Baseline.Disabled = true
	cfg.Metrics.Listen = ""
	off := false
	cfg.Output.Stdout = &off
	cfg.StateDir = os.TempDir()
	log, _ := newLogger("warn")
	g, err := guard.New(ctx, guard.Options{Config: cfg, Log: log, NoEnforce: true, OnEvent: rec.add, Stdout: io.Discard})
	if err != nil {
		return err
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	go func() {
		select {
		case <-rec.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	fmt.Fprintf(progress, "recording for up to %s (Ctrl-C to stop early)...\n", f.duration)
	if err := g.Run(ctx); err != nil {
		return err
	}
	if err := g.Close(); err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if f.out != "-" {
		file, err := os.Create(f.out)
		if err != nil {
			return fmt.Errorf("record: %w", err)
		}
		defer file.Close()
		w = file
	}
	if err := rec.write(w); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	fmt.Fprintf(progress, "recorded %d events to %s\n", len(rec.cases), f.out)
	return nil
}
