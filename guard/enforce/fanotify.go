package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vigilsec/vigil/guard/alert"
	"github.com/vigilsec/vigil/guard/event"
)

// fanDecision is what a fanotify event is checked against: for one
// workload, the denied files and directory prefixes of one kind.
type fanTarget struct {
	workload uint32
	kind     event.Kind
	path     string // resolved host path of the file or directory
	dir      bool
	dev, ino uint64 // userspace st_dev/st_ino
	v        verdict
}

type verdict struct {
	rule   uint32
	mode   alert.Mode
	action alert.Action
}

// FanotifyCounters are the fanotify backend's decision counts.
type FanotifyCounters struct {
	Events  uint64 `json:"events"`
	Denied  uint64 `json:"denied"`
	Audited uint64 `json:"audited"`
	// Timeouts counts events answered "allow" because the decision missed
	// the response deadline.
	Timeouts uint64 `json:"timeouts"`
	// SelfAllowed counts the guard's own accesses, always allowed.
	SelfAllowed uint64 `json:"self_allowed"`
	// ReadErrors counts failed reads of the fanotify group.
	ReadErrors uint64 `json:"read_errors"`
}

// fanotify is the exec/open rung without BPF-LSM: permission events on
// marked files and directories, answered within a deadline.
type fanotify struct {
	fd       int
	wake     [2]int // pipe that unblocks the reader on Close
	guardPID int32
	deadline time.Duration
	cgroups  func(pid int32) (uint64, error)
	lookup   func(cgroupID uint64) (uint32, bool)
	emit     func(Record)
	// slow, when set by tests, delays decisions to exercise the deadline.
	slow time.Duration

	mu      sync.RWMutex
	targets []fanTarget
	marked  map[string]uint64 // path -> mask

	events, denied, audited, timeouts, self, readErrs atomic.Uint64
	wg                                                sync.WaitGroup
	sem                                               chan struct{}
	closeOnce                                         sync.Once
	closeErr                                          error
}

// Probe-visible flags. FAN_OPEN_EXEC_PERM needs Linux 5.0.
const (
	fanInitFlags = unix.FAN_CLASS_CONTENT | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK | unix.FAN_UNLIMITED_QUEUE
	fanEventMask = unix.FAN_OPEN_PERM | unix.FAN_OPEN_EXEC_PERM
)

