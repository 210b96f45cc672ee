// Package rules owns the guard's WebAssembly rule host: it loads rule modules
// (wasm-rules/ABI.md) from a directory with wazero's optimizing compiler and
// an on-disk compilation cache, pools their instances, routes each event only
// to modules subscribed to its kind, evaluates events in batches, and
// quarantines any module that traps, loops, exhausts its memory or returns
// garbage, without stopping the rest.
//
// # Notes
//
//   - Modules in one batch run one after another on the caller's goroutine.
//     A runaway module delays that one batch by at most Config.Timeout and is
//     then quarantined, so it never stalls later batches.
//   - Each module has its own wazero runtime, because the memory limit is a
//     runtime setting; the compilation cache is shared.
package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/vigilsec/vigil/guard/event"
)

// MaxModuleSize bounds a .wasm file the engine will read.
const MaxModuleSize = 64 << 20

// Config configures an Engine. The zero value of each field selects the
// default in brackets.
type Config struct {
	// Dir holds the *.wasm modules (not recursive).
	Dir string
	// CacheDir keeps compiled machine code across restarts [in memory only].
	CacheDir string
	// Timeout bounds one batch in one module, in CPU time of the thread
	// running it [100ms]: a starved node does not make a healthy guest
	// look stuck.
	Timeout time.Duration
	// WallTimeout bounds one batch in wall time however little CPU it got;
	// hitting it counts the batch as starved (the batch is retried once),
	// and SlowStrikes such batches in a row quarantine the module
	// [20 × Timeout].
	WallTimeout time.Duration
	// InitTimeout bounds instantiation, including _initialize [5s].
	InitTimeout time.Duration
	// MemoryLimit is the per-module linear memory cap in bytes; a module
	// that reaches it is quarantined [128 MiB].
	MemoryLimit uint64
	// MaxInstances is the instance pool size per module [GOMAXPROCS].
	MaxInstances int
	// BatchSize is the most events handed to a module per call [256].
	BatchSize int
	// SlowBatch and SlowStrikes: a module using over SlowBatch of CPU time
	// on SlowStrikes consecutive batches is quarantined [Timeout/2, 3].
	// CPU time, not wall time, so a loaded node does not quarantine
	// healthy rules (see also WallTimeout and ModuleStats.StarvedBatches).
	SlowBatch   time.Duration
	SlowStrikes int
	// Pins maps a module file name to its sha256 (hex). When non-nil,
	// pinning is on: unpinned or changed modules are refused.
	Pins map[string]string
	// Unchecked lists sha256 digests (hex) of modules to run WITHOUT
	// wazero's termination checks. Those checks cost a trip to the host on
	// every loop back-edge in the guest (10x or more per event for loop-heavy
	// rules); without them a module that loops hangs its caller for good,
	// and Timeout no longer applies to it. Only for modules you build and
	// review yourself, such as the standard pack. [none]
	Unchecked []string
	// ReloadInterval polls Dir for changes and reloads [0 = off].
	ReloadInterval time.Duration
	// Logger receives quarantine notices and guest log lines [discard].
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 100 * time.Millisecond
	}
	if c.WallTimeout <= 0 {
		c.WallTimeout = 20 * c.Timeout
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = 5 * time.Second
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 128 << 20
	}
	c.MemoryLimit = min(max(c.MemoryLimit&^0xffff, 1<<16), 1<<32)
	if c.MaxInstances <= 0 {
		c.MaxInstances = runtime.GOMAXPROCS(0)
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.SlowBatch <= 0 {
		c.SlowBatch = c.Timeout / 2
	}
	if c.SlowStrikes <= 0 {
		c.SlowStrikes = 3
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Engine hosts a directory of rule modules. Its methods are safe for
// concurrent use.
type Engine struct {
	cfg   Config
	cache wazero.CompilationCache

	set      atomic.Pointer[moduleSet]
	reloadMu sync.Mutex
	dirSig   string

	closeOnce sync.Once
	closed    atomic.Bool
	stop      chan struct{}
	done      chan struct{}

	scratch sync.Pool

	reloads, reloadErrors atomic.Uint64
}

type moduleSet struct {
	modules []*module // sorted by file name
}

type scratch struct {
	buf []byte
	idx []int32
}

// New creates an engine and loads Config.Dir.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	e.scratch.New = func() any { return &scratch{} }
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
		}
		e.cache = c
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	e.set.Store(&moduleSet{})
	if err := e.Reload(ctx); err != nil {
		e.cache.Close(ctx)
		return nil, err
	}
	if cfg.ReloadInterval > 0 {
		go e.watch()
	} else {
		close(e.done)
	}
	return e, nil
}

