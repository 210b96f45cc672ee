package rules

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// errStarved marks a batch lost to CPU starvation rather than to the guest.
var errStarved = errors.New("batch starved of cpu")

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

const (
	hostModule = "vigil"
	wasiModule = wasi_snapshot_preview1.ModuleName
	maxLogLine = 1024
	logPerSec  = 50
	minInput   = 64 << 10
)

// module is one loaded .wasm file: its own wazero runtime (so that the
// memory limit is per module), its compiled code, and a pool of instances.
type module struct {
	name, path, digest string
	log                *slog.Logger
	cfg                *Config
	meta               *Meta
	kinds              kindSet

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	hasInit  bool
	memLimit uint64

	// mu is held shared by every call into the module and exclusively by
	// close, so a module is never torn down under a running call.
	mu     sync.RWMutex
	closed bool
	free   chan *instance
	sem    chan struct{} // one token per live instance

	quarantined atomic.Bool
	qmu         sync.Mutex
	reason      error
	slowStrikes atomic.Int32
	// starveStrikes counts consecutive batches lost to CPU starvation.
	starveStrikes atomic.Int32

	events, batches, verdicts, observations atomic.Uint64
	dropped, logLines, logDropped, busyNs   atomic.Uint64
	starved                                 atomic.Uint64
	instances                               atomic.Int64
	logWindow                               atomic.Int64
	logCount                                atomic.Int32
}

type instance struct {
	mod          api.Module
	mem          api.Memory
	input, eval  api.Function
	inPtr, inCap uint32
	stack        [3]uint64
	lastVerdict  []int32
	memHit       *atomic.Bool // set when a memory.grow was refused
	intern       map[string]string
}

// limitedMemory backs a guest's linear memory and refuses to grow it past
// limit, recording that it did.
type limitedMemory struct {
	buf   []byte
	limit uint64
	hit   *atomic.Bool
}

func (l *limitedMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.hit.Store(true)
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		// Bytes between len and cap were zeroed by make and never exposed:
		// memory only grows.
		l.buf = l.buf[:size]
		return l.buf
	}
	nb := make([]byte, size, min(max(size, 2*uint64(cap(l.buf))), l.limit))
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

func (l *limitedMemory) Free() { l.buf = nil }

// loadModule compiles and validates one module and instantiates its first
// instance. It always returns a module: one that failed is returned
// quarantined with the reason, so Stats can show why it is not running.
func loadModule(ctx context.Context, cfg *Config, cache wazero.CompilationCache, name, path string, wasm []byte, digest string) *module {
	m := &module{
		name: name, path: path, digest: digest, cfg: cfg,
		log:      cfg.Logger.With("module", name),
		memLimit: cfg.MemoryLimit,
		free:     make(chan *instance, cfg.MaxInstances),
		sem:      make(chan struct{}, cfg.MaxInstances),
	}
	if err := m.init(ctx, cache, wasm); err != nil {
		m.quarantine(err)
		if m.rt != nil {
			m.rt.Close(ctx)
			m.rt = nil
		}
		m.closed = true
	}
	return m
}

