// Command packhelper performs one real behavior for the standard pack's
// end-to-end test (guard/pack_test.go), on the host or inside a runc
// container. It is built static so the same binary runs in a busybox rootfs.
//
// Usage: packhelper mode=NAME [args...]. Without a mode= first argument it
// exits 0 at once: copies of it named like a tool (xmrig, crontab, useradd,
// apt-get, debugfs) exercise name-based rules without running anything.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 || !strings.HasPrefix(os.Args[1], "mode=") {
		return
	}
	if err := run(strings.TrimPrefix(os.Args[1], "mode="), os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "packhelper: %v\n", err)
		os.Exit(1)
	}
}

func run(mode string, args []string) error {
	switch mode {
	case "spawn": // exec args (a child of this process, whose name is ours)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	case "ttyexec": // ttyexec UID prog args...: run prog as UID on a new controlling terminal
		return ttyExec(args)
	case "memfd": // memfd SRC argv0 args...: copy SRC into a memfd and execveat it
		return memfdExec(args)
	case "connect": // connect HOST:PORT: one TCP connect attempt; failure is not an error
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			fmt.Println("connect:", err)
			return nil
		}
		return c.Close()
	case "revshell": // revshell HOST:PORT: connect and dup2 the socket onto 0, 1, 2
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			return err
		}
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			return err
		}
		for fd := 0; fd <= 2; fd++ {
			if _, _, e := syscall.RawSyscall(syscall.SYS_DUP2, f.Fd(), uintptr(fd), 0); e != 0 {
				return fmt.Errorf("dup2 onto %d: %w", fd, e)
			}
		}
		os.Exit(0)
	case "packet": // AF_PACKET socket; the attempt is the behavior, EPERM is reported
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ALL)))
		if err != nil {
			fmt.Println("socket:", err)
			return nil
		}
		return syscall.Close(fd)
	case "ptrace-attach": // attach to a child of ours
		child := exec.Command(args[0], args[1:]...)
		if err := child.Start(); err != nil {
			return err
		}
		defer child.Process.Kill()
		runtime.LockOSThread()
		if err := syscall.PtraceAttach(child.Process.Pid); err != nil {
			fmt.Println("ptrace attach:", err)
			return nil
		}
		var ws syscall.WaitStatus
		syscall.Wait4(child.Process.Pid, &ws, syscall.WALL, nil)
		return syscall.PtraceDetach(child.Process.Pid)
	case "traceme":
		// The process exits right after: once traced, a signal would stop it
		// until the parent (which does not expect it) waits.
		runtime.LockOSThread()
		_, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
		if e != 0 {
			fmt.Println("traceme:", e)
		}
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	case "finit": // finit_module on an empty file: fails (ENOSYS without module support, else ENOEXEC/EINVAL/EPERM), loads nothing
		f, err := os.CreateTemp("", "packhelper-mod")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		params := []byte{0}
		_, _, e := syscall.RawSyscall(313 /* finit_module */, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
		fmt.Println("finit_module:", e)
	case "setuid-attempt": // drop to UID, then try to become root again
		uid, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		if err := syscall.Setgid(uid); err != nil {
			return err
		}
		if err := syscall.Setuid(uid); err != nil {
			return err
		}
		runtime.LockOSThread()
		_, _, e := syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)
		fmt.Println("setuid(0):", e)
	case "openw": // open PATH write-only and close it without writing
		fd, err := syscall.Open(args[0], syscall.O_WRONLY, 0)
		if err != nil {
			fmt.Println("open:", err)
			return nil
		}
		return syscall.Close(fd)
	case "write": // create or truncate PATH and write a line
		return os.WriteFile(args[0], []byte("packhelper\n"), 0o644)
	case "read": // read PATH
		_, err := os.ReadFile(args[0])
		return err
	case "mount": // mount a tmpfs on DIR and unmount it
		if err := syscall.Mount("packtest", args[0], "tmpfs", 0, ""); err != nil {
			return err
		}
		return syscall.Unmount(args[0], 0)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func ttyExec(args []string) error {
	uid, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer ptmx.Close()
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		return fmt.Errorf("unlockpt: %w", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		return fmt.Errorf("ptsname: %w", e)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer pts.Close()
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0,
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	return cmd.Run()
}

func memfdExec(args []string) error {
	src, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	name := []byte("packhelper\x00")
	fd, _, e := syscall.RawSyscall(319 /* memfd_create */, uintptr(unsafe.Pointer(&name[0])), 0, 0)
	if e != 0 {
		return fmt.Errorf("memfd_create: %w", e)
	}
	if _, err := syscall.Write(int(fd), src); err != nil {
		return err
	}
	argv, err := syscall.SlicePtrFromStrings(args[1:])
	if err != nil {
		return err
	}
	env, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return err
	}
	empty := []byte{0}
	const atEmptyPath = 0x1000
	_, _, e = syscall.Syscall6(322 /* execveat */, fd, uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&env[0])), atEmptyPath, 0)
	return fmt.Errorf("execveat: %w", e)
}