// Reload rescans the directory. Unchanged files (same name and sha256) keep
// their compiled code, instances and quarantine state; new or changed files
// are loaded; removed files are unloaded once their calls finish. A module
// that fails to load is kept in Stats as quarantined, not returned as an
// error; errors are for an unreadable directory.
func (e *Engine) Reload(ctx context.Context) error {
	if e.closed.Load() {
		return ErrClosed
	}
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.reloads.Add(1)
	files, sig, err := scanDir(e.cfg.Dir)
	if err != nil {
		e.reloadErrors.Add(1)
		return err
	}
	old := e.set.Load()
	byName := make(map[string]*module, len(old.modules))
	for _, m := range old.modules {
		byName[m.name] = m
	}
	next := &moduleSet{}
	for _, f := range files {
		wasm, err := readLimited(f, MaxModuleSize)
		if err != nil {
			e.reloadErrors.Add(1)
			e.cfg.Logger.Warn("read rule module", "path", f, "err", err)
			continue
		}
		sum := sha256.Sum256(wasm)
		digest := hex.EncodeToString(sum[:])
		name := filepath.Base(f)
		if m, ok := byName[name]; ok && m.digest == digest {
			next.modules = append(next.modules, m)
			delete(byName, name)
			continue
		}
		next.modules = append(next.modules, loadModule(ctx, &e.cfg, e.cache, name, f, wasm, digest))
	}
	e.set.Store(next)
	e.dirSig = sig
	for _, m := range byName {
		m.close(ctx)
	}
	return nil
}

func scanDir(dir string) (files []string, sig string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("read rules dir: %w", err)
	}
	var b strings.Builder
	for _, ent := range ents {
		if ent.IsDir() || !strings.HasSuffix(ent.Name(), ".wasm") {
			continue
		}
		info, err := ent.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		files = append(files, filepath.Join(dir, ent.Name()))
		fmt.Fprintf(&b, "%s/%d/%d;", ent.Name(), info.Size(), info.ModTime().UnixNano())
	}
	slices.Sort(files)
	return files, b.String(), nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("module larger than %d bytes", limit)
	}
	return b, nil
}

// watch polls the directory's listing (names, sizes, mtimes) and reloads
// when it changes. Polling keeps the engine free of inotify state and works
// on every filesystem a ConfigMap can be mounted from.
func (e *Engine) watch() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		_, sig, err := scanDir(e.cfg.Dir)
		e.reloadMu.Lock()
		changed := err == nil && sig != e.dirSig
		e.reloadMu.Unlock()
		if changed {
			if err := e.Reload(context.Background()); err != nil {
				e.cfg.Logger.Warn("reload rules", "err", err)
			}
		}
	}
}

// Evaluate encodes events into a batch and evaluates it. Verdict.Event
// indexes events. See EvaluateBatch for the allocation-free form.
func (e *Engine) Evaluate(ctx context.Context, events []*event.Event) ([]Verdict, error) {
	var b Batch
	for _, ev := range events {
		b.Add(ev)
	}
	return e.EvaluateBatch(ctx, &b, nil)
}

