package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the workload's helper program: with
// VIGIL_ENFORCE_HELPER set it performs one action and reports the result
// on stdout as "ok <detail>" or "errno <name>".
func TestMain(m *testing.M) {
	switch os.Getenv("VIGIL_ENFORCE_HELPER") {
	case "":
		guestSetup()
		code := m.Run()
		guestFinish(code)
		os.Exit(code)
	case "open":
		f, err := os.Open(os.Args[1])
		if err != nil {
			report(err)
		}
		b := make([]byte, 4096)
		n, err := f.Read(b)
		if err != nil {
			report(err)
		}
		fmt.Printf("ok %d\n", n)
	case "connect":
		c, err := net.DialTimeout("tcp", os.Args[1], 2*time.Second)
		if err != nil {
			report(err)
		}
		c.Close()
		fmt.Println("ok connected")
	case "bind":
		ln, err := net.Listen("tcp4", os.Args[1])
		if err != nil {
			report(err)
		}
		ln.Close()
		fmt.Println("ok bound")
	case "exec":
		report(syscall.Exec(os.Args[1], os.Args[1:], nil))
	case "mount":
		report(syscall.Mount("tmpfs", os.Args[1], "tmpfs", 0, ""))
	case "ptrace":
		// Attach to a child of our own, never to anything else.
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "VIGIL_ENFORCE_HELPER=sleep")
		if err := child.Start(); err != nil {
			report(err)
		}
		err := unix.PtraceAttach(child.Process.Pid)
		child.Process.Kill()
		report(err)
	case "setuid":
		report(unix.Setuid(65534))
	case "modreq":
		// An address family that is a module on Debian kernels (AF_KCM):
		// socket() asks the kernel to load net-pf-41.
		fd, err := unix.Socket(41, unix.SOCK_DGRAM, 2)
		if err == nil {
			unix.Close(fd)
		}
		report(err)
	case "reexec":
		// Re-execute this binary through /proc/self/exe, once.
		if os.Getenv("VIGIL_REEXECED") != "" {
			fmt.Println("ok reexec")
			break
		}
		report(syscall.Exec("/proc/self/exe", []string{os.Args[0]},
			[]string{"VIGIL_ENFORCE_HELPER=reexec", "VIGIL_REEXECED=1"}))
	case "sleep":
		time.Sleep(time.Hour)
	}
	os.Exit(0)
}

func report(err error) {
	if err == nil {
		fmt.Println("ok")
		os.Exit(0)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Printf("errno %s\n", unix.ErrnoName(errno))
	} else {
		fmt.Printf("error %v\n", err)
	}
	os.Exit(0)
}

// markerELF returns a static x86-64 ELF whose first instructions create
// marker: open(marker, O_WRONLY|O_CREAT|O_TRUNC, 0644); exit(0). If the
// file exists, the program ran at least one instruction.
func markerELF(marker string) []byte {
	const base = 0x400000
	code := []byte{
		0x48, 0x8d, 0x3d, 0x1a, 0x00, 0x00, 0x00, // lea rdi, [rip+26] (the path)
		0xbe, 0x41, 0x02, 0x00, 0x00, // mov esi, O_WRONLY|O_CREAT|O_TRUNC
		0xba, 0xa4, 0x01, 0x00, 0x00, // mov edx, 0644
		0xb8, 0x02, 0x00, 0x00, 0x00, // mov eax, SYS_open
		0x0f, 0x05, // syscall
		0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, SYS_exit
		0x31, 0xff, // xor edi, edi
		0x0f, 0x05, // syscall
	}
	code = append(append(code, marker...), 0)
	const hdr = 64 + 56
	b := make([]byte, hdr, hdr+len(code))
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+hdr) // entry
	le.PutUint64(b[32:], 64)       // phoff
	le.PutUint16(b[52:], 64)       // ehsize
	le.PutUint16(b[54:], 56)       // phentsize
	le.PutUint16(b[56:], 1)        // phnum
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(hdr+len(code)))
	le.PutUint64(ph[40:], uint64(hdr+len(code)))
	le.PutUint64(ph[48:], 0x1000)
	return append(b, code...)
}

// writeMarkerProgram writes the marker ELF into dir and returns the
// program and marker paths.
func writeMarkerProgram(t testing.TB, dir, name string) (prog, marker string) {
	t.Helper()
	marker = filepath.Join(dir, name+".ran")
	prog = filepath.Join(dir, name)
	if err := os.WriteFile(prog, markerELF(marker), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, marker
}

// testCgroup creates a fresh cgroup v2 directory for one test workload and
// removes it (killing leftovers) at cleanup.
func testCgroup(t testing.TB) string {
	t.Helper()
	root, err := FindCgroup2()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, "vigil-enforce-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		for i := 0; i < 50; i++ {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s not removed", dir)
	})
	return dir
}

// inCgroup returns a command that starts directly inside cgroup (clone3
// with CLONE_INTO_CGROUP), so its very first instruction already runs
// under the workload's policy.
func inCgroup(t testing.TB, cgroup string, name string, args ...string) *exec.Cmd {
	t.Helper()
	fd, err := unix.Open(cgroup, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return cmd
}

// helper runs the test binary's helper mode inside cgroup and returns its
// one-line report.
func helper(t testing.TB, cgroup, mode string, args ...string) string {
	t.Helper()
	cmd := inCgroup(t, cgroup, os.Args[0], args...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), "VIGIL_ENFORCE_HELPER="+mode)
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatalf("helper %s: %v", mode, err)
	}
	// A helper stuck in a syscall means a backend never answered: fail
	// with a message instead of hanging the whole test binary.
	stuck := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	out := buf.String()
	if !stuck.Stop() {
		t.Fatalf("helper %s %v hung for 30s (killed): %s", mode, args, out)
	}
	if err != nil {
		t.Fatalf("helper %s %v: %v: %s", mode, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// listener accepts on 127.0.0.1 and counts connections that arrived.
type listener struct {
	ln      net.Listener
	accepts atomic.Int64
	wg      sync.WaitGroup
}

func newListener(t testing.TB) *listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); l.wg.Wait() })
	return l
}

func (l *listener) port() uint16 { return uint16(l.ln.Addr().(*net.TCPAddr).Port) }

// recorder collects decision records.
type recorder struct {
	mu   sync.Mutex
	recs []Record
}

func (r *recorder) add(rec Record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

// wait returns the first record matching pred, waiting up to 5s for it.
func (r *recorder) wait(t testing.TB, what string, pred func(Record) bool) Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, rec := range r.recs {
			if pred(rec) {
				r.mu.Unlock()
				return rec
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no record for %s; have %+v", what, r.recs)
	return Record{}
}

// runBounded runs cmd and fails the test if it is still running after 30s
// (a backend that never answered), instead of hanging the test binary.
func runBounded(t testing.TB, cmd *exec.Cmd) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		return err
	}
	stuck := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !stuck.Stop() {
		t.Fatalf("%s hung for 30s (killed)", cmd.Path)
	}
	return err
}
