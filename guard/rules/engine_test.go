package rules

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/rules/fixture"
)

func runFixtureFile(t *testing.T, e *Engine, path string) {
	t.Helper()
	f, err := fixture.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.RunCases(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %s: %v", filepath.Base(path), r.Name, r.Err)
		}
	}
}

// Every SDK language's conformance module must pass the same cases. New
// languages join by dropping build/conformance/<lang>.wasm. Go and C need
// only the base toolchain, so their modules must always exist; Rust and
// AssemblyScript need scripts/deps.sh wasm, which build-rules.sh skips with
// a warning on a developer machine, so their absence fails only under
// CI=true (where the script itself also refuses to skip them).
func TestConformance(t *testing.T) {
	build := buildDir(t)
	mods, _ := filepath.Glob(filepath.Join(build, "conformance", "*.wasm"))
	for _, lang := range []string{"c", "go", "rust", "assemblyscript"} {
		if slices.Contains(mods, filepath.Join(build, "conformance", lang+".wasm")) {
			continue
		}
		if lang == "c" || lang == "go" || os.Getenv("CI") == "true" {
			t.Fatalf("conformance module for %s was not built", lang)
		}
		t.Logf("conformance module for %s was not built (toolchain missing; fatal under CI=true)", lang)
	}
	for _, mod := range mods {
		t.Run(filepath.Base(mod), func(t *testing.T) {
			e := newEngine(t, Config{}, mod)
			if s := e.Stats(); s.Quarantined != 0 {
				t.Fatalf("refused: %v", s.Modules[0].Reason)
			}
			runFixtureFile(t, e, filepath.Join(repoRoot, "wasm-rules", "conformance", "cases.json"))
			ms := e.Stats().Modules[0]
			if ms.Quarantined || ms.Verdicts == 0 || ms.Observations == 0 {
				t.Fatalf("after the run: %+v", ms)
			}
		})
	}
}

// Each SDK's example rule passes its own fixtures, built the way
// scripts/build-rules.sh builds it.
func TestSDKExamples(t *testing.T) {
	build := buildDir(t)
	for _, lang := range []string{"c", "go", "rust", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			mod := filepath.Join(build, "examples", lang+"-example.wasm")
			if _, err := os.Stat(mod); err != nil {
				if lang == "c" || lang == "go" || os.Getenv("CI") == "true" {
					t.Fatal(err)
				}
				t.Skipf("%v (toolchain missing; fatal under CI=true)", err)
			}
			e := newEngine(t, Config{}, mod)
			files, _ := filepath.Glob(filepath.Join(repoRoot, "sdk", lang, "example", "fixtures", "*.json"))
			if len(files) == 0 {
				t.Fatal("no fixtures")
			}
			for _, f := range files {
				runFixtureFile(t, e, f)
			}
		})
	}
}

// Guests that allocate per event (AssemblyScript strings and verdicts, Rust
// and Go output buffers) must keep running over many batches: a runtime
// that never frees (asc --runtime stub) would run out of memory here and be
// quarantined.
func TestConformanceSustained(t *testing.T) {
	build := buildDir(t)
	mods, _ := filepath.Glob(filepath.Join(build, "conformance", "*.wasm"))
	var b Batch
	for i := 0; i < 256; i++ {
		// A 4 KiB container id: a guest that decodes it per event and never
		// frees allocates over 2 MiB per batch, past the 128 MiB limit
		// long before the last batch.
		j := fmt.Sprintf(`{"kind":"exec","proc.name":"bash","proc.exe":"/bin/bash-%d","proc.args":["bash","-c","%0200d"],"container.id":"%04096d"}`, i, i, i)
		if err := b.AddJSON([]byte(j)); err != nil {
			t.Fatal(err)
		}
	}
	for _, mod := range mods {
		t.Run(filepath.Base(mod), func(t *testing.T) {
			e := newEngine(t, Config{Timeout: 10 * time.Second}, mod)
			var dst []Verdict
			for i := 0; i < 100; i++ {
				var err error
				if dst, err = e.EvaluateBatch(context.Background(), &b, dst[:0]); err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				// conf-shell and conf-observe fire on every event.
				if len(dst) != 512 {
					t.Fatalf("batch %d: %d verdicts, want 512 (%+v)", i, len(dst), e.Stats().Modules[0])
				}
			}
			if ms := e.Stats().Modules[0]; ms.Quarantined {
				t.Fatalf("quarantined: %v", ms.Reason)
			}
		})
	}
}

