package sensor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helpers are the behaviours a child process performs for the root tests.
// Each runs in a fresh process so the sensor (which ignores the test
// process itself) sees it, and so its pid identifies its events.
var helpers = map[string]func(args []string) error{
	// open <path> <flags>: open(2) with the given flags, then close.
	"open": func(a []string) error {
		flags, _ := strconv.ParseUint(a[1], 0, 32)
		fd, err := unix.Open(a[0], int(flags), 0o640)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	},
	// openloop <path> <n>: open and close path n times.
	"openloop": func(a []string) error {
		n, _ := strconv.Atoi(a[1])
		return openLoop(a[0], n)
	},
	// openat2 <dir> <name>: openat2 relative to an opened directory.
	"openat2": func(a []string) error {
		dfd, err := unix.Open(a[0], unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		fd, err := unix.Openat2(dfd, a[1], &unix.OpenHow{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o600})
		if err != nil {
			return err
		}
		return unix.Close(fd)
	},
	// open-missing <path>: a failed open is reported with its errno.
	"open-missing": func(a []string) error {
		if _, err := unix.Open(a[0], unix.O_RDONLY, 0); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("open %s: want ENOENT, got %v", a[0], err)
		}
		return nil
	},
	// files: namespace changes in the working directory, through both the
	// legacy and the *at syscalls, with relative names.
	"files": func(a []string) error {
		for _, f := range []string{"a", "b"} {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				return err
			}
		}
		dfd, err := unix.Open(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		steps := []func() error{
			func() error { return rawPath2(unix.SYS_RENAME, "a", "a2") },
			func() error { return unix.Renameat2(dfd, "a2", dfd, "a3", unix.RENAME_NOREPLACE) },
			func() error { return rawPath2(unix.SYS_LINK, "a3", "l1") },
			func() error { return unix.Linkat(unix.AT_FDCWD, "a3", dfd, "l2", 0) },
			func() error { return rawPath2(unix.SYS_SYMLINK, "/target/one", "s1") },
			func() error { return unix.Symlinkat("../target/two", dfd, "s2") },
			func() error { return rawPath1(unix.SYS_UNLINK, "l1") },
			func() error { return unix.Unlinkat(dfd, "l2", 0) },
			func() error { return rawChmod("b", 0o4755) },
			func() error { return unix.Fchmodat(dfd, "b", 0o2750, 0) },
			func() error { return rawChmod("b", 0o755) }, // no setuid bit: not reported
			func() error {
				fd, err := unix.Open("b", unix.O_RDONLY, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				return unix.Fchmod(fd, 0o6711)
			},
		}
		for i, s := range steps {
			if err := s(); err != nil {
				return fmt.Errorf("step %d: %w", i, err)
			}
		}
		return nil
	},
	// connect <addr>: TCP connect and close.
	"connect": func(a []string) error {
		c, err := net.Dial("tcp", a[0])
		if err != nil {
			return err
		}
		return c.Close()
	},
	// server <addr-file>: bind [::1]:0, listen(7), write the port, accept two.
	"server": func(a []string) error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}); err != nil {
			return err
		}
		if err := unix.Listen(fd, 7); err != nil {
			return err
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return err
		}
		port := sa.(*unix.SockaddrInet6).Port
		if err := os.WriteFile(a[0], []byte(strconv.Itoa(port)), 0o644); err != nil {
			return err
		}
		// The first connection through accept(2), the second accept4(2).
		nfd, _, e := unix.Syscall(unix.SYS_ACCEPT, uintptr(fd), 0, 0)
		if e != 0 {
			return e
		}
		unix.Close(int(nfd))
		nfd2, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			return err
		}
		unix.Close(nfd2)
		return unix.Close(fd)
	},
	// packet: open an AF_PACKET socket.
	"packet": func(a []string) error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Close(fd)
	},
	// dupsock <addr>: connect, then dup2 the socket onto stdout and dup3
	// onto stdin: the reverse-shell shape.
	"dupsock": func(a []string) error {
		c, err := net.Dial("tcp", a[0])
		if err != nil {
			return err
		}
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			return err
		}
		if err := unix.Dup2(int(f.Fd()), 1); err != nil {
			return err
		}
		return unix.Dup3(int(f.Fd()), 0, 0)
	},
	// ids: every set*id syscall once, on this thread only (raw syscalls;
	// the unix wrappers repeat the call on every thread).
	"ids": func(a []string) error {
		runtime.LockOSThread()
		m1 := ^uintptr(0)
		for i, c := range []struct{ nr, a0, a1, a2 uintptr }{
			{unix.SYS_SETGID, 2000, 0, 0},
			{unix.SYS_SETREGID, 2001, 2002, 0},
			{unix.SYS_SETRESGID, 2003, 2004, m1},
			{unix.SYS_SETREUID, 1001, m1, 0},
			{unix.SYS_SETRESUID, 1002, 1003, m1},
			{unix.SYS_SETUID, 1002, 0, 0},
		} {
			if _, _, e := unix.RawSyscall(c.nr, c.a0, c.a1, c.a2); e != 0 {
				return fmt.Errorf("step %d: %w", i, e)
			}
		}
		return nil
	},
	// open-legacy <dir>: the pre-openat syscalls open(2) and creat(2).
	"open-legacy": func(a []string) error {
		for _, c := range []struct {
			nr    uintptr
			name  string
			flags uintptr
		}{
			{unix.SYS_CREAT, "viacreat", 0o600},
			{unix.SYS_OPEN, "viacreat", unix.O_WRONLY | unix.O_APPEND},
		} {
			p, _ := unix.BytePtrFromString(a[0] + "/" + c.name)
			fd, _, e := unix.Syscall(c.nr, uintptr(unsafe.Pointer(p)), c.flags, 0o600)
			if e != 0 {
				return fmt.Errorf("%s: %w", c.name, e)
			}
			unix.Close(int(fd))
		}
		return nil
	},
	// capset: keep only CAP_NET_BIND_SERVICE (10) and CAP_SYS_ADMIN (21)
	// permitted, CAP_NET_BIND_SERVICE effective.
	"capset": func(a []string) error {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{{Effective: 1 << 10, Permitted: 1<<10 | 1<<21}}
		return unix.Capset(&hdr, &data[0])
	},
	// ptrace: attach to a sleeping child, then kill it.
	"ptrace": func(a []string) error {
		runtime.LockOSThread()
		cmd := exec.Command("/bin/sleep", "10")
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		if err := unix.PtraceAttach(cmd.Process.Pid); err != nil {
			return err
		}
		fmt.Println(cmd.Process.Pid)
		return nil
	},
	// mount <dir>: private mount namespace, tmpfs on dir, detach it.
	"mount": func(a []string) error {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return err
		}
		if err := unix.Mount("vigil-src", a[0], "tmpfs", unix.MS_NOSUID, "size=1m"); err != nil {
			return err
		}
		return unix.Unmount(a[0], unix.MNT_DETACH)
	},
	// setns: join our own network namespace again.
	"setns": func(a []string) error {
		runtime.LockOSThread()
		fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		return unix.Setns(fd, unix.CLONE_NEWNET)
	},
	// module <file>: try to load a file that is not a module, both ways.
	// The kernel refuses; the attempt is what the sensor must report.
	"module": func(a []string) error {
		img := []byte("not an ELF module")
		_, _, e1 := unix.Syscall(unix.SYS_INIT_MODULE, uintptr(unsafe.Pointer(&img[0])), uintptr(len(img)), uintptr(unsafe.Pointer(&[]byte{0}[0])))
		fd, err := unix.Open(a[0], unix.O_RDONLY, 0)
		if err != nil {
			return err
		}
		e2 := unix.FinitModule(fd, "", 0)
		if e1 == 0 || e2 == nil {
			return errors.New("the kernel accepted a bogus module")
		}
		return nil
	},
	// memfd: copy /bin/true into a memfd and exec it (fileless exec).
	"memfd": func(a []string) error {
		fd, err := unix.MemfdCreate("vigil-test", 0)
		if err != nil {
			return err
		}
		src, err := os.Open("/bin/true")
		if err != nil {
			return err
		}
		if _, err := io.Copy(os.NewFile(uintptr(fd), "memfd"), src); err != nil {
			return err
		}
		return syscall.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"true", "from-memfd"}, nil)
	},
}