func (m *module) init(ctx context.Context, cache wazero.CompilationCache, wasm []byte) error {
	if pin, ok := m.cfg.Pins[m.name]; m.cfg.Pins != nil && !ok {
		return fmt.Errorf("%w: %s (sha256 %s)", ErrUnpinned, m.name, m.digest)
	} else if ok && pin != m.digest {
		return fmt.Errorf("%w: %s has sha256 %s, pinned %s", ErrDigestMismatch, m.name, m.digest, pin)
	}
	// The memory limit is enforced by limitedMemory rather than by
	// WithMemoryLimitPages, so that a guest hitting it is detected (and
	// quarantined) even when its last memory.grow asked for more than what
	// was left.
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(!slices.Contains(m.cfg.Unchecked, m.digest))
	m.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	compiled, err := m.rt.CompileModule(ctx, wasm)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotWasm, err)
	}
	m.compiled = compiled
	usesWASI, err := checkImports(compiled)
	if err != nil {
		return err
	}
	if err := checkExports(compiled); err != nil {
		return err
	}
	_, m.hasInit = compiled.ExportedFunctions()["_initialize"]

	if _, err := m.rt.NewHostModuleBuilder(hostModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(m.hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("log").
		Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module: %w", err)
	}
	if usesWASI {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
			return fmt.Errorf("instantiate wasi: %w", err)
		}
	}

	m.sem <- struct{}{}
	inst, err := m.newInstance(ctx)
	if err != nil {
		<-m.sem
		return err
	}
	meta, err := m.readMeta(ctx, inst)
	if err != nil {
		m.discard(ctx, inst)
		return err
	}
	m.meta = meta
	for _, r := range meta.Rules {
		for _, k := range r.Kinds {
			m.kinds.add(k)
		}
	}
	// The first instance joins the pool: Go-built modules take ~11 ms to
	// instantiate, so it is not thrown away.
	m.put(inst)
	return nil
}

func checkImports(c wazero.CompiledModule) (usesWASI bool, err error) {
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == hostModule && name == "log":
			if !sameTypes(f.ParamTypes(), api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32) || len(f.ResultTypes()) != 0 {
				return false, fmt.Errorf("%w: vigil.log has the wrong signature", ErrUnknownImport)
			}
		case mod == wasiModule:
			usesWASI = true
		default:
			return false, fmt.Errorf("%w: %s.%s", ErrUnknownImport, mod, name)
		}
	}
	for _, mem := range c.ImportedMemories() {
		mod, name, _ := mem.Import()
		return false, fmt.Errorf("%w: memory %s.%s (a module must own its memory)", ErrUnknownImport, mod, name)
	}
	return usesWASI, nil
}

func checkExports(c wazero.CompiledModule) error {
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("%w: memory", ErrMissingExport)
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := []struct {
		name    string
		params  []api.ValueType
		results []api.ValueType
	}{
		{"vigil_abi_version", nil, []api.ValueType{i32}},
		{"vigil_meta", nil, []api.ValueType{i64}},
		{"vigil_input", []api.ValueType{i32}, []api.ValueType{i32}},
		{"vigil_evaluate", []api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
	}
	fns := c.ExportedFunctions()
	for _, w := range want {
		f, ok := fns[w.name]
		if !ok {
			return fmt.Errorf("%w: %s", ErrMissingExport, w.name)
		}
		if !sameTypes(f.ParamTypes(), w.params...) || !sameTypes(f.ResultTypes(), w.results...) {
			return fmt.Errorf("%w: %s has signature %v -> %v", ErrMissingExport, w.name, f.ParamTypes(), f.ResultTypes())
		}
	}
	if f, ok := fns["_initialize"]; ok && (len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0) {
		return fmt.Errorf("%w: _initialize must take and return nothing", ErrMissingExport)
	}
	return nil
}

func sameTypes(got []api.ValueType, want ...api.ValueType) bool {
	return bytes.Equal(got, want)
}

// newInstance instantiates the module once, running _initialize under the
// init deadline.
func (m *module) newInstance(ctx context.Context) (*instance, error) {
	out := &logWriter{m: m}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithStdout(out).
		WithStderr(out)
	if m.hasInit {
		mc = mc.WithStartFunctions("_initialize")
	}
	hit := new(atomic.Bool)
	ictx, cancel := context.WithTimeout(ctx, m.cfg.InitTimeout)
	defer cancel()
	ictx = experimental.WithMemoryAllocator(ictx, experimental.MemoryAllocatorFunc(func(_, _ uint64) experimental.LinearMemory {
		return &limitedMemory{limit: m.memLimit, hit: hit}
	}))
	mod, err := m.rt.InstantiateModule(ictx, m.compiled, mc)
	if err != nil {
		if hit.Load() {
			return nil, fmt.Errorf("%w: %d bytes at instantiation", ErrMemoryLimit, m.memLimit)
		}
		if ictx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: _initialize ran past %v", ErrDeadline, m.cfg.InitTimeout)
		}
		return nil, fmt.Errorf("%w: %w", ErrInit, err)
	}
	inst := &instance{
		mod:    mod,
		mem:    mod.Memory(),
		input:  mod.ExportedFunction("vigil_input"),
		eval:   mod.ExportedFunction("vigil_evaluate"),
		memHit: hit,
	}
	if inst.mem == nil || inst.input == nil || inst.eval == nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("%w: after instantiation", ErrMissingExport)
	}
	m.instances.Add(1)
	return inst, nil
}

