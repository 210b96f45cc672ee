package baseline

import (
	"fmt"
	"testing"
)

func TestGeneralizePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/etc/nginx/nginx.conf", "/etc/nginx/nginx.conf"},
		{"/proc/4711/status", "/proc/{n}/status"},
		{"/proc/self/fd/12", "/proc/self/fd/{n}"},
		{"/usr/share/nginx/html/static/app.3f9a1c2e.js", "/usr/share/nginx/html/static/app.{hex}.js"},
		{"/var/lib/kubelet/pods/0f8fad5b-d9cb-469f-a165-70867728950e/volumes", "/var/lib/kubelet/pods/{uuid}/volumes"},
		{"/var/log/app-2026-12-06.log", "/var/log/app-{date}.log"},
		{"/var/log/app.log.3", "/var/log/app.log.{n}"},
		{"/run/worker12.sock", "/run/worker{n}.sock"},
		{"/tmp/tmpA8fk2Lq9", "/tmp/{id}"},
		{"/var/lib/postgresql/data/base/16384/2619_fsm", "/var/lib/postgresql/data/base/{n}/{n}_fsm"},
		{"/data/dump.rdb", "/data/dump.rdb"},
		{"/data/temp-1234.rdb", "/data/temp-{n}.rdb"},
		{"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x{n}_{n}-linux-gnu/libssl.so.{n}"},
		{"//etc///passwd", "/etc/passwd"},
		{"/", "/"},
		{"relative/x1", "/relative/x{n}"},
	} {
		if got := GeneralizePath(tc.in); got != tc.want {
			t.Errorf("GeneralizePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTrieMatchAndInsert(t *testing.T) {
	tr := newPathTrie(4)
	for _, p := range []string{"/etc/nginx/nginx.conf", "/proc/1/status", "/var/cache/app/**"} {
		if !tr.Insert(p) {
			t.Fatalf("Insert(%q) reported no growth", p)
		}
	}
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/etc/nginx/nginx.conf", true},
		{"/etc/nginx", false}, // a prefix of a learned path is not learned
		{"/etc/nginx/other.conf", false},
		{"/proc/999/status", true},   // generalized pid
		{"/proc/self/status", false}, // a word is not a number
		{"/proc/999/environ", false},
		{"/var/cache/app", true}, // ** covers the directory itself
		{"/var/cache/app/a/b/c", true},
		{"/var/cache/other", false},
	} {
		if got := tr.Match(tc.path); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if tr.Insert("/proc/42/status") {
		t.Error("Insert of a covered path reported growth")
	}
}

func TestTrieFanoutCollapses(t *testing.T) {
	tr := newPathTrie(4)
	for _, s := range []string{"alpha", "beta", "gamma", "delta"} {
		tr.Insert("/srv/sessions/" + s + "/data")
	}
	if tr.Match("/srv/sessions/epsilon/data") {
		t.Fatal("matched before the fan-out bound was exceeded")
	}
	tr.Insert("/srv/sessions/epsilon/data")
	for _, p := range []string{"/srv/sessions/zeta/data", "/srv/sessions/alpha/data"} {
		if !tr.Match(p) {
			t.Errorf("Match(%q) after collapse = false", p)
		}
	}
	if tr.Match("/srv/sessions/zeta/other") || tr.Match("/srv/other/x") {
		t.Error("collapse generalized beyond the collapsed level")
	}
	if got, want := fmt.Sprint(tr.Patterns()), "[/srv/sessions/*/data]"; got != want {
		t.Errorf("Patterns() = %s, want %s", got, want)
	}
	// Merging subtrees: children with different shapes union under *.
	tr2 := newPathTrie(2)
	tr2.Insert("/a/x/one")
	tr2.Insert("/a/y/two/deep")
	tr2.Insert("/a/z/**")
	if !tr2.Match("/a/q/anything/here") || !tr2.Match("/a/q/one") {
		t.Errorf("merged wildcard lost a subtree: %v", tr2.Patterns())
	}
	c := tr2.clone()
	c.Insert("/b/only/in/clone")
	if tr2.Match("/b/only/in/clone") {
		t.Error("clone shares nodes with its source")
	}
}

func TestTrieWildcardPatternsRoundTrip(t *testing.T) {
	tr := newPathTrie(24)
	for _, p := range []string{"/a/*/b", "/c/**", "/d/{n}/e"} {
		tr.Insert(p)
	}
	for _, p := range []string{"/a/anything/b", "/c/x/y", "/d/77/e"} {
		if !tr.Match(p) {
			t.Errorf("Match(%q) = false; patterns %v", p, tr.Patterns())
		}
	}
	re := newPathTrie(24)
	for _, p := range tr.Patterns() {
		re.Insert(p)
	}
	if fmt.Sprint(re.Patterns()) != fmt.Sprint(tr.Patterns()) {
		t.Errorf("patterns do not round-trip: %v vs %v", re.Patterns(), tr.Patterns())
	}
}
