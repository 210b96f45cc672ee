package webhook

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/internal/corpora"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

// corpusPods returns the PSA fixtures' pods, flattened as the webhook does.
func corpusPods(tb testing.TB) []event.AdmissionPod {
	tb.Helper()
	dir, err := corpora.Dir("psa")
	if err != nil {
		tb.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "INDEX.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var fixtures []psaFixture
	if err := json.Unmarshal(idx, &fixtures); err != nil {
		tb.Fatal(err)
	}
	var out []event.AdmissionPod
	for _, fx := range fixtures {
		y, err := os.ReadFile(filepath.Join(dir, fx.File))
		if err != nil {
			tb.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl, err := object.Decode("Pod", js)
		if err != nil {
			tb.Fatal(err)
		}
		var a event.Admission
		tmpl.Flatten(&a)
		out = append(out, a.Pod)
	}
	return out
}

// mutationStrings are the values mutations draw from: the ones the checks
// test for, plus what strconv.Quote must escape (quotes, backslashes, control
// bytes, non-printable and non-ASCII runes, invalid UTF-8), which the C
// pack's quoting must render byte for byte like Go's.
var mutationStrings = []string{
	"", "a", "sh", "app", "RuntimeDefault", "Localhost", "Unconfined", "Default", "Unmasked",
	"windows", "linux", "hostPath", "configMap", "emptyDir", "unknown", "gcePersistentDisk", "nfs",
	"container_t", "container_init_t", "spc_t", "ALL", "NET_BIND_SERVICE", "SYS_ADMIN", "CHOWN", "NET_RAW",
	"kernel.shm_rmid_forced", "kernel.msgmax", "net.ipv4.tcp_rmem", "8080/TCP", "9090", "53/UDP",
	"localhost/prof", "runtime/default", "unconfined", "a=b", `q"uote`, `back\slash`, "tab\there",
	"nl\n", "\x00nul", "\x07bell", "\x7f", "é", "日本", "\u00a0", "\u00ad", "\u200b", "\u2028", "\ufeff",
	"\U0001F600", "\ue000", "\xff", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf",
}

func pick(r *rand.Rand) string { return mutationStrings[r.IntN(len(mutationStrings))] }

func optBool(r *rand.Rand) *bool {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return ptr(true)
	}
	return ptr(false)
}

func optInt(r *rand.Rand) *int64 {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return ptr(int64(0))
	}
	return ptr(int64(1000))
}

func optStr(r *rand.Rand) *string {
	if r.IntN(3) == 0 {
		return nil
	}
	return ptr(pick(r))
}

func optSELinux(r *rand.Rand) *event.SELinux {
	if r.IntN(3) == 0 {
		return nil
	}
	s := &event.SELinux{Type: pick(r)}
	if r.IntN(3) == 0 {
		s.User = pick(r)
	}
	if r.IntN(3) == 0 {
		s.Role = pick(r)
	}
	return s
}

// mutate applies n random changes to a copy of p's fields that the checks
// read. Slices are copied before they are changed, so p's backing arrays
// (shared with the corpus) stay intact.
func mutate(r *rand.Rand, p event.AdmissionPod, n int) event.AdmissionPod {
	p.Containers = append([]event.AdmissionContainer(nil), p.Containers...)
	p.Volumes = append([]event.AdmissionVolume(nil), p.Volumes...)
	p.Sysctls = append([]string(nil), p.Sysctls...)
	p.Annotations = append([]string(nil), p.Annotations...)
	app := func(l []string, s string) []string { return append(append([]string(nil), l...), s) }
	for range n {
		if len(p.Containers) == 0 || r.IntN(16) == 0 {
			p.Containers = append(p.Containers, event.AdmissionContainer{Name: pick(r), Kind: event.ContainerRegular})
		}
		c := &p.Containers[r.IntN(len(p.Containers))]
		switch r.IntN(28) {
		case 0:
			p.HostNetwork = !p.HostNetwork
		case 1:
			p.HostPID = !p.HostPID
		case 2:
			p.HostIPC = !p.HostIPC
		case 3:
			p.HostUsers = optBool(r)
		case 4:
			p.OS = pick(r)
		case 5:
			p.RunAsNonRoot = optBool(r)
		case 6:
			p.RunAsUser = optInt(r)
		case 7:
			p.Seccomp = optStr(r)
		case 8:
			p.AppArmor = optStr(r)
		case 9:
			p.SELinux = optSELinux(r)
		case 10:
			p.Sysctls = append(p.Sysctls, pick(r))
		case 11:
			p.WindowsHostProcess = optBool(r)
		case 12:
			p.Annotations = append(p.Annotations, "container.apparmor.security.beta.kubernetes.io/"+pick(r)+"="+pick(r))
		case 13:
			p.Volumes = append(p.Volumes, event.AdmissionVolume{Name: pick(r), Type: pick(r)})
		case 14:
			c.Name = pick(r)
		case 15:
			c.Privileged = optBool(r)
		case 16:
			c.AllowPrivilegeEscalation = optBool(r)
		case 17:
			c.CapsAdd = app(c.CapsAdd, pick(r))
		case 18:
			c.CapsDrop = app(c.CapsDrop, pick(r))
		case 19:
			c.RunAsNonRoot = optBool(r)
		case 20:
			c.RunAsUser = optInt(r)
		case 21:
			c.ProcMount = optStr(r)
		case 22:
			c.Seccomp = optStr(r)
		case 23:
			c.AppArmor = optStr(r)
		case 24:
			c.SELinux = optSELinux(r)
		case 25:
			c.WindowsHostProcess = optBool(r)
		case 26:
			c.HostPorts = app(c.HostPorts, pick(r))
		case 27:
			c.ProbeHosts = app(c.ProbeHosts, pick(r))
		}
	}
	return p
}