func TestStandardPackFixtures(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{}, filepath.Join(build, "standard.wasm"))
	files, _ := filepath.Glob(filepath.Join(repoRoot, "wasm-rules", "standard", "fixtures", "*.json"))
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		runFixtureFile(t, e, f)
	}
	// Every rule of the pack has at least one positive fixture.
	fired := map[string]bool{}
	for _, f := range files {
		ff, _ := fixture.Load(f)
		for _, c := range ff.Cases {
			for _, x := range c.Expect {
				fired[x.Rule] = true
			}
		}
	}
	for _, r := range moduleStats(t, e, "standard.wasm").Rules {
		if !fired[r] {
			t.Errorf("rule %q has no positive fixture", r)
		}
	}
}

func TestSeedRuleTerminalShell(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{}, filepath.Join(build, "standard.wasm"))
	ev := &event.Event{Kind: event.KindExec, Time: time.Unix(1700000000, 0)}
	ev.Proc.Name, ev.Proc.Exe, ev.Proc.Args = "zsh", "/bin/zsh", []string{"zsh"}
	ev.Container.ID, ev.K8s.Pod = "abc123", "web-0"
	vs, err := e.Evaluate(context.Background(), []*event.Event{ev})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Rule.Name != "Terminal shell in container" || vs[0].Priority != alert.Warning || vs[0].Action != alert.ActionAlert {
		t.Fatalf("verdicts %+v", vs)
	}
	a := vs[0].Alert(ev)
	if a.Fields["proc.name"] != "zsh" || a.Fields["container.id"] != "abc123" || a.Fields["k8s.pod"] != "web-0" {
		t.Fatalf("alert fields %v", a.Fields)
	}
	if !slices.Contains(a.Tags, "T1059") {
		t.Fatalf("tags %v", a.Tags)
	}
}

