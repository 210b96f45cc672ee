package baseline

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/guard/profile"
)

// learnedWebProfile builds the profile of a busy web server after learning:
// what the benchmarks measure and the store tests write.
func learnedWebProfile(i int) *Profile {
	k := webKey("rev" + strconv.Itoa(i))
	p := newProfile(k, day0)
	p.seed(&profile.Expected{Key: k, Executables: []string{"/docker-entrypoint.sh", "nginx"},
		ListenPorts:   []profile.Port{{Port: 80, Proto: "TCP"}, {Port: 443, Proto: "TCP"}},
		Egress:        []profile.Egress{{CIDR: "10.96.0.0/12", Port: 8080}, {Host: "api.payments.example", Port: 443}},
		WritablePaths: []string{"/var/cache/nginx", "/var/run"}, AdmittedAt: day0})
	for _, e := range []string{nginx, sh, busybox, "/usr/bin/envsubst", "/bin/sed", "/usr/bin/find"} {
		p.Add(Behavior{CatExec, e})
		p.Add(Behavior{CatEdge, shim + ">" + e})
	}
	for _, n := range []string{"sh", "sed", "busybox"} {
		p.Add(Behavior{CatExecName, ExecName(busybox, n)})
	}
	for j := 0; j < 200; j++ {
		p.Add(Behavior{CatRead, fmt.Sprintf("/usr/share/nginx/html/section%d/page-%s.html", j%12, strings.Repeat("x", j%17+1))})
	}
	for _, f := range []string{"/etc/nginx/nginx.conf", "/etc/nginx/mime.types", "/etc/nginx/conf.d/default.conf", "/etc/group", "/etc/localtime", "/etc/ssl/certs/ca-certificates.crt", "/proc/{n}/status"} {
		p.Add(Behavior{CatRead, f})
	}
	p.Add(Behavior{CatWrite, "/var/log/nginx/access.log"})
	p.Add(Behavior{CatWrite, "/var/log/nginx/error.log"})
	for j := 0; j < 12; j++ {
		p.Add(Behavior{CatConnect, fmt.Sprintf("10.%d.3.%d:5432", j%3, j)})
	}
	p.Add(Behavior{CatConnect, "10.96.0.10:53"})
	p.Add(Behavior{CatPriv, "setuid"})
	for r := range p.Rates {
		for m := 0; m < 100; m++ {
			p.Rates[r].Add(uint32(m % 30))
		}
	}
	for h := range p.Hours {
		p.Hours[h] = uint64(1000 * (h + 1))
	}
	p.HoursSeen = 1<<24 - 1
	p.Events, p.State, p.ReadyAt, p.LastNew = 123456, StateReady, day0.Add(time.Hour), day0.Add(20*time.Minute)
	return p
}

func TestEncodeRoundTrip(t *testing.T) {
	p := learnedWebProfile(1)
	p.Parent = "rev0"
	b := p.Encode()
	q, err := DecodeProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	// Every listed behavior parses back and is held by the decoded profile.
	for _, bh := range p.Behaviors() {
		pb, err := ParseBehavior(bh.String())
		if err != nil || !q.Has(pb) {
			t.Errorf("listed behavior %s: parse %v, held %v", bh, err, q.Has(pb))
		}
	}
	if !reflect.DeepEqual(p.Behaviors(), q.Behaviors()) {
		t.Errorf("behaviors differ after round trip:\n%v\n%v", p.Behaviors(), q.Behaviors())
	}
	if q.Key != p.Key || q.State != p.State || q.Parent != p.Parent || !q.ReadyAt.Equal(p.ReadyAt) ||
		q.Rates != p.Rates || q.Hours != p.Hours || q.HoursSeen != p.HoursSeen || q.Events != p.Events || q.Learned != p.Learned {
		t.Errorf("scalars differ: %+v vs %+v", q, p)
	}
	if string(q.Encode()) != string(b) {
		t.Error("re-encoding is not byte-identical")
	}
	t.Logf("learned web profile: %d behaviors, %d bytes on disk", len(p.Behaviors()), len(b))
	for _, n := range []int{0, 3, len(b) / 2, len(b) - 1} {
		if _, err := DecodeProfile(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d: err = %v, want ErrCorrupt", n, err)
		}
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)/2] ^= 0x40
	if _, err := DecodeProfile(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: err = %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeProfile(f *testing.F) {
	f.Add(learnedWebProfile(1).Encode())
	f.Add(newProfile(webKey("x"), day0).Encode())
	f.Add([]byte{1, 0, 0, 0, 0})
	if v1, err := os.ReadFile("testdata/profile-v1.db"); err == nil {
		// Not a record, but bbolt pages holding one: bytes a decoder must
		// survive.
		f.Add(v1[:4096])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeProfile(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// A record that decodes must survive a round trip.
		q, err := DecodeProfile(p.Encode())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(p.Behaviors(), q.Behaviors()) {
			t.Fatal("round trip changed behaviors")
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	f.Add(EncodeKey(webKey("r1")))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := DecodeKey(b)
		if err == nil && string(EncodeKey(k)) != string(b) {
			t.Fatalf("key %x decodes but re-encodes as %x", b, EncodeKey(k))
		}
	})
}

func TestParseKeyAndBehavior(t *testing.T) {
	k := webKey("7d9f8c6b5")
	got, err := ParseKey(FormatKey(k))
	if err != nil || got != k {
		t.Fatalf("ParseKey(FormatKey) = %+v, %v", got, err)
	}
	for _, s := range []string{"", "web", "shop/web@r1", "shop:nginx@r1"} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) succeeded", s)
		}
	}
	for _, s := range []string{"exec:/usr/bin/curl", "connect:10.0.0.1:443", "listen:tcp/80", "read:/proc/{n}/status", "connect:api.example:443"} {
		b, err := ParseBehavior(s)
		if err != nil || b.String() != s {
			t.Errorf("ParseBehavior(%q) = %v, %v", s, b, err)
		}
	}
	for _, s := range []string{"exec", "bogus:/x", "exec:"} {
		if _, err := ParseBehavior(s); !errors.Is(err, ErrBadBehavior) {
			t.Errorf("ParseBehavior(%q) err = %v", s, err)
		}
	}
}

func TestStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline.db")
	s, err := OpenStore(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{}, s, func() time.Time { return day0 })
	if err != nil {
		t.Fatal(err)
	}
	d.Seed(webExpected("r1", day0))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A second opener is refused while the first holds the file.
	if _, err := OpenStore(path, 50*time.Millisecond); !errors.Is(err, ErrStoreLocked) {
		t.Errorf("concurrent open: err = %v, want ErrStoreLocked", err)
	}
	s.Close()
	s.Close()
	s, err = OpenStore(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d2, err := New(Config{}, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := d2.Profile(webKey("r1"))
	if !ok || !p.Has(Behavior{CatExec, "/usr/sbin/nginx"}) || !p.Seeded {
		t.Fatalf("seeded profile not restored: %+v", p)
	}
	if grew, err := s.Accept(webKey("r1"), Behavior{CatExec, "/usr/bin/curl"}); err != nil || !grew {
		t.Fatalf("store Accept = %v, %v", grew, err)
	}
	// Offline, with no event to name it, an accepted exec is allowed as
	// its path's name; other names are accepted as exec_name.
	if grew, err := s.Accept(webKey("r1"), Behavior{CatExecName, ExecName("/usr/bin/curl", "curl-static")}); err != nil || !grew {
		t.Fatalf("store Accept exec_name = %v, %v", grew, err)
	}
	if sp, err := s.Get(webKey("r1")); err != nil {
		t.Fatal(err)
	} else if got := sp.AllowedExecNames(); !reflect.DeepEqual(got[len(got)-1], ExecEntry{Path: "/usr/bin/curl", Names: []string{"curl", "curl-static"}}) {
		t.Fatalf("accepted entries %+v", got)
	}
	if _, err := s.Accept(webKey("nope"), Behavior{CatExec, "/x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("accept into missing profile: %v", err)
	}
}

const crashEnv = "VIGIL_BASELINE_CRASH_STORE"

// TestCrashChildWriter is the child half of TestStoreSurvivesKill9: it
// writes profiles in a loop and reports each committed write on stdout
// until it is killed.
func TestCrashChildWriter(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child process of TestStoreSurvivesKill9")
	}
	s, err := OpenStore(path, 5*time.Second)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	hot := learnedWebProfile(-1)
	for i := 0; ; i++ {
		hot.Events = uint64(i)
		if err := s.Put(learnedWebProfile(i), hot); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("committed", i)
	}
}

// TestStoreSurvivesKill9 kills a writer mid-stream with SIGKILL and checks
// that every write it reported as committed is there and intact, and that
// no record is torn.
func TestStoreSurvivesKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChildWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal(line)
		}
		if n, ok := strings.CutPrefix(line, "committed "); ok {
			last, _ = strconv.Atoi(n)
			if last == 40 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	cmd.Wait()
	if last < 40 {
		t.Fatalf("child committed only %d writes before exiting", last)
	}
	s, err := OpenStore(path, time.Second)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	ps, err := s.List()
	if err != nil {
		t.Fatalf("torn or corrupt records after kill -9: %v", err)
	}
	byRev := map[string]*Profile{}
	for _, p := range ps {
		byRev[p.Key.Revision] = p
	}
	for i := 0; i <= last; i++ {
		p := byRev["rev"+strconv.Itoa(i)]
		if p == nil {
			t.Fatalf("committed profile %d missing (last committed %d, %d stored)", i, last, len(ps))
		}
		if want := learnedWebProfile(i); !reflect.DeepEqual(p.Behaviors(), want.Behaviors()) {
			t.Fatalf("profile %d differs from what was written", i)
		}
	}
	if hot := byRev["rev-1"]; hot == nil || hot.Events < uint64(last) {
		t.Fatalf("hot profile lost committed updates: %+v (last %d)", hot, last)
	}
}

// FuzzParseAndAccept feeds `vigil baseline accept` arguments: any string
// either fails to parse with a clear error or folds into a profile, which
// then holds it and still encodes and decodes.
func FuzzParseAndAccept(f *testing.F) {
	for _, s := range []string{"exec:/usr/bin/curl", "connect:10.0.0.0/8:443", "connect:[::1]:80",
		"listen:udp/53", "read:/proc/{n}/status", "write:/var/cache/**", "priv:ptrace", "rate:exec", "listen:tcp/99999", "connect:x", "connect:api.payments.example:443", "connect:Bad Name:1"} {
		f.Add(s, "shop/Deployment/web:nginx@r1")
	}
	f.Fuzz(func(t *testing.T, bs, ks string) {
		if _, err := ParseKey(ks); err != nil {
			return
		}
		b, err := ParseBehavior(bs)
		if err != nil {
			if !errors.Is(err, ErrBadBehavior) {
				t.Fatalf("ParseBehavior(%q) error does not wrap ErrBadBehavior: %v", bs, err)
			}
			return
		}
		p := learnedWebProfile(0)
		grew, err := p.Add(b)
		if err != nil {
			return
		}
		if grew && !p.Has(b) {
			t.Fatalf("Add(%s) grew the profile but Has is false", b)
		}
		if _, err := DecodeProfile(p.Encode()); err != nil {
			t.Fatalf("profile after Add(%s) does not decode: %v", b, err)
		}
	})
}