func (m *module) readMeta(ctx context.Context, inst *instance) (*Meta, error) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	res, err := inst.mod.ExportedFunction("vigil_abi_version").Call(cctx)
	if err != nil {
		return nil, m.classify(ctx, err)
	}
	if v := uint32(res[0]); v != ABIVersion {
		return nil, fmt.Errorf("%w: module speaks %d, host %d", ErrABIVersion, v, ABIVersion)
	}
	res, err = inst.mod.ExportedFunction("vigil_meta").Call(cctx)
	if err != nil {
		return nil, m.classify(ctx, err)
	}
	ptr, n := unpack(res[0])
	if n > MaxMetaSize {
		return nil, fmt.Errorf("%w: metadata of %d bytes exceeds %d", ErrBadMeta, n, MaxMetaSize)
	}
	b, ok := inst.mem.Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%w: metadata at %#x+%d, memory is %d bytes", ErrBadPointer, ptr, n, inst.mem.Size())
	}
	meta, err := ParseMeta(b)
	if err != nil {
		return nil, err
	}
	inst.lastVerdict = make([]int32, len(meta.Rules))
	return meta, nil
}

func unpack(v uint64) (ptr, n uint32) { return uint32(v), uint32(v >> 32) }

// classify turns a failed guest call into a quarantine reason. It returns nil
// when the caller's own context ended: that is shutdown, not the guest's
// fault.
// callErr explains a failed guest call made under cctx (a cpuWatch):
// the CPU budget spent is the guest's fault; the wall cap passed with the
// budget unspent is the node's (errStarved: the caller retries once), until
// it happens SlowStrikes times in a row, which a guest stuck on a starved
// node would do.
func (m *module) callErr(parent, cctx context.Context, err error, took time.Duration) error {
	if parent.Err() != nil {
		return nil
	}
	// Only a call the watch stopped is judged by why it stopped it; a guest
	// that trapped on its own keeps its own reason even if the watch fired
	// meanwhile (unbounded recursion runs without loop checks until the
	// stack overflows).
	var ee *sys.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != sys.ExitCodeContextCanceled {
		return m.classify(parent, err)
	}
	switch context.Cause(cctx) {
	case errCPUDeadline:
		return fmt.Errorf("%w (%v of CPU time)", ErrDeadline, m.cfg.Timeout)
	case errWallCap:
		m.starved.Add(1)
		if m.starveStrikes.Add(1) < int32(m.cfg.SlowStrikes) {
			return errStarved
		}
		return fmt.Errorf("%w: %d consecutive batches past the %v wall-clock cap (using %v of CPU each)", ErrDeadline, m.cfg.SlowStrikes, m.cfg.WallTimeout, took)
	}
	return m.classify(parent, err)
}

func (m *module) classify(parent context.Context, err error) error {
	if parent.Err() != nil {
		return nil
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%w (%v)", ErrDeadline, m.cfg.Timeout)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("%w: canceled", ErrDeadline)
		}
		return fmt.Errorf("%w: guest exited with code %d", ErrTrap, ee.ExitCode())
	}
	return fmt.Errorf("%w: %w", ErrTrap, err)
}

