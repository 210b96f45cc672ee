package runctest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestStartExecCleanup(t *testing.T) {
	t.Parallel()
	var c *Container
	t.Run("run", func(t *testing.T) {
		c = Start(t, Options{Files: map[string]string{"/etc/vigil-marker": "hello\n"}})

		out, err := c.Exec("cat", "/etc/vigil-marker")
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "hello\n" {
			t.Fatalf("cat marker = %q", out)
		}
		out, err = c.Exec("id", "-u")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(out)) != "0" {
			t.Fatalf("id -u = %q", out)
		}

		// The init pid lives in the cgroup we report, and that cgroup's
		// inode is what /proc/<pid>/cgroup resolves to.
		pids, err := c.Pids()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range pids {
			found = found || p == c.InitPID
		}
		if !found {
			t.Fatalf("init pid %d not in %s (%v)", c.InitPID, c.Cgroup2Dir, pids)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(c.Cgroup2Dir, &st); err != nil || st.Ino != c.CgroupID {
			t.Fatalf("cgroup id %d vs stat %d (%v)", c.CgroupID, st.Ino, err)
		}
		if !strings.HasSuffix(c.Cgroup2Dir, c.CgroupsPath) {
			t.Fatalf("cgroup2 dir %s does not end in cgroupsPath %s", c.Cgroup2Dir, c.CgroupsPath)
		}
		// The init runs in its own pid namespace: pid 1 inside.
		out, err = c.Exec("sh", "-c", "echo $$; cat /proc/1/comm")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "sleep") {
			t.Fatalf("pid 1 inside is not sleep: %q", out)
		}
	})
	if c == nil {
		return
	}
	// After the subtest's cleanup everything is gone.
	if _, err := state(c.ID); err == nil {
		t.Fatalf("container %s still exists after cleanup", c.ID)
	}
	if _, err := os.Stat(c.Cgroup2Dir); !os.IsNotExist(err) {
		t.Fatalf("cgroup %s still exists after cleanup: %v", c.Cgroup2Dir, err)
	}
	// The init may linger as a zombie until its new parent reaps it, but it
	// must not be running.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.InitPID)); err == nil {
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			if cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.InitPID)); strings.Contains(string(cg), c.ID) {
				t.Fatalf("init %d still running (state %s) after cleanup", c.InitPID, f[0])
			}
		}
	}
}

func TestParallelContainers(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 3)
	for i := 0; i < 3; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			c := Start(t, Options{HostNetwork: i == 0})
			if _, err := c.Exec("true"); err != nil {
				t.Fatal(err)
			}
			ids <- c.CgroupID
		})
	}
	t.Cleanup(func() {
		close(ids)
		seen := map[uint64]bool{}
		for id := range ids {
			if seen[id] {
				t.Errorf("two containers share cgroup id %d", id)
			}
			seen[id] = true
		}
	})
}

// An orphan (its bundle deleted, as when a test binary is killed and its
// temp dir removed) is reaped by the next binary's first Start.
func TestReapOrphans(t *testing.T) {
	t.Run("orphan", func(t *testing.T) {
		c := Start(t, Options{})
		// Detach from t.Cleanup's teardown by renaming the bundle away:
		// the container keeps running with its bundle path gone.
		if err := os.Rename(c.Bundle, c.Bundle+".gone"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(c.Bundle + ".gone") })
		reapOrphans()
		if _, err := state(c.ID); err == nil {
			t.Fatalf("orphan %s not reaped", c.ID)
		}
		if _, err := os.Stat(c.Cgroup2Dir); !os.IsNotExist(err) {
			t.Fatalf("orphan cgroup %s not removed: %v", c.Cgroup2Dir, err)
		}
	})
}

// TestMountsRunHostBinaries binds the host's /usr read-only with merged-/usr
// symlinks and a tmpfs data dir: a dynamically linked host binary runs, /usr
// cannot be written, the tmpfs can, and a bound host file reads through.
func TestMountsRunHostBinaries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/conf", []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Start(t, Options{
		Mounts: []Mount{
			{Dest: "/usr", Source: "/usr", ReadOnly: true},
			{Dest: "/data"},
			{Dest: "/etc/app.conf", Source: dir + "/conf", ReadOnly: true},
		},
		Symlinks: map[string]string{"lib": "usr/lib", "lib64": "usr/lib64"},
	})
	out, err := c.Exec("/usr/bin/stat", "-c", "%F", "/usr/bin/stat")
	if err != nil || strings.TrimSpace(string(out)) != "regular file" {
		t.Fatalf("host stat in container: %v %q", err, out)
	}
	if out, err := c.Exec("touch", "/usr/vigil-rw-probe"); err == nil {
		t.Fatalf("wrote to the read-only /usr bind: %q", out)
	}
	if out, err := c.Exec("sh", "-c", "echo x >/data/f && cat /data/f /etc/app.conf"); err != nil || string(out) != "x\nbound\n" {
		t.Fatalf("tmpfs write / file bind: %v %q", err, out)
	}
	if _, err := os.Stat("/usr/vigil-rw-probe"); err == nil {
		t.Fatal("the probe reached the host's /usr")
	}
	// A server running as its own user can write to a tmpfs and to /tmp.
	nobody := Start(t, Options{UID: 65534, GID: 65534, Mounts: []Mount{{Dest: "/data"}}})
	if out, err := nobody.Exec("sh", "-c", "echo y >/data/f && echo z >/tmp/f && cat /data/f /tmp/f && stat -c %A /data /tmp"); err != nil ||
		string(out) != "y\nz\ndrwxrwxrwt\ndrwxrwxrwt\n" {
		t.Fatalf("non-root tmpfs and /tmp: %v %q", err, out)
	}
}
