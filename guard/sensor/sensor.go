// Package sensor owns Vigil's eBPF sensors: it loads the programs in
// bpf/sensor, attaches them to BTF tracepoints (sched_process_exec, _fork,
// _exit and the raw sys_exit hook), keeps the in-kernel open prefilter,
// reads the shared ring buffer and decodes each record into an event.Event.
//
// It fills only what the kernel knows about an event. Process ancestry and
// container context are resolved by other packages.
//
// # Notes
//
// Bounds, all marked rather than silent: argv keeps at most 4095 bytes
// (Process.ArgsTruncated); a path keeps its deepest 32 components (then it
// starts with "…", and an open of it is always reported) and about 4 KiB
// (then it ends with "…"); interest prefixes are at most 255 bytes. The guard's own process is not reported unless Config.ReportSelf.
//
// Syscall decoding follows the x86-64 table; 32-bit (ia32) syscalls are not
// decoded and are counted in Stats.CompatSkipped instead. Fork events of
// ignored processes are ignored too (the parent is the actor), but their
// children's exec and later activity are reported.
package sensor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	bpfsensor "github.com/vigilsec/vigil/bpf/sensor"
	"github.com/vigilsec/vigil/guard/event"
)

// Config configures a Sensor. The zero value is usable.
type Config struct {
	// RingBufferBytes is the ring buffer's size: a power of two and a
	// multiple of the page size. Zero means 8 MiB.
	RingBufferBytes int
	// Interest is the open prefilter; nil means DefaultInterest().
	Interest []Interest
	// ReportSelf reports the calling process's own activity, which is
	// otherwise ignored in the kernel so the guard does not watch itself.
	ReportSelf bool
	// WakeupBytes batches reader wakeups: the kernel wakes the reader only
	// once this many bytes are waiting, and the reader polls every
	// FlushInterval for the rest. Zero means 64 KiB (at most a quarter of
	// the ring); a negative value wakes the reader for every record.
	WakeupBytes int
	// FlushInterval bounds how long a record may wait for the reader when
	// wakeups are batched. Zero means 10ms.
	FlushInterval time.Duration
}

const (
	defaultRingBytes     = 8 << 20
	defaultWakeupBytes   = 64 << 10
	defaultFlushInterval = 10 * time.Millisecond
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("sensor closed")

// Sensor is a loaded, attached set of sensor programs.
type Sensor struct {
	objs     bpfsensor.SensorObjects
	links    []link.Link
	rd       *ringbuf.Reader
	bootWall time.Time
	flush    time.Duration

	received     atomic.Uint64
	decodeErrors atomic.Uint64
	delivered    [event.KindMemfd + 1]atomic.Uint64

	interestMu sync.Mutex
	runMu      sync.Mutex
	running    bool
	closeOnce  sync.Once
	closeErr   error
}

// New loads the sensor programs, fills the prefilter and attaches every
// program. On error nothing stays loaded.
func New(cfg Config) (*Sensor, error) {
	size := cfg.RingBufferBytes
	if size == 0 {
		size = defaultRingBytes
	}
	if size < os.Getpagesize() || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: not a power of two of at least a page", size)
	}
	interest := cfg.Interest
	if interest == nil {
		interest = DefaultInterest()
	}
	for _, in := range interest {
		if _, err := interestKey(in); err != nil {
			return nil, err
		}
	}

	spec, err := bpfsensor.LoadSensor()
	if err != nil {
		return nil, fmt.Errorf("load sensor spec: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(size)
	wakeup := cfg.WakeupBytes
	switch {
	case wakeup == 0:
		wakeup = min(defaultWakeupBytes, size/4)
	case wakeup < 0:
		wakeup = 0
	}
	if err := spec.Variables["wakeup_bytes"].Set(uint64(wakeup)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	flush := cfg.FlushInterval
	if flush <= 0 {
		flush = defaultFlushInterval
	}

	s := &Sensor{bootWall: BootWallClock(), flush: flush}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load sensor programs: %+v", ve)
		}
		return nil, fmt.Errorf("load sensor programs: %w", err)
	}
	if err := s.start(cfg, interest); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// start fills the maps, opens the ring buffer and attaches the programs.
func (s *Sensor) start(cfg Config, interest []Interest) error {
	if !cfg.ReportSelf {
		if err := s.Ignore(uint32(os.Getpid())); err != nil {
			return err
		}
	}
	if err := s.SetInterest(interest); err != nil {
		return err
	}
	var err error
	s.rd, err = ringbuf.NewReader(s.objs.Events)
	if err != nil {
		return fmt.Errorf("open ring buffer: %w", err)
	}
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_exec", s.objs.OnExec},
		{"sched_process_fork", s.objs.OnFork},
		{"sched_process_exit", s.objs.OnExit},
		{"sys_exit", s.objs.OnSysExit},
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach %s: %w", p.name, err)
		}
		s.links = append(s.links, l)
	}
	return nil
}