// EvaluateBatch runs every event of b through every healthy module that
// subscribes to its kind and appends the verdicts to dst, in module order
// then event order. Module failures are not errors (they quarantine the
// module, see Stats); the error is for a closed engine or a done ctx.
func (e *Engine) EvaluateBatch(ctx context.Context, b *Batch, dst []Verdict) ([]Verdict, error) {
	if e.closed.Load() {
		return dst, ErrClosed
	}
	set := e.set.Load()
	sc := e.scratch.Get().(*scratch)
	defer e.scratch.Put(sc)
	for start := 0; start < b.Len(); start += e.cfg.BatchSize {
		end := min(start+e.cfg.BatchSize, b.Len())
		for _, m := range set.modules {
			if m.quarantined.Load() || m.meta == nil {
				continue
			}
			sel := 0
			for i := start; i < end; i++ {
				if m.kinds.has(b.kinds[i]) {
					sel++
				}
			}
			var err error
			switch {
			case sel == 0:
				continue
			case sel == end-start:
				endOff := len(b.buf)
				if end < len(b.offs) {
					endOff = b.offs[end]
				}
				dst, err = m.evaluate(ctx, b.buf[b.offs[start]:endOff], sel, start, nil, dst)
			default:
				sc.buf, sc.idx = sc.buf[:0], sc.idx[:0]
				for i := start; i < end; i++ {
					if m.kinds.has(b.kinds[i]) {
						sc.buf = append(sc.buf, b.Event(i)...)
						sc.idx = append(sc.idx, int32(i))
					}
				}
				dst, err = m.evaluate(ctx, sc.buf, sel, 0, sc.idx, dst)
			}
			if err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// Close stops reloading and releases every module. Safe to call twice.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		<-e.done
		e.reloadMu.Lock()
		defer e.reloadMu.Unlock()
		ctx := context.Background()
		for _, m := range e.set.Load().modules {
			m.close(ctx)
		}
		e.set.Store(&moduleSet{})
		e.cache.Close(ctx)
	})
	return nil
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Modules      []ModuleStats
	Reloads      uint64
	ReloadErrors uint64
	Quarantined  int
}

// ModuleStats describes one module file.
type ModuleStats struct {
	Name, Path, Digest string
	Module             string // metadata name, empty if it never loaded
	Rules              []string
	Quarantined        bool
	// Reason is why it is quarantined; match with errors.Is.
	Reason                                  error
	Events, Batches, Verdicts, Observations uint64
	// DroppedVerdicts counts repeated verdicts of one rule for one event.
	DroppedVerdicts uint64
	// StarvedBatches counts calls that hit the wall-clock cap
	// (WallTimeout) before the guest had used its CPU budget: the node was
	// starved. Such a batch is run once more on a fresh instance; if that
	// starves too, the batch's verdicts from this module are lost. Only
	// SlowStrikes starved calls in a row quarantine the module.
	StarvedBatches       uint64
	LogLines, LogDropped uint64
	Instances            int64
	// Busy is the CPU time spent inside the guest.
	Busy time.Duration
}

// Stats returns a snapshot of every module's state and counters.
func (e *Engine) Stats() Stats {
	set := e.set.Load()
	s := Stats{Reloads: e.reloads.Load(), ReloadErrors: e.reloadErrors.Load()}
	for _, m := range set.modules {
		ms := ModuleStats{
			Name: m.name, Path: m.path, Digest: m.digest,
			Quarantined:     m.quarantined.Load(),
			Events:          m.events.Load(),
			Batches:         m.batches.Load(),
			Verdicts:        m.verdicts.Load(),
			Observations:    m.observations.Load(),
			DroppedVerdicts: m.dropped.Load(),
			StarvedBatches:  m.starved.Load(),
			LogLines:        m.logLines.Load(),
			LogDropped:      m.logDropped.Load(),
			Instances:       m.instances.Load(),
			Busy:            time.Duration(m.busyNs.Load()),
		}
		if m.meta != nil {
			ms.Module = m.meta.Module
			for _, r := range m.meta.Rules {
				ms.Rules = append(ms.Rules, r.Name)
			}
		}
		m.qmu.Lock()
		ms.Reason = m.reason
		m.qmu.Unlock()
		if ms.Quarantined {
			s.Quarantined++
		}
		s.Modules = append(s.Modules, ms)
	}
	return s
}

// Rules returns the metadata of every healthy module, by file name.
func (e *Engine) Rules() map[string]*Meta {
	out := map[string]*Meta{}
	for _, m := range e.set.Load().modules {
		if m.meta != nil && !m.quarantined.Load() {
			out[m.name] = m.meta
		}
	}
	return out
}