// get takes an idle instance or makes one, up to MaxInstances.
func (m *module) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-m.free:
		return in, nil
	default:
	}
	select {
	case in := <-m.free:
		return in, nil
	case m.sem <- struct{}{}:
		in, err := m.newInstance(ctx)
		if err != nil {
			<-m.sem
			return nil, err
		}
		in.lastVerdict = make([]int32, len(m.meta.Rules))
		return in, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *module) put(in *instance) { m.free <- in }

// discard closes an instance that must not run again (it failed, or the
// module is going away) and returns its slot.
func (m *module) discard(ctx context.Context, in *instance) {
	in.mod.Close(ctx)
	m.instances.Add(-1)
	<-m.sem
}

// evaluate runs one batch (wire events back to back) through one instance
// and appends the verdicts. base is added to batch-local event indexes; idx,
// when set, maps them instead.
func (m *module) evaluate(ctx context.Context, in []byte, n int, base int, idx []int32, dst []Verdict) ([]Verdict, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed || m.quarantined.Load() {
		return dst, nil
	}
	inst, err := m.get(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return dst, ctx.Err()
		}
		m.quarantine(err)
		return dst, nil
	}
	dst, fail := m.call(ctx, inst, in, n, base, idx, dst)
	if fail == errStarved && ctx.Err() == nil {
		// Not the guest's fault: run the batch again on a fresh instance
		// rather than lose its verdicts. A second starvation loses them
		// (counted in StarvedBatches).
		m.discard(ctx, inst)
		if inst, err = m.get(ctx); err != nil {
			if ctx.Err() != nil {
				return dst, ctx.Err()
			}
			m.quarantine(err)
			return dst, nil
		}
		dst, fail = m.call(ctx, inst, in, n, base, idx, dst)
	}
	if fail != nil || m.quarantined.Load() {
		m.discard(ctx, inst) // a failed or interrupted instance never runs again
		if fail != nil && fail != errStarved {
			m.quarantine(fail)
		}
		if ctx.Err() != nil {
			return dst, ctx.Err()
		}
		return dst, nil
	}
	if ctx.Err() != nil {
		m.discard(ctx, inst)
		return dst, ctx.Err()
	}
	m.put(inst)
	return dst, nil
}

func (m *module) call(ctx context.Context, inst *instance, in []byte, n int, base int, idx []int32, dst []Verdict) ([]Verdict, error) {
	// The call is bounded and timed in thread CPU time, not wall time: on
	// a loaded node a healthy guest can wait long for a CPU, and that is
	// not its fault (cpuWatch). Locking the goroutine to its thread makes
	// the thread clock the call's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := newCPUWatch(cancel, m.cfg.Timeout, m.cfg.WallTimeout)
	defer watch.stop()
	if uint64(len(in)) > uint64(inst.inCap) {
		size := max(uint32(len(in)), minInput)
		inst.stack[0] = uint64(size)
		if err := inst.input.CallWithStack(cctx, inst.stack[:]); err != nil {
			return dst, m.callErr(ctx, cctx, err, 0)
		}
		ptr := uint32(inst.stack[0])
		if ptr == 0 || uint64(ptr)+uint64(size) > uint64(inst.mem.Size()) {
			return dst, fmt.Errorf("%w: vigil_input(%d) returned %#x, memory is %d bytes", ErrBadPointer, size, ptr, inst.mem.Size())
		}
		inst.inPtr, inst.inCap = ptr, size
	}
	if !inst.mem.Write(inst.inPtr, in) {
		return dst, fmt.Errorf("%w: input buffer %#x+%d", ErrBadPointer, inst.inPtr, len(in))
	}
	inst.stack[0], inst.stack[1], inst.stack[2] = uint64(inst.inPtr), uint64(len(in)), uint64(n)
	cpu0 := threadCPU()
	err := inst.eval.CallWithStack(cctx, inst.stack[:])
	took := threadCPU() - cpu0
	m.busyNs.Add(uint64(took))
	m.batches.Add(1)
	m.events.Add(uint64(n))
	if err != nil {
		return dst, m.callErr(ctx, cctx, err, took)
	}
	m.starveStrikes.Store(0)
	if inst.memHit.Load() {
		return dst, fmt.Errorf("%w: a memory.grow past %d bytes was refused", ErrMemoryLimit, m.memLimit)
	}
	if took > m.cfg.SlowBatch {
		if m.slowStrikes.Add(1) >= int32(m.cfg.SlowStrikes) {
			return dst, fmt.Errorf("%w: %d consecutive batches over %v (last %v for %d events)", ErrSlow, m.cfg.SlowStrikes, m.cfg.SlowBatch, took, n)
		}
	} else {
		m.slowStrikes.Store(0)
	}
	ptr, ln := unpack(inst.stack[0])
	if ln == 0 {
		return dst, nil
	}
	if ln > MaxOutputSize {
		return dst, fmt.Errorf("%w: output of %d bytes exceeds %d", ErrBadOutput, ln, MaxOutputSize)
	}
	out, ok := inst.mem.Read(ptr, ln)
	if !ok {
		return dst, fmt.Errorf("%w: output at %#x+%d, memory is %d bytes", ErrBadPointer, ptr, ln, inst.mem.Size())
	}
	before := len(dst)
	if inst.intern == nil {
		inst.intern = make(map[string]string)
	}
	dst, dropped, err := decodeOutput(dst, out, n, m.meta, m.name, idx, inst.lastVerdict, inst.intern)
	if err != nil {
		return dst[:before], err
	}
	if idx == nil && base != 0 {
		for i := before; i < len(dst); i++ {
			dst[i].Event += base
		}
	}
	for i := before; i < len(dst); i++ {
		if dst[i].Observation {
			m.observations.Add(1)
		} else {
			m.verdicts.Add(1)
		}
	}
	m.dropped.Add(uint64(dropped))
	return dst, nil
}

