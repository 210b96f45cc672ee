package process

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A real /proc/<pid>/stat line (kernel 6.x) with a comm holding spaces and
// parentheses.
const statLine = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1071 0 0 0 3 1 0 0 20 0 1 0 64781 8753152 854 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ProcStat
		wantErr bool
	}{
		{"real", statLine, ProcStat{Comm: "my (odd) proc", State: 'S', PPID: 1, StartTicks: 64781}, false},
		{"kthread", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0", ProcStat{Comm: "kthreadd", State: 'S', StartTicks: 2}, false},
		{"empty comm", "7 () R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0", ProcStat{State: 'R', PPID: 1, StartTicks: 99}, false},
		{"empty", "", ProcStat{}, true},
		{"no close paren", "1 (init S 0", ProcStat{}, true},
		{"truncated", "1 (init) S 0 1 1", ProcStat{}, true},
		{"bad ppid", "1 (init) S x 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0", ProcStat{}, true},
		{"bad start", "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0", ProcStat{}, true},
		{"long state", "1 (init) SS 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0", ProcStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrBadProcFile) {
					t.Fatalf("err = %v, want ErrBadProcFile", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	real := "Name:\tsudo\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nGid:\t1000\t27\t27\t27\nGroups:\t27\n"
	got, err := ParseStatus([]byte(real))
	if err != nil || got != (IDs{UID: 1000, EUID: 0, GID: 1000, EGID: 27}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"", "Uid:\t1\n", "Uid:\t1\t2\t3\t4\nGid:\tx\t1\n", "Uid:\nGid:\t1\t1\n"} {
		if _, err := ParseStatus([]byte(bad)); !errors.Is(err, ErrBadProcFile) {
			t.Errorf("ParseStatus(%q) err = %v", bad, err)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in    string
		max   int
		want  []string
		trunc bool
	}{
		{"", 8, nil, false},
		{"sleep\x00100\x00", 8, []string{"sleep", "100"}, false},
		{"sh\x00-c\x00echo a b\x00", 8, []string{"sh", "-c", "echo a b"}, false},
		{"a\x00\x00b\x00", 8, []string{"a", "", "b"}, false},
		{"no-nul-terminator", 8, []string{"no-nul-terminator"}, false},
		{"a\x00b\x00c\x00d\x00", 2, []string{"a", "b"}, true},
	}
	for _, tt := range tests {
		got, trunc := ParseCmdline([]byte(tt.in), tt.max)
		if !reflect.DeepEqual(got, tt.want) || trunc != tt.trunc {
			t.Errorf("ParseCmdline(%q, %d) = %q, %v; want %q, %v", tt.in, tt.max, got, trunc, tt.want, tt.trunc)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (a) S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err != nil {
			return
		}
		if !strings.Contains(string(b), "("+st.Comm+")") {
			t.Fatalf("comm %q not delimited in %q", st.Comm, b)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"))
	f.Add([]byte("Uid:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStatus(b)
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add([]byte("sh\x00-c\x00id\x00"), 4)
	f.Add([]byte("\x00\x00"), 1)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max <= 0 || max > 1024 {
			return
		}
		args, trunc := ParseCmdline(b, max)
		if len(args) > max {
			t.Fatalf("%d args > max %d", len(args), max)
		}
		if !trunc && len(b) > 0 && strings.Join(args, "\x00") != strings.TrimSuffix(string(b), "\x00") {
			t.Fatalf("lossless split of %q gave %q", b, args)
		}
	})
}

func TestFindCgroup2(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]string{
		"30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n": "/sys/fs/cgroup/unified",
		"27 22 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n":                                               "/sys/fs/cgroup",
		"31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n":                                                             "",
	} {
		p := filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := findCgroup2(p); got != want {
			t.Errorf("findCgroup2(%q) = %q, want %q", in, got, want)
		}
	}
}