func newFanotify(guardPID int, deadline time.Duration, cgroups func(int32) (uint64, error),
	lookup func(uint64) (uint32, bool), emit func(Record)) (*fanotify, error) {
	fd, err := unix.FanotifyInit(fanInitFlags, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	f := &fanotify{fd: fd, guardPID: int32(guardPID), deadline: deadline, cgroups: cgroups,
		lookup: lookup, emit: emit, marked: map[string]uint64{}, sem: make(chan struct{}, 64)}
	if err := unix.Pipe2(f.wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pipe: %w", err)
	}
	f.wg.Add(1)
	go f.loop()
	return f, nil
}

// probeFanotify proves permission events work: it marks a temporary file
// for exec and open permission events.
func probeFanotify() error {
	fd, err := unix.FanotifyInit(fanInitFlags, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	defer unix.Close(fd)
	tmp, err := os.CreateTemp("", "vigil-fanotify-probe-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tmp.Close()
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, fanEventMask, unix.AT_FDCWD, tmp.Name()); err != nil {
		return fmt.Errorf("fanotify_mark: %w", err)
	}
	return nil
}

// setTargets replaces the deny targets and marks every file and directory
// they name (directories with FAN_EVENT_ON_CHILD, so their direct entries
// raise events).
func (f *fanotify) setTargets(ts []fanTarget) error {
	want := map[string]uint64{}
	for _, t := range ts {
		m := uint64(unix.FAN_OPEN_PERM)
		if t.kind == event.KindExec {
			m = unix.FAN_OPEN_EXEC_PERM
		}
		if t.dir {
			m |= unix.FAN_EVENT_ON_CHILD
		}
		want[t.path] |= m
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, m := range f.marked {
		if want[p] != m {
			// Removing a stale mark can fail when the file is gone; the
			// kernel dropped the mark with the inode then.
			_ = unix.FanotifyMark(f.fd, unix.FAN_MARK_REMOVE, m, unix.AT_FDCWD, p)
			delete(f.marked, p)
		}
	}
	for p, m := range want {
		if _, ok := f.marked[p]; ok {
			continue
		}
		if err := unix.FanotifyMark(f.fd, unix.FAN_MARK_ADD, m, unix.AT_FDCWD, p); err != nil {
			return fmt.Errorf("fanotify mark %s: %w", p, err)
		}
		f.marked[p] = m
	}
	f.targets = ts
	return nil
}

const fanMetaSize = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))

func (f *fanotify) loop() {
	defer f.wg.Done()
	buf := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}, {Fd: int32(f.wake[0]), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		n, err := unix.Read(f.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			// The kernel could not hand an event over (e.g. it failed to
			// open the file for us) and answered it "deny" itself. Keep
			// reading: returning would leave every later event waiting.
			f.readErrs.Add(1)
			time.Sleep(time.Millisecond)
			continue
		}
		for off := 0; off+fanMetaSize <= n; {
			meta, err := parseFanMeta(buf[off:n])
			if err != nil {
				break
			}
			off += int(meta.Event_len)
			if meta.Fd < 0 {
				continue // queue overflow event; permission events never overflow
			}
			f.handle(meta)
		}
	}
}

// parseFanMeta decodes one fanotify event header from kernel bytes.
func parseFanMeta(b []byte) (unix.FanotifyEventMetadata, error) {
	var m unix.FanotifyEventMetadata
	if len(b) < fanMetaSize {
		return m, errors.New("short fanotify event")
	}
	m.Event_len = binary.NativeEndian.Uint32(b[0:4])
	m.Vers = b[4]
	m.Metadata_len = binary.NativeEndian.Uint16(b[6:8])
	m.Mask = binary.NativeEndian.Uint64(b[8:16])
	m.Fd = int32(binary.NativeEndian.Uint32(b[16:20]))
	m.Pid = int32(binary.NativeEndian.Uint32(b[20:24]))
	if m.Vers != unix.FANOTIFY_METADATA_VERSION {
		return m, fmt.Errorf("fanotify metadata version %d", m.Vers)
	}
	if int(m.Event_len) < fanMetaSize || int(m.Event_len) > len(b) {
		return m, fmt.Errorf("bad fanotify event length %d", m.Event_len)
	}
	return m, nil
}

// handle answers one permission event exactly once: with the decision, or
// with "allow" when the deadline passes first.
func (f *fanotify) handle(meta unix.FanotifyEventMetadata) {
	f.events.Add(1)
	if meta.Pid == f.guardPID {
		// The guard must never wait on itself.
		f.self.Add(1)
		f.respond(meta.Fd, unix.FAN_ALLOW)
		unix.Close(int(meta.Fd))
		return
	}
	var once sync.Once
	answer := func(resp uint32) bool {
		done := false
		once.Do(func() { f.respond(meta.Fd, resp); done = true })
		return done
	}
	timer := time.AfterFunc(f.deadline, func() {
		if answer(unix.FAN_ALLOW) {
			f.timeouts.Add(1)
		}
	})
	f.sem <- struct{}{}
	f.wg.Add(1)
	go func() {
		defer func() { <-f.sem; f.wg.Done() }()
		defer unix.Close(int(meta.Fd))
		resp, rec := f.decide(meta)
		timer.Stop()
		answered := answer(resp)
		if rec == nil {
			return
		}
		// A decision that missed the deadline was answered "allow".
		rec.Denied = answered && resp == unix.FAN_DENY
		if rec.Denied {
			f.denied.Add(1)
		} else {
			f.audited.Add(1)
		}
		f.emit(*rec)
	}()
}