// replayBatch is every standard-pack fixture event, repeated to n events.
func replayBatch(t testing.TB, n int) *Batch {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "wasm-rules", "standard", "fixtures", "*.json"))
	var evs [][]byte
	for _, f := range files {
		ff, err := fixture.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ff.Cases {
			evs = append(evs, c.Event)
		}
	}
	var b Batch
	for i := 0; i < n; i++ {
		if err := b.AddJSON(evs[i%len(evs)]); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

func TestBatchSplitKeepsEventIndexes(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{BatchSize: 3}, filepath.Join(build, "conformance", "c.wasm"))
	var b Batch
	for i := 0; i < 10; i++ {
		if i%4 == 0 {
			b.AddJSON([]byte(`{"kind":"connect","net.dst_port":4444}`))
		} else {
			b.AddJSON([]byte(`{"kind":"open","file.path":"/x"}`))
		}
	}
	vs, err := e.EvaluateBatch(context.Background(), &b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, v := range vs {
		idx = append(idx, v.Event)
	}
	if !slices.Equal(idx, []int{0, 4, 8}) {
		t.Fatalf("verdict events %v, want [0 4 8]", idx)
	}
	// Routing: the open events never reached the module.
	if ev := e.Stats().Modules[0].Events; ev != 3 {
		t.Fatalf("module saw %d events, want 3", ev)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{MaxInstances: 3, Timeout: 5 * time.Second}, filepath.Join(build, "standard.wasm"), filepath.Join(build, "conformance", "go.wasm"))
	b := replayBatch(t, 64)
	want, err := e.EvaluateBatch(context.Background(), b, nil)
	if err != nil || len(want) == 0 {
		t.Fatal(err, len(want))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				got, err := e.EvaluateBatch(context.Background(), b, nil)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(want) {
					errs <- fmt.Errorf("got %d verdicts, want %d; stats %+v", len(got), len(want), e.Stats())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range e.Stats().Modules {
		if m.Quarantined || m.Instances > 3 {
			t.Fatalf("%s: quarantined=%v (%v), %d instances", m.Name, m.Quarantined, m.Reason, m.Instances)
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{}, filepath.Join(build, "conformance", "c.wasm"))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(context.Background(), []*event.Event{{Kind: event.KindExec}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("evaluate after close: %v", err)
	}
}

func TestMissingDirIsAnError(t *testing.T) {
	if _, err := New(context.Background(), Config{Dir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Fatal("loading a missing directory succeeded")
	}
}

// Each broken guest, loaded next to the standard pack, is quarantined with
// the reason its source declares; the pack keeps answering correctly.
func TestHostileGuestsAreQuarantined(t *testing.T) {
	build := buildDir(t)
	mods, _ := filepath.Glob(filepath.Join(build, "hostile", "*.wasm"))
	if len(mods) < 15 {
		t.Fatalf("only %d hostile modules built", len(mods))
	}
	std := filepath.Join(build, "standard.wasm")
	for _, mod := range mods {
		t.Run(filepath.Base(mod), func(t *testing.T) {
			want := expectedReason(t, mod)
			cfg := hostileConfig()
			if want == ErrSlow {
				cfg.Timeout = 10 * time.Second // slow, never stuck: keep it off the deadline
			}
			e := newEngine(t, cfg, std, mod)
			b := replayBatch(t, 32)
			for i := 0; i < 5; i++ {
				if _, err := e.EvaluateBatch(context.Background(), b, nil); err != nil {
					t.Fatal(err)
				}
			}
			ms := moduleStats(t, e, filepath.Base(mod))
			if !ms.Quarantined || !errors.Is(ms.Reason, want) {
				t.Fatalf("quarantined=%v reason=%v, want %s", ms.Quarantined, ms.Reason, errName(want))
			}
			if ms.Instances != 0 {
				t.Fatalf("%d instances left alive after quarantine", ms.Instances)
			}
			if s := moduleStats(t, e, "standard.wasm"); s.Quarantined {
				t.Fatalf("standard pack quarantined: %v", s.Reason)
			}
			for _, f := range []string{"process.json", "files.json"} {
				runFixtureFile(t, e, filepath.Join(repoRoot, "wasm-rules", "standard", "fixtures", f))
			}
		})
	}
}

// hostileConfig bounds everything tightly so the broken guests fail fast:
// 16 MiB of memory, 100 ms per batch, 1 s to initialize. The slow threshold
// (5 ms for a 32-event batch) is about 100x the standard pack's cost for the
// same batch, so the pack never trips it even on a loaded machine.
func hostileConfig() Config {
	return Config{MemoryLimit: 16 << 20, Timeout: raceSlowdown * 100 * time.Millisecond, InitTimeout: raceSlowdown * time.Second, SlowBatch: raceSlowdown * 5 * time.Millisecond}
}

// With every broken guest loaded at once, the healthy pack's p99 batch
// latency stays within 2x of the pack alone, once the broken guests are
// quarantined. The two engines are measured interleaved so machine load
// hits both alike; a noisy round is retried.
func TestHostileDoNotSlowHealthyRules(t *testing.T) {
	build := buildDir(t)
	std := filepath.Join(build, "standard.wasm")
	mods, _ := filepath.Glob(filepath.Join(build, "hostile", "*.wasm"))
	alone := newEngine(t, hostileConfig(), std)
	mixed := newEngine(t, hostileConfig(), append([]string{std}, mods...)...)
	b := replayBatch(t, 64)
	ctx := context.Background()
	for i := 0; i < 5; i++ { // let the broken ones fail
		if _, err := mixed.EvaluateBatch(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	if s := mixed.Stats(); s.Quarantined != len(mods) {
		for _, m := range s.Modules {
			t.Logf("%s quarantined=%v %v", m.Name, m.Quarantined, m.Reason)
		}
		t.Fatalf("%d of %d broken modules quarantined", s.Quarantined, len(mods))
	}
	var ratio float64
	for round := 0; round < 3; round++ {
		var la, lm []time.Duration
		var dst []Verdict
		for i := 0; i < 400; i++ {
			for _, x := range []struct {
				e   *Engine
				lat *[]time.Duration
			}{{alone, &la}, {mixed, &lm}} {
				start := time.Now()
				var err error
				if dst, err = x.e.EvaluateBatch(ctx, b, dst[:0]); err != nil {
					t.Fatal(err)
				}
				*x.lat = append(*x.lat, time.Since(start))
			}
		}
		pa, pm := p99(la), p99(lm)
		ratio = float64(pm) / float64(pa)
		t.Logf("round %d: p99 alone %v, with %d quarantined guests %v (x%.2f)", round, pa, len(mods), pm, ratio)
		if ratio <= 2 {
			return
		}
	}
	t.Fatalf("healthy p99 is x%.2f of normal with broken guests loaded (limit x2)", ratio)
}

func p99(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*99/100]
}

func TestHotReload(t *testing.T) {
	build := buildDir(t)
	dir := t.TempDir()
	e := newEngine(t, Config{Dir: dir, ReloadInterval: 20 * time.Millisecond}, filepath.Join(build, "examples", "c-example.wasm"))
	shell := &event.Event{Kind: event.KindExec}
	shell.Proc.Name, shell.Container.ID = "bash", "abc"
	rulesFor := func() []string {
		vs, err := e.Evaluate(context.Background(), []*event.Event{shell})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vs {
			out = append(out, v.Module+":"+v.Rule.Name)
		}
		sort.Strings(out)
		return out
	}
	if got := rulesFor(); !slices.Equal(got, []string{"c-example.wasm:Terminal shell in container"}) {
		t.Fatalf("before reload: %v", got)
	}
	// Add a module.
	copyFile(t, filepath.Join(build, "standard.wasm"), filepath.Join(dir, "standard.wasm"))
	waitFor(t, "standard.wasm to load", func() bool { return len(e.Stats().Modules) == 2 })
	if got := rulesFor(); len(got) != 2 {
		t.Fatalf("after add: %v", got)
	}
	// Replace a module in place: a broken build is quarantined...
	copyFile(t, filepath.Join(build, "hostile", "trap.wasm"), filepath.Join(dir, "c-example.wasm"))
	waitFor(t, "the replacement to load", func() bool { return moduleStats(t, e, "c-example.wasm").Module == "trap" })
	rulesFor()
	if ms := moduleStats(t, e, "c-example.wasm"); !ms.Quarantined || !errors.Is(ms.Reason, ErrTrap) {
		t.Fatalf("broken replacement: %+v", ms)
	}
	// ...and a fixed one replaces it without a restart.
	copyFile(t, filepath.Join(build, "conformance", "c.wasm"), filepath.Join(dir, "c-example.wasm"))
	waitFor(t, "the fix to load", func() bool { return moduleStats(t, e, "c-example.wasm").Module == "conformance" })
	if got := rulesFor(); !slices.Equal(got, []string{"c-example.wasm:conf-observe", "c-example.wasm:conf-shell", "standard.wasm:Terminal shell in container"}) {
		t.Fatalf("after fix: %v", got)
	}
	// Remove a module.
	if err := os.Remove(filepath.Join(dir, "c-example.wasm")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "removal", func() bool { return len(e.Stats().Modules) == 1 })
	if got := rulesFor(); !slices.Equal(got, []string{"standard.wasm:Terminal shell in container"}) {
		t.Fatalf("after remove: %v", got)
	}
	if e.Stats().Reloads < 4 {
		t.Fatalf("reloads %d", e.Stats().Reloads)
	}
}

func TestPinning(t *testing.T) {
	build := buildDir(t)
	std := filepath.Join(build, "standard.wasm")
	b, err := os.ReadFile(std)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(build, "examples", "c-example.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256Hex(b)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "standard.wasm"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "extra.wasm"), other, 0o644)
	os.WriteFile(filepath.Join(dir, "changed.wasm"), other, 0o644)
	e := newEngine(t, Config{Dir: dir, Pins: map[string]string{"standard.wasm": digest, "changed.wasm": digest}})
	if ms := moduleStats(t, e, "standard.wasm"); ms.Quarantined {
		t.Fatalf("pinned module refused: %v", ms.Reason)
	}
	if ms := moduleStats(t, e, "extra.wasm"); !ms.Quarantined || !errors.Is(ms.Reason, ErrUnpinned) {
		t.Fatalf("unpinned module: %+v", ms)
	}
	if ms := moduleStats(t, e, "changed.wasm"); !ms.Quarantined || !errors.Is(ms.Reason, ErrDigestMismatch) {
		t.Fatalf("changed module: %+v", ms)
	}
	// Without pins the same directory loads everything.
	e2 := newEngine(t, Config{Dir: dir})
	if s := e2.Stats(); s.Quarantined != 0 {
		t.Fatalf("pinning off: %d quarantined", s.Quarantined)
	}
}

func TestCompilationCacheOnDisk(t *testing.T) {
	build := buildDir(t)
	cache := t.TempDir()
	newEngine(t, Config{CacheDir: cache}, filepath.Join(build, "standard.wasm"))
	ents, err := os.ReadDir(cache)
	if err != nil || len(ents) == 0 {
		t.Fatalf("compilation cache empty after a load: %v", err)
	}
	e := newEngine(t, Config{CacheDir: cache}, filepath.Join(build, "standard.wasm"))
	if s := e.Stats(); s.Quarantined != 0 {
		t.Fatal("cached load refused")
	}
}

func TestVerdictAlertCarriesFieldsFromTheEvent(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{}, filepath.Join(build, "conformance", "go.wasm"))
	ev := &event.Event{Kind: event.KindConnect}
	ev.Net.Dst = netip.MustParseAddrPort("[::1]:4444")
	vs, err := e.Evaluate(context.Background(), []*event.Event{ev})
	if err != nil || len(vs) != 2 {
		t.Fatalf("%v %+v", err, vs)
	}
	a := vs[0].Alert(ev)
	if a.Action != alert.ActionKill || a.Priority != alert.Critical || a.Fields["net.dst_port"] != uint64(4444) {
		t.Fatalf("alert %+v", a)
	}
}

// A module listed in Config.Unchecked runs without termination checks and
// must answer exactly as it does with them.
func TestUncheckedModuleGivesSameVerdicts(t *testing.T) {
	build := buildDir(t)
	std := filepath.Join(build, "standard.wasm")
	b, err := os.ReadFile(std)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Config{Unchecked: []string{sha256Hex(b)}}, std)
	files, _ := filepath.Glob(filepath.Join(repoRoot, "wasm-rules", "standard", "fixtures", "*.json"))
	for _, f := range files {
		runFixtureFile(t, e, f)
	}
}

// Output field values read from the wire batch match those read from the
// event itself.
func TestBatchFieldValuesMatchEvent(t *testing.T) {
	build := buildDir(t)
	e := newEngine(t, Config{}, filepath.Join(build, "standard.wasm"))
	ev := &event.Event{Kind: event.KindExec}
	ev.Proc.Name, ev.Proc.Exe, ev.Proc.Args, ev.Proc.UID = "bash", "/bin/bash", []string{"bash", "-i"}, 0
	ev.Container.ID, ev.K8s.Namespace, ev.K8s.Pod = "abc", "prod", "web-0"
	var b Batch
	b.Add(ev)
	vs, err := e.EvaluateBatch(context.Background(), &b, nil)
	if err != nil || len(vs) != 1 {
		t.Fatalf("%v %+v", err, vs)
	}
	got, err := b.FieldValues(&vs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := vs[0].FieldValues(ev)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) < 5 {
		t.Fatalf("from the wire %v, from the event %v", got, want)
	}
}
