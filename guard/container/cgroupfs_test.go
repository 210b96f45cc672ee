package container

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const hybridMountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const pureV2Mountinfo = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
27 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

func TestFindCgroup2Mount(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"hybrid", hybridMountinfo, "/sys/fs/cgroup/unified", nil},
		{"pure v2", pureV2Mountinfo, "/sys/fs/cgroup", nil},
		{"escaped space", `40 30 0:37 / /mnt/cg\040two rw - cgroup2 cgroup2 rw` + "\n", "/mnt/cg two", nil},
		{"optional fields", `40 30 0:37 / /cg rw shared:4 master:1 - cgroup2 none rw` + "\n", "/cg", nil},
		{"v1 only", "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", "", ErrNoCgroup2},
		{"garbage", "x y z\n- cgroup2\n", "", ErrNoCgroup2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindCgroup2Mount(strings.NewReader(tt.in))
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	hybrid := "12:pids:/vigil-runctest-ab\n11:name=systemd:/vigil-runctest-ab\n3:cpu,cpuacct:/vigil-runctest-ab\n0::/vigil-runctest-ab\n"
	got, err := ParseProcCgroup([]byte(hybrid))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcCgroup{Unified: "/vigil-runctest-ab", V1: map[string]string{
		"pids": "/vigil-runctest-ab", "name=systemd": "/vigil-runctest-ab", "cpu,cpuacct": "/vigil-runctest-ab"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}

	// Hybrid host where the container is only in v1 (unified stays "/"):
	// the v1 path names the container.
	v1only := "11:name=systemd:/docker/" + cid + "\n4:memory:/docker/" + cid + "\n0::/\n"
	pc, err := ParseProcCgroup([]byte(v1only))
	if err != nil || pc.ContainerPath() != "/docker/"+cid {
		t.Fatalf("v1 fallback: %q, %v", pc.ContainerPath(), err)
	}
	pure := "0::/system.slice/docker-" + cid + ".scope\n"
	pc, err = ParseProcCgroup([]byte(pure))
	if err != nil || pc.ContainerPath() != "/system.slice/docker-"+cid+".scope" || pc.V1 != nil {
		t.Fatalf("pure v2: %+v, %v", pc, err)
	}

	for _, bad := range []string{"garbage\n", "0::relative\n", "x::/\n", "1:cpu\n", "0::\n"} {
		if _, err := ParseProcCgroup([]byte(bad)); !errors.Is(err, ErrBadProcCgroup) {
			t.Errorf("ParseProcCgroup(%q) err = %v", bad, err)
		}
	}
}

func TestParseRuncState(t *testing.T) {
	// Trimmed from a real runc 1.1.5 state.json on this hybrid host.
	real := `{"id":"vigil-runctest-6b1d43b7b137","init_process_pid":16454,"cgroup_paths":{"":"/sys/fs/cgroup/unified/vigil-runctest-6b1d43b7b137","cpu":"/sys/fs/cgroup/cpu/vigil-runctest-6b1d43b7b137"},"config":{"cgroups":{"path":"/vigil-runctest-6b1d43b7b137"}}}`
	id, path, err := parseRuncState([]byte(real), "/sys/fs/cgroup/unified")
	if err != nil || id != "vigil-runctest-6b1d43b7b137" || path != "/vigil-runctest-6b1d43b7b137" {
		t.Fatalf("got %q %q %v", id, path, err)
	}
	// Pure v2: the unified path sits directly under /sys/fs/cgroup.
	v2 := `{"id":"c1","cgroup_paths":{"":"/sys/fs/cgroup/default/c1"},"config":{"cgroups":{"path":"/default/c1"}}}`
	if id, path, err := parseRuncState([]byte(v2), "/sys/fs/cgroup"); err != nil || id != "c1" || path != "/default/c1" {
		t.Fatalf("v2: %q %q %v", id, path, err)
	}
	// A prefix that is not a path boundary must not match.
	odd := `{"id":"c2","cgroup_paths":{"":"/sys/fs/cgroupX/c2"},"config":{"cgroups":{"path":"/c2"}}}`
	if _, path, _ := parseRuncState([]byte(odd), "/sys/fs/cgroup"); path != "/c2" {
		t.Fatalf("prefix boundary: %q", path)
	}
	// systemd driver: "slice:prefix:name" is not a path.
	sd := `{"id":"c3","config":{"cgroups":{"path":"system.slice:runc:c3"}}}`
	if _, path, err := parseRuncState([]byte(sd), ""); err != nil || path != "" {
		t.Fatalf("systemd: %q %v", path, err)
	}
	for _, bad := range []string{"", "{", `{"id":""}`, `[]`} {
		if _, _, err := parseRuncState([]byte(bad), "/"); !errors.Is(err, ErrBadState) {
			t.Errorf("parseRuncState(%q) err = %v", bad, err)
		}
	}
}

func TestDigestOf(t *testing.T) {
	d := "sha256:" + cid
	for in, want := range map[string]string{
		d:                                d,
		"docker.io/library/busybox@" + d: d,
		"busybox:latest":                 "",
		"sha256:xyz":                     "",
		"md5:" + cid:                     "",
		"":                               "",
	} {
		if got := digestOf(in); got != want {
			t.Errorf("digestOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzFindCgroup2Mount(f *testing.F) {
	f.Add(hybridMountinfo)
	f.Add(pureV2Mountinfo)
	f.Add(`1 1 0:1 / /a\0 - cgroup2 x y`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = FindCgroup2Mount(strings.NewReader(s))
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("12:pids:/a\n0::/a\n"))
	f.Add([]byte("0::/system.slice/docker-" + cid + ".scope\n"))
	f.Add([]byte("::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pc, err := ParseProcCgroup(b)
		if err != nil {
			return
		}
		if p := pc.ContainerPath(); p != "" && p[0] != '/' {
			t.Fatalf("relative container path %q", p)
		}
	})
}

func FuzzParseRuncState(f *testing.F) {
	f.Add([]byte(`{"id":"a","cgroup_paths":{"":"/sys/fs/cgroup/unified/a"}}`), "/sys/fs/cgroup/unified")
	f.Add([]byte(`{"id":"b","config":{"cgroups":{"path":"/x/../b"}}}`), "")
	f.Fuzz(func(t *testing.T, b []byte, root string) {
		id, path, err := parseRuncState(b, root)
		if err != nil {
			return
		}
		if id == "" {
			t.Fatal("empty id accepted")
		}
		if path != "" && path[0] != '/' {
			t.Fatalf("relative cgroup path %q", path)
		}
	})
}