// BootWallClock returns the wall-clock time at which CLOCK_MONOTONIC (the
// clock of bpf_ktime_get_ns and task start times) was zero.
func BootWallClock() time.Time {
	var ts unix.Timespec
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return before.Add(-time.Duration(ts.Nano()))
}

// Ignore stops reporting the thread group tgid (for example the guard's own
// helpers). Up to 64 groups can be ignored.
func (s *Sensor) Ignore(tgid uint32) error {
	if err := s.objs.IgnoreTgids.Put(tgid, uint8(1)); err != nil {
		return fmt.Errorf("ignore pid %d: %w", tgid, err)
	}
	return nil
}

// Unignore reverses Ignore.
func (s *Sensor) Unignore(tgid uint32) error {
	if err := s.objs.IgnoreTgids.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unignore pid %d: %w", tgid, err)
	}
	return nil
}

// SetInterest replaces the open prefilter. New entries are added before
// stale ones are removed, so no path is unwatched during the change.
func (s *Sensor) SetInterest(list []Interest) error {
	s.interestMu.Lock()
	defer s.interestMu.Unlock()
	want := make(map[bpfsensor.SensorInterestKey]uint32, len(list))
	for _, in := range list {
		k, err := interestKey(in)
		if err != nil {
			return err
		}
		want[k] = uint32(in.Mode)
	}
	for k, v := range want {
		if err := s.objs.Interest.Put(&k, v); err != nil {
			return fmt.Errorf("set interest %q: %w", cstr(k.Path[:]), err)
		}
	}
	var stale []bpfsensor.SensorInterestKey
	var k bpfsensor.SensorInterestKey
	var v uint32
	it := s.objs.Interest.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list interest: %w", err)
	}
	for i := range stale {
		if err := s.objs.Interest.Delete(&stale[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove interest: %w", err)
		}
	}
	// Invalidate the kernel's cached open verdicts (see `verdicts` in
	// bpf/sensor/sensor.h). Slot 1 of ns_gen belongs to userspace.
	var gen uint64
	if err := s.objs.NsGen.Lookup(uint32(1), &gen); err != nil {
		return fmt.Errorf("read interest generation: %w", err)
	}
	if err := s.objs.NsGen.Put(uint32(1), gen+1); err != nil {
		return fmt.Errorf("bump interest generation: %w", err)
	}
	return nil
}

// Run reads events until ctx ends or the sensor is closed, calling fn for
// each one from a single goroutine. fn owns the event it receives. Run
// returns nil when ctx ends, ErrClosed after Close.
func (s *Sensor) Run(ctx context.Context, fn func(*event.Event)) error {
	s.runMu.Lock()
	if s.running {
		s.runMu.Unlock()
		return errors.New("sensor: Run already active")
	}
	s.running = true
	s.runMu.Unlock()
	defer func() {
		s.runMu.Lock()
		s.running = false
		s.runMu.Unlock()
	}()

	// Wake the blocking read when ctx ends. Flush needs no lock, unlike
	// SetDeadline, which waits for a blocked read to return.
	stop := context.AfterFunc(ctx, func() { s.rd.Flush() })
	defer stop()

	dec := NewDecoder(s.bootWall)
	var rec ringbuf.Record
	// The deadline is the poll timer for records that did not wake us (see
	// Config.WakeupBytes); only this goroutine sets it.
	s.rd.SetDeadline(time.Now().Add(s.flush))
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			switch {
			case errors.Is(err, os.ErrClosed), errors.Is(err, ringbuf.ErrClosed):
				return ErrClosed
			case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
				if ctx.Err() != nil {
					return nil
				}
				s.rd.SetDeadline(time.Now().Add(s.flush))
				continue
			}
			return fmt.Errorf("read ring buffer: %w", err)
		}
		s.received.Add(1)
		e := new(event.Event)
		if err := dec.Decode(rec.RawSample, e); err != nil {
			s.decodeErrors.Add(1)
			continue
		}
		if int(e.Kind) < len(s.delivered) {
			s.delivered[e.Kind].Add(1)
		}
		fn(e)
	}
}