// assertPackMatchesNative evaluates p with the pack and compares each
// level's violations with the native checks' as the Go-built pack renders
// them (pss.Message), truncation included.
func assertPackMatchesNative(t *testing.T, w *WasmRules, p *event.AdmissionPod) {
	t.Helper()
	a := event.Admission{Kind: "Pod", Namespace: "fuzz", Operation: "CREATE", Pod: *p}
	wire, err := event.AppendAdmission(nil, &a)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := w.EvaluateAdmission(wire)
	if err != nil {
		t.Fatalf("pack failed: %v", err)
	}
	for _, level := range []pss.Level{pss.Baseline, pss.Restricted} {
		got, native := wasmViolations(rs, level), jsonSafe(pss.Check(level, p))
		// What the webhook reads back from the message the Go-SDK pack
		// (wasm-rules/admission/pss-go) renders from the native violations:
		// the same 1024-byte truncation, and a newline inside a value
		// (never in a valid object) splits a line there, since the message
		// format is line based.
		var want []pss.Violation
		if len(native) > 0 {
			want = levelViolations(RuleResult{Rule: "pod-security-" + level.String(), Message: pss.Message(native, 1024)})
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pod %+v at %s:\npack   %q\nnative %q", p, level, got, want)
		}
	}
}

// jsonSafe replaces each byte that is not valid UTF-8 with U+FFFD, as
// encoding/json does when the webhook sends native violations: the pack
// must emit UTF-8 (the host refuses anything else), so it does the same.
func jsonSafe(vs []pss.Violation) []pss.Violation {
	fix := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteString(s[i : i+n])
			}
			i += n
		}
		return b.String()
	}
	for i := range vs {
		vs[i] = pss.Violation{Check: fix(vs[i].Check), Reason: fix(vs[i].Reason), Detail: fix(vs[i].Detail)}
	}
	return vs
}

// FuzzCPackMatchesNative is the differential test of the shipped (C) pack
// against the native checks (webhook/pss, the oracle): each PSA fixture pod,
// changed by a random script of mutations, must get the same violations, in
// the same words, from both. The seeds (every fixture, several scripts each)
// run under plain `go test`.
func FuzzCPackMatchesNative(f *testing.F) {
	pods := corpusPods(f)
	for i := range pods {
		for s := range 6 {
			f.Add(uint16(i), uint64(i*31+s), uint8(s*3))
		}
	}
	w := sharedPack(f)
	f.Fuzz(func(t *testing.T, fixture uint16, seed uint64, n uint8) {
		r := rand.New(rand.NewPCG(seed, uint64(fixture)))
		p := mutate(r, pods[int(fixture)%len(pods)], int(n%24))
		assertPackMatchesNative(t, w, &p)
	})
}

// TestCPackQuotesLikeGo: names holding every byte and a spread of runes come
// back quoted exactly as strconv.Quote does.
func TestCPackQuotesLikeGo(t *testing.T) {
	w := sharedPack(t)
	var names []string
	for b := range 256 {
		names = append(names, "x"+string([]byte{byte(b)}))
	}
	for _, r := range []rune{0x80, 0x9f, 0xa0, 0xa1, 0xad, 0xe9, 0x370, 0x600, 0x61c, 0x6dd, 0x4e2d, 0x1680, 0x2000,
		0x200b, 0x2028, 0x202f, 0x2060, 0x3000, 0xe000, 0xfdd0, 0xfeff, 0xfff9, 0xfffd, 0x1f600, 0xe0001, 0x10fffd} {
		names = append(names, "r"+string(r))
	}
	// A few containers per pod keeps each message under the 1024-byte cap.
	for len(names) > 0 {
		k := min(8, len(names))
		var p event.AdmissionPod
		for _, n := range names[:k] {
			p.Containers = append(p.Containers, event.AdmissionContainer{Name: n, Kind: event.ContainerRegular, Privileged: ptr(true)})
		}
		names = names[k:]
		assertPackMatchesNative(t, w, &p)
	}
}
