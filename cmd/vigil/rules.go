package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilsec/vigil/guard/rules"
	"github.com/vigilsec/vigil/guard/rules/fixture"
	"github.com/vigilsec/vigil/guard/rules/rulebuild"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Build and test Wasm rule modules",
		Long: `Rules are WebAssembly modules written in Go, C, Rust, AssemblyScript or WAT
against one ABI (wasm-rules/ABI.md). 'rules build' compiles a rule directory
with the toolchain its files call for; 'rules test' runs its recorded
fixtures (from 'vigil record') and reports each case. See docs/writing-rules.md.`,
		Example: `  vigil rules build sdk/rust/example
  vigil rules test sdk/rust/example`,
	}
	var b rulesBuildConfig
	build := &cobra.Command{
		Use:   "build DIR|FILE",
		Short: "Build a rule module (Go, C, Rust, AssemblyScript or WAT, detected from the files)",
		Long: `Compiles DIR (or a single source FILE) to a .wasm rule module: go.mod or *.go means Go
(GOOS=wasip1, c-shared reactor), Cargo.toml or *.rs Rust (wasm32-unknown-unknown),
*.c C (clang --target=wasm32), package.json or *.ts AssemblyScript, *.wat WAT.
Unless --no-check, the module is then loaded the way the guard loads it (its
exports, metadata and rules are checked and printed); the first load compiles
it to native code, cached under $CACHE/wazero. Progress goes to stderr.`,
		Example: `  vigil rules build sdk/c/example
  vigil rules build -o /tmp/shell.wasm sdk/go/example
  vigil rules build wasm-rules/standard`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b.src = args[0]
			return runRulesBuild(c.Context(), c.OutOrStdout(), c.ErrOrStderr(), b)
		},
	}
	build.Flags().StringVarP(&b.out, "output", "o", "", "output .wasm path (default DIR/build/<name>.wasm)")
	build.Flags().BoolVar(&b.noCheck, "no-check", false, "skip loading the built module to check its exports and metadata")
	var t rulesTestConfig
	test := &cobra.Command{
		Use:   "test DIR",
		Short: "Run DIR/fixtures/*.json against the rule module built from DIR",
		Long: `Builds DIR (or takes --module), then runs every case of every fixture file: each
case is an event and the verdicts the rule must return for it (none for a
negative case). Prints ok/FAIL per case and exits non-zero when any case fails.
Record real events as fixtures with 'vigil record'.`,
		Example: `  vigil rules test sdk/c/example
  vigil rules test --module build/shell.wasm --fixtures my-cases/ sdk/c/example`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			t.dir = args[0]
			return runRulesTest(c.Context(), c.OutOrStdout(), c.ErrOrStderr(), t)
		},
	}
	test.Flags().StringVar(&t.module, "module", "", "use this prebuilt .wasm instead of building DIR")
	test.Flags().StringVar(&t.fixtures, "fixtures", "", "fixture directory (default DIR/fixtures)")
	cmd.AddCommand(build, test)
	return cmd
}

type rulesBuildConfig struct {
	src, out string
	noCheck  bool
}

// runRulesBuild writes the module's description to w and progress to prog.
func runRulesBuild(ctx context.Context, w, prog io.Writer, cfg rulesBuildConfig) error {
	out, err := rulebuild.Build(ctx, cfg.src, rulebuild.Options{Out: cfg.out, Progress: prog})
	if err != nil {
		return err
	}
	if cfg.noCheck {
		return nil
	}
	eng, cleanup, err := engineFor(ctx, out, prog)
	if err != nil {
		return err
	}
	defer cleanup()
	return describe(w, eng)
}

type rulesTestConfig struct {
	dir, module, fixtures string
}

func runRulesTest(ctx context.Context, w, prog io.Writer, cfg rulesTestConfig) error {
	mod := cfg.module
	if mod == "" {
		tmp, err := os.MkdirTemp("", "vigil-rules-test-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		name := filepath.Base(filepath.Clean(cfg.dir))
		if mod, err = rulebuild.Build(ctx, cfg.dir, rulebuild.Options{Out: filepath.Join(tmp, name+".wasm"), Progress: prog}); err != nil {
			return err
		}
	}
	eng, cleanup, err := engineFor(ctx, mod, prog)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := describe(w, eng); err != nil {
		return err
	}
	fdir := cfg.fixtures
	if fdir == "" {
		fdir = filepath.Join(cfg.dir, "fixtures")
	}
	files, order, err := fixture.LoadDir(fdir)
	if err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no fixtures in %s", fdir)
	}
	pass, fail := 0, 0
	for _, path := range order {
		res, err := eng.RunCases(ctx, files[path])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range res {
			if r.Err != nil {
				fail++
				fmt.Fprintf(w, "FAIL %s: %s: %v\n", filepath.Base(path), r.Name, r.Err)
			} else {
				pass++
				fmt.Fprintf(w, "ok   %s: %s\n", filepath.Base(path), r.Name)
			}
		}
	}
	if s := eng.Stats(); s.Quarantined > 0 {
		return fmt.Errorf("module quarantined during the run: %v", s.Modules[0].Reason)
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", pass, fail)
	if fail > 0 {
		return fmt.Errorf("%d of %d cases failed", fail, pass+fail)
	}
	return nil
}

// engineFor loads one module file in a private engine, telling prog how
// long the load took: the first load of a module compiles it to native code
// (seconds for a Go-built module), later loads hit the on-disk cache.
func engineFor(ctx context.Context, wasm string, prog io.Writer) (*rules.Engine, func(), error) {
	dir, err := os.MkdirTemp("", "vigil-rules-")
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(wasm)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, filepath.Base(wasm)), b, 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	cache := compileCacheDir()
	fmt.Fprintf(prog, "==> loading %s (compiled to native code on first use, cached in %s)\n", filepath.Base(wasm), cache)
	start := time.Now()
	eng, err := rules.New(ctx, rules.Config{Dir: dir, CacheDir: cache})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	fmt.Fprintf(prog, "==> loaded in %s\n", time.Since(start).Round(time.Millisecond))
	return eng, func() { eng.Close(); os.RemoveAll(dir) }, nil
}

// compileCacheDir is the shared wazero cache, or "" when it cannot be made.
func compileCacheDir() string {
	base := os.Getenv("CACHE")
	if base == "" {
		base = "/var/cache/vigil"
	}
	d := filepath.Join(base, "wazero")
	if os.MkdirAll(d, 0o755) != nil {
		return ""
	}
	return d
}

func describe(w io.Writer, eng *rules.Engine) error {
	s := eng.Stats()
	if len(s.Modules) != 1 {
		return fmt.Errorf("expected one module, found %d", len(s.Modules))
	}
	m := s.Modules[0]
	if m.Quarantined {
		return fmt.Errorf("module %s refused: %w", m.Name, m.Reason)
	}
	if m.Reason != nil {
		return errors.New(m.Reason.Error())
	}
	fmt.Fprintf(w, "module %q (%s, sha256 %s): %d rules: %s\n", m.Module, m.Name, m.Digest[:12], len(m.Rules), strings.Join(m.Rules, ", "))
	return nil
}
