package container

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A runc 1.1 state.json's mounts: runc's defaults, a read-only /usr bind,
// a data volume, a tmpfs, and what Docker adds (/etc binds, /dev/shm).
const mountsState = `{"id":"c1","config":{"mounts":[
 {"source":"proc","destination":"/proc","device":"proc","flags":0},
 {"source":"tmpfs","destination":"/dev","device":"tmpfs","flags":16777218},
 {"source":"shm","destination":"/dev/shm","device":"tmpfs","flags":14},
 {"source":"sysfs","destination":"/sys","device":"sysfs","flags":15},
 {"source":"/usr","destination":"/usr","device":"bind","flags":20487},
 {"source":"/tmp/vol","destination":"/var/lib/postgresql","device":"bind","flags":20486},
 {"source":"tmpfs","destination":"/data","device":"tmpfs","flags":6},
 {"source":"/var/lib/docker/c1/hosts","destination":"/etc/hosts","device":"bind","flags":20480},
 {"source":"/srv/cache","destination":"/var/cache/app/","device":"","flags":4096}]}}`

func TestWritableMounts(t *testing.T) {
	got, err := writableMounts([]byte(mountsState))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/lib/postgresql", "/data", "/var/cache/app"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("writable mounts %q, want %q", got, want)
	}
	if _, err := writableMounts([]byte(`{"config":{"mounts":7}}`)); !errors.Is(err, ErrBadState) {
		t.Errorf("malformed state: %v", err)
	}

	// Found by id under a depth-1 (runc) and a depth-2 (containerd) root.
	dir := t.TempDir()
	for _, p := range []string{"runc/c1", "ctrd/k8s.io/c2"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p, "state.json"), []byte(mountsState), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	roots := []StateRoot{{Dir: filepath.Join(dir, "runc"), Runtime: RuntimeRunc, Depth: 1},
		{Dir: filepath.Join(dir, "ctrd"), Runtime: RuntimeContainerd, Depth: 2}}
	for _, id := range []string{"c1", "c2"} {
		if got, err := WritableMounts(roots, id); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q %v", id, got, err)
		}
	}
	if _, err := WritableMounts(roots, "c3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
	if _, err := WritableMounts(roots, "../c1"); !errors.Is(err, ErrBadState) {
		t.Errorf("id with a slash: %v", err)
	}
}
