package enforce

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// inGuest reports whether the test binary is PID 1, i.e. the /init of the
// QEMU guest that scripts/vmtest.sh boots.
func inGuest() bool { return os.Getpid() == 1 }

// guestSetup mounts what the tests and cilium/ebpf need when the test
// binary is the guest's /init. It runs before any BPF call.
func guestSetup() {
	if !inGuest() {
		return
	}
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"securityfs", "/sys/kernel/security", "securityfs"},
		{"bpf", "/sys/fs/bpf", "bpf"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil {
			fmt.Printf("VIGIL-VMTEST: mount %s: %v\n", m.dst, err)
		}
	}
	// Loopback for the connect tests.
	if err := loopbackUp(); err != nil {
		fmt.Printf("VIGIL-VMTEST: lo up: %v\n", err)
	}
	os.Setenv("TMPDIR", "/tmp")
	fmt.Println("VIGIL-VMTEST: guest ready")
}

// guestFinish prints the verdict the host script parses and powers off.
func guestFinish(code int) {
	if !inGuest() {
		return
	}
	if code == 0 {
		fmt.Println("VIGIL-VMTEST: PASS")
	} else {
		fmt.Printf("VIGIL-VMTEST: FAIL (exit %d)\n", code)
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
