package crd

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/guard/profile"
	"github.com/vigilsec/vigil/webhook/object"
)

// richProfiles derives real expected behavior from the object package's
// richest fixture (init container, probes, hooks, ports, egress, volumes,
// securityContext) wrapped in a Deployment.
func richProfiles(t testing.TB) (profile.WorkloadKey, string, []profile.Expected) {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join("..", "object", "testdata", "rich-template.json"))
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"template":` + string(tmpl) + `}}`
	tm, err := object.Decode("Deployment", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 3, 0, 0, 123456789, time.UTC)
	ps := tm.Expected("shop", now)
	if len(ps) < 2 {
		t.Fatalf("fixture yields %d containers, want init + main", len(ps))
	}
	return profile.WorkloadKey{Namespace: "shop", Workload: tm.Workload}, tm.Revision, ps
}

// TestRoundTrip maps real profiles and a window to the object, through
// the JSON the API server stores and the unstructured form an informer
// hands out, and back: nothing is lost or altered.
func TestRoundTrip(t *testing.T) {
	wk, rev, ps := richProfiles(t)
	uid := int64(0)
	ps[0].Privilege.RunAsUser = &uid
	big := int64(1<<62 + 1) // beyond float64's exact integers
	ps[1].Privilege.RunAsGroup = &big
	opened := time.Date(2026, 12, 6, 2, 59, 59, 5e8, time.UTC)
	w := &profile.ReleaseWindow{Workload: wk, Revision: rev, PrevRevision: "abc", Opened: opened,
		Closes: opened.Add(30 * time.Minute), User: "alice", Changed: []string{"image"}}
	o := FromProfiles(wk, rev, ps, w)
	if o.Metadata.Name != "deployment-web-"+rev || o.Metadata.Namespace != "shop" {
		t.Fatalf("name %s/%s", o.Metadata.Namespace, o.Metadata.Name)
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	b2, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b2)
	if err != nil {
		t.Fatal(err)
	}
	gotPs, gotW := back.Profiles()
	if !reflect.DeepEqual(gotPs, ps) {
		a, _ := json.MarshalIndent(ps, "", " ")
		g, _ := json.MarshalIndent(gotPs, "", " ")
		t.Errorf("profiles differ after the round trip:\nwant %s\ngot  %s", a, g)
	}
	if !reflect.DeepEqual(gotW, w) {
		t.Errorf("window: got %+v, want %+v", gotW, w)
	}
	if back.Metadata.Labels[LabelRevision] != rev || back.Metadata.Labels[LabelWorkloadKind] != "Deployment" {
		t.Errorf("labels %v", back.Metadata.Labels)
	}
}

func TestWindowOnly(t *testing.T) {
	wk := profile.WorkloadKey{Namespace: "ns", Workload: "Deployment/web"}
	w := &profile.ReleaseWindow{Workload: wk, Revision: "r1", Opened: time.Unix(100, 0).UTC(), Closes: time.Unix(200, 0).UTC()}
	b, _ := json.Marshal(FromProfiles(wk, "r1", nil, w))
	// A window-only apply must not mention containers, or the window's
	// field manager would claim (and a later apply delete) them.
	if strings.Contains(string(b), "containers") {
		t.Fatalf("window-only object mentions containers: %s", b)
	}
}

func TestName(t *testing.T) {
	long := strings.Repeat("a", 250)
	cases := []struct{ workload, rev, want string }{
		{"Deployment/web", "5d4f8b7c9", "deployment-web-5d4f8b7c9"},
		{"StatefulSet/db.main", "db.main-7c9", "statefulset-db.main-db.main-7c9"},
		{"Pod/x", "sha256:0a1b", ""},    // ':' is not allowed: hashed
		{"Deployment/" + long, "r", ""}, // too long: truncated, hashed
		{"Deployment/web", "Upper", ""}, // upper case: hashed
		{"Pod/-", "-", ""},              // nothing left: hashed
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := Name(c.workload, c.rev)
		if errs := validation.IsDNS1123Subdomain(got); len(errs) != 0 {
			t.Errorf("Name(%q, %q) = %q: %v", c.workload, c.rev, got, errs)
		}
		if c.want != "" && got != c.want {
			t.Errorf("Name(%q, %q) = %q, want %q", c.workload, c.rev, got, c.want)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("%q and %q share the name %q", prev, c.workload+"@"+c.rev, got)
		}
		seen[got] = c.workload + "@" + c.rev
	}
	// Cleaning must not merge distinct revisions.
	if Name("Deployment/web", "Upper") == Name("Deployment/web", "upper") {
		t.Error("revisions differing in case share an object")
	}
}

func TestDecodeRejects(t *testing.T) {
	good := `{"apiVersion":"vigil.dev/v1alpha1","kind":"WorkloadProfile","metadata":{"name":"n","namespace":"ns"},` +
		`"spec":{"workload":"Deployment/web","revision":"r","containers":[{"name":"a"}]}}`
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("good object: %v", err)
	}
	for name, bad := range map[string]string{
		"not json":       `{`,
		"other kind":     strings.Replace(good, `"WorkloadProfile"`, `"Pod"`, 1),
		"other version":  strings.Replace(good, "v1alpha1", "v2", 1),
		"no namespace":   strings.Replace(good, `"namespace":"ns"`, `"namespace":""`, 1),
		"bare workload":  strings.Replace(good, "Deployment/web", "web", 1),
		"no revision":    strings.Replace(good, `"revision":"r"`, `"revision":""`, 1),
		"repeated name":  strings.Replace(good, `[{"name":"a"}]`, `[{"name":"a"},{"name":"a"}]`, 1),
		"empty name":     strings.Replace(good, `[{"name":"a"}]`, `[{"name":""}]`, 1),
		"port too large": strings.Replace(good, `{"name":"a"}`, `{"name":"a","listenPorts":[{"port":70000}]}`, 1),
	} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// FuzzDecode feeds arbitrary objects to the guard's decoder: anyone who
// may create WorkloadProfiles reaches it. It must not panic, and what it
// accepts must map to profiles keyed by the object.
func FuzzDecode(f *testing.F) {
	wk, rev, ps := richProfiles(f)
	b, _ := json.Marshal(FromProfiles(wk, rev, ps, &profile.ReleaseWindow{Opened: time.Unix(1, 0), Closes: time.Unix(2, 0)}))
	f.Add(b)
	f.Add([]byte(`{"apiVersion":"vigil.dev/v1alpha1","kind":"WorkloadProfile","metadata":{"name":"n","namespace":"ns"},"spec":{"workload":"Pod/p","revision":"r"}}`))
	f.Add([]byte(`{"apiVersion":"vigil.dev/v1alpha1","kind":"WorkloadProfile","spec":{"containers":[null,{"privilege":{"runAsUser":-1}}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		got, _ := o.Profiles()
		if len(got) != len(o.Spec.Containers) {
			t.Fatalf("%d profiles from %d containers", len(got), len(o.Spec.Containers))
		}
		for _, p := range got {
			if p.Key.Namespace != o.Metadata.Namespace || p.Key.Workload != o.Spec.Workload || p.Key.Revision != o.Spec.Revision || p.Key.Container == "" {
				t.Fatalf("key %+v of object %+v", p.Key, o.Metadata)
			}
		}
	})
}
