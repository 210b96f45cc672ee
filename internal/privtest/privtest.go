// Package privtest gates tests that need root, BTF or particular BPF program
// types. Each helper skips with a reason only when the requirement truly
// cannot be met on this machine; when the running kernel claims a feature
// (for example BTF is present) but loading fails, the test fails instead, so
// a skip can never hide a regression.
package privtest

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// RequireRoot skips t unless the test runs as root; under CI, where every
// kernel test must run, not being root is a failure.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if InCI() {
			t.Fatal("CI=true but not root: the kernel and container tests would all be skipped")
		}
		t.Skip("needs root (run `sudo make test`)")
	}
}

// RequireBTF skips t unless the kernel exposes BTF at /sys/kernel/btf/vmlinux.
func RequireBTF(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel has no BTF: %v", err)
	}
}

// RequireProgramType skips t when the kernel reports the program type as
// unsupported, and fails it when the probe itself errors unexpectedly.
func RequireProgramType(t testing.TB, pt ebpf.ProgramType) {
	t.Helper()
	RequireRoot(t)
	err := features.HaveProgramType(pt)
	switch {
	case err == nil:
	case errors.Is(err, ebpf.ErrNotSupported):
		t.Skipf("kernel lacks program type %s: %v", pt, err)
	default:
		t.Fatalf("probe program type %s: %v", pt, err)
	}
}

// InCI reports whether the test runs under CI (CI=true), where every
// dependency is installed by the project's scripts and a missing tool is a
// failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool skips t when an external tool the test drives (runc, qemu) is
// missing, except under CI, where `make test` installs it and its absence is
// a failure.
func RequireTool(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if InCI() {
			t.Fatalf("%s missing under CI; scripts/deps.sh should have installed it: %v", path, err)
		}
		t.Skipf("%s not installed (make test installs it): %v", path, err)
	}
}