// quarantine takes the module out of service for good (until its file
// changes). The first reason wins.
func (m *module) quarantine(reason error) {
	m.qmu.Lock()
	first := m.reason == nil
	if first {
		m.reason = reason
	}
	m.qmu.Unlock()
	m.quarantined.Store(true)
	if first {
		m.log.Warn("rule module quarantined", "reason", reason.Error(), "sha256", m.digest)
	}
	// Free idle instances now; busy ones are discarded when they return.
	for {
		select {
		case in := <-m.free:
			m.discard(context.Background(), in)
		default:
			return
		}
	}
}

// close waits for calls in flight and releases the runtime. Safe to call
// twice.
func (m *module) close(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed && m.rt == nil {
		return
	}
	m.closed = true
	for {
		select {
		case in := <-m.free:
			m.discard(ctx, in)
			continue
		default:
		}
		break
	}
	if m.rt != nil {
		m.rt.Close(ctx)
		m.rt = nil
	}
}

// hostLog implements vigil.log(level, ptr, len).
func (m *module) hostLog(_ context.Context, mod api.Module, stack []uint64) {
	level, ptr, n := min(max(int32(stack[0]), 0), 3), uint32(stack[1]), uint32(stack[2])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		m.quarantine(fmt.Errorf("%w: vigil.log(%#x, %d)", ErrBadPointer, ptr, n))
		return
	}
	if len(b) > maxLogLine {
		b = b[:maxLogLine]
	}
	m.emitLog(slog.Level(4*(level-1)), b)
}

func (m *module) emitLog(level slog.Level, b []byte) {
	now := time.Now().Unix()
	if m.logWindow.Load() != now {
		m.logWindow.Store(now)
		m.logCount.Store(0)
	}
	if m.logCount.Add(1) > logPerSec {
		m.logDropped.Add(1)
		return
	}
	m.logLines.Add(1)
	m.log.Log(context.Background(), level, "guest: "+string(bytes.ToValidUTF8(b, []byte("?"))))
}

// logWriter routes a WASI guest's stdout/stderr to the module log.
type logWriter struct{ m *module }

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(line) > maxLogLine {
			line = line[:maxLogLine]
		}
		w.m.emitLog(slog.LevelInfo, line)
	}
	return len(p), nil
}