func rawPath1(nr uintptr, p string) error {
	b, _ := unix.BytePtrFromString(p)
	if _, _, e := unix.Syscall(nr, uintptr(unsafe.Pointer(b)), 0, 0); e != 0 {
		return e
	}
	return nil
}

func rawPath2(nr uintptr, p1, p2 string) error {
	b1, _ := unix.BytePtrFromString(p1)
	b2, _ := unix.BytePtrFromString(p2)
	if _, _, e := unix.Syscall(nr, uintptr(unsafe.Pointer(b1)), uintptr(unsafe.Pointer(b2)), 0); e != 0 {
		return e
	}
	return nil
}

func rawChmod(p string, mode uint32) error {
	b, _ := unix.BytePtrFromString(p)
	if _, _, e := unix.Syscall(unix.SYS_CHMOD, uintptr(unsafe.Pointer(b)), uintptr(mode), 0); e != 0 {
		return e
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openLoop(path string, n int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		fd, _, e := unix.Syscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(p)), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return e
		}
		unix.Syscall(unix.SYS_CLOSE, fd, 0, 0)
	}
	return nil
}

// atFDCWD is AT_FDCWD as a raw syscall argument.
var atFDCWD = func() uintptr { v := int64(unix.AT_FDCWD); return uintptr(v) }()