// KindStats counts one event kind in the kernel, summed over CPUs.
type KindStats struct {
	Sent     uint64 // written to the ring buffer
	Dropped  uint64 // lost because the ring buffer was full
	Filtered uint64 // suppressed by the open prefilter (opens only)
}

// Stats are the sensor's counters. Drops are never silent: every record the
// kernel could not queue is in Dropped, per kind and per CPU.
type Stats struct {
	Kinds map[event.Kind]KindStats
	// DroppedPerCPU[i] is the number of records lost on CPU i.
	DroppedPerCPU []uint64
	// Dropped is the total of DroppedPerCPU.
	Dropped uint64
	// DroppedByCgroup charges drops to the cgroup id (Process.CgroupID) of
	// the task whose record was lost, so they can be charged to a
	// workload. It keeps the 4096 most recent cgroups.
	DroppedByCgroup map[uint64]uint64
	// CompatSkipped counts 32-bit syscalls that were not decoded.
	CompatSkipped uint64
	// Received counts records read from the ring buffer; DecodeErrors the
	// ones that did not decode; Delivered the events handed to Run's fn.
	Received     uint64
	DecodeErrors uint64
	Delivered    map[event.Kind]uint64
}

// Stats reads the kernel and userspace counters.
func (s *Sensor) Stats() (Stats, error) {
	st := Stats{Kinds: map[event.Kind]KindStats{}, Delivered: map[event.Kind]uint64{}}
	var perCPU []bpfsensor.SensorCounter
	var key uint32
	it := s.objs.Counters.Iterate()
	for it.Next(&key, &perCPU) {
		var ks KindStats
		if st.DroppedPerCPU == nil {
			st.DroppedPerCPU = make([]uint64, len(perCPU))
		}
		for cpu, c := range perCPU {
			ks.Sent += c.Sent
			ks.Dropped += c.Dropped
			ks.Filtered += c.Filtered
			st.DroppedPerCPU[cpu] += c.Dropped
		}
		if key == 0 {
			st.CompatSkipped = ks.Filtered
			continue
		}
		if ks != (KindStats{}) {
			st.Kinds[event.Kind(key)] = ks
		}
		st.Dropped += ks.Dropped
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("read counters: %w", err)
	}
	st.DroppedByCgroup = map[uint64]uint64{}
	var cg, n uint64
	cit := s.objs.CgroupDrops.Iterate()
	for cit.Next(&cg, &n) {
		st.DroppedByCgroup[cg] = n
	}
	if err := cit.Err(); err != nil {
		return st, fmt.Errorf("read cgroup drops: %w", err)
	}
	st.Received = s.received.Load()
	st.DecodeErrors = s.decodeErrors.Load()
	for k := range s.delivered {
		if n := s.delivered[k].Load(); n > 0 {
			st.Delivered[event.Kind(k)] = n
		}
	}
	return st, nil
}

// Close detaches the programs, then closes the ring buffer and the BPF
// objects, in that order, so no program writes to a closed map. It is safe
// to call more than once.
func (s *Sensor) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, l := range s.links {
			errs = append(errs, l.Close())
		}
		if s.rd != nil {
			errs = append(errs, s.rd.Close())
		}
		errs = append(errs, s.objs.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