func (f *fanotify) respond(fd int32, resp uint32) {
	var b [8]byte
	binary.NativeEndian.PutUint32(b[0:4], uint32(fd))
	binary.NativeEndian.PutUint32(b[4:8], resp)
	// A failed write leaves the event to be answered when the group's fd
	// closes (the kernel then allows); there is nobody else to tell.
	_, _ = unix.Write(f.fd, b[:])
}

func (f *fanotify) decide(meta unix.FanotifyEventMetadata) (uint32, *Record) {
	cg, err := f.cgroups(meta.Pid)
	if err != nil {
		return unix.FAN_ALLOW, nil // the task is gone or not in a cgroup v2
	}
	wl, ok := f.lookup(cg)
	if !ok {
		return unix.FAN_ALLOW, nil
	}
	kind := event.KindOpen
	if meta.Mask&unix.FAN_OPEN_EXEC_PERM != 0 {
		kind = event.KindExec
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(meta.Fd), &st); err != nil {
		return unix.FAN_ALLOW, nil
	}
	if f.slow > 0 {
		time.Sleep(f.slow)
	}
	// Match by inode first; only resolve the path (a readlink) when the
	// workload has a directory target of this kind.
	var hit *fanTarget
	var path string
	f.mu.RLock()
	for pass := 0; pass < 2 && hit == nil; pass++ {
		for i := range f.targets {
			t := &f.targets[i]
			if t.workload != wl || t.kind != kind {
				continue
			}
			if pass == 0 && t.dev == st.Dev && t.ino == st.Ino {
				hit = t
				break
			}
			if pass == 1 && t.dir {
				if path == "" {
					path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(meta.Fd)))
				}
				if path != "" && strings.HasPrefix(path, t.path+"/") {
					hit = t
					break
				}
			}
		}
	}
	f.mu.RUnlock()
	if hit == nil {
		return unix.FAN_ALLOW, nil
	}
	if path == "" {
		path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(meta.Fd)))
	}
	rec := &Record{
		KTimeNs: monotonicNs(), Backend: BackendFanotify, Kind: kind, Action: hit.v.action, Mode: hit.v.mode,
		PID: uint32(meta.Pid), CgroupID: cg, WorkloadID: wl, RuleID: hit.v.rule,
		Comm: procComm(meta.Pid), Name: filepath.Base(path), Path: path, Dev: st.Dev, Ino: st.Ino,
	}
	if hit.v.mode == alert.ModeEnforce {
		return unix.FAN_DENY, rec
	}
	return unix.FAN_ALLOW, rec
}

func (f *fanotify) counters() FanotifyCounters {
	return FanotifyCounters{Events: f.events.Load(), Denied: f.denied.Load(), Audited: f.audited.Load(),
		Timeouts: f.timeouts.Load(), SelfAllowed: f.self.Load(),
		ReadErrors: f.readErrs.Load()}
}

// Close stops the reader and closes the group; the kernel allows any
// event still pending, which is the fail-open behavior while the guard is
// down.
func (f *fanotify) Close() error {
	f.closeOnce.Do(func() {
		_, _ = unix.Write(f.wake[1], []byte{1})
		f.wg.Wait()
		f.closeErr = errors.Join(unix.Close(f.fd), unix.Close(f.wake[0]), unix.Close(f.wake[1]))
	})
	return f.closeErr
}

func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

func procComm(pid int32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procCgroupID returns the cgroup v2 id of a process, from the "0::" line
// of /proc/<pid>/cgroup resolved under the cgroup2 mount.
func procCgroupID(cgroup2Root string, pid int32) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return CgroupID(filepath.Join(cgroup2Root, rest))
		}
	}
	return 0, fmt.Errorf("pid %d has no cgroup v2 membership", pid)
}
