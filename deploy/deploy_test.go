package deploy

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/config"
	"github.com/vigilsec/vigil/internal/privtest"
)

// helmPath is where scripts/helm-bin.sh caches the helm CLI.
func helmPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_HELM"); p != "" {
		return p
	}
	cache := os.Getenv("CACHE")
	if cache == "" {
		cache = "/var/cache/vigil"
	}
	p := filepath.Join(cache, "helm", "v4.3.2", "helm")
	privtest.RequireTool(t, p)
	return p
}

type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

func get(v any, path ...string) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func render(t *testing.T, args ...string) []object {
	t.Helper()
	cmd := exec.Command(helmPath(t), append([]string{"template", "vigil", "helm/vigil", "-n", "vigil-system"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var objs []object
	for _, doc := range strings.Split(string(out), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

func byKind(objs []object) map[string][]object {
	m := map[string][]object{}
	for _, o := range objs {
		m[o.kind()] = append(m[o.kind()], o)
	}
	return m
}

func TestChartRendersEverythingAnOperatorNeeds(t *testing.T) {
	objs := byKind(render(t))
	for _, k := range []string{"DaemonSet", "Deployment", "Service", "ValidatingWebhookConfiguration",
		"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Secret"} {
		if len(objs[k]) == 0 {
			t.Errorf("chart renders no %s", k)
		}
	}
	ds := objs["DaemonSet"][0]
	if get(ds, "spec", "template", "spec", "hostPID") != true {
		t.Error("guard DaemonSet is not hostPID")
	}
	tol, _ := get(ds, "spec", "template", "spec", "tolerations").([]any)
	if len(tol) == 0 || get(tol[0], "operator") != "Exists" {
		t.Errorf("guard does not tolerate every taint: %v", tol)
	}
	c := get(ds, "spec", "template", "spec", "containers").([]any)[0]
	caps := get(c, "securityContext", "capabilities", "add").([]any)
	for _, want := range []string{"BPF", "PERFMON", "SYS_ADMIN", "KILL"} {
		found := false
		for _, c := range caps {
			found = found || c == want
		}
		if !found {
			t.Errorf("guard lacks capability %s", want)
		}
	}
	if get(c, "securityContext", "privileged") == true {
		t.Error("guard runs privileged; capabilities are enough")
	}
	mounts := map[string]bool{}
	for _, m := range get(c, "volumeMounts").([]any) {
		mounts[get(m, "mountPath").(string)] = true
	}
	for _, p := range []string{"/sys/fs/bpf", "/sys/fs/cgroup", "/var/lib/vigil", "/etc/vigil/config"} {
		if !mounts[p] {
			t.Errorf("guard does not mount %s", p)
		}
	}

	vwc := objs["ValidatingWebhookConfiguration"][0]
	wh := get(vwc, "webhooks").([]any)[0]
	if get(wh, "sideEffects") != "NoneOnDryRun" || get(wh, "failurePolicy") != "Ignore" {
		t.Errorf("webhook sideEffects/failurePolicy: %v %v", get(wh, "sideEffects"), get(wh, "failurePolicy"))
	}
	resources := map[string]bool{}
	for _, r := range get(wh, "rules").([]any) {
		for _, res := range get(r, "resources").([]any) {
			resources[res.(string)] = true
		}
	}
	for _, r := range []string{"pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"} {
		if !resources[r] {
			t.Errorf("webhook does not review %s", r)
		}
	}

	// Without cert-manager the chart generates TLS; the caBundle must
	// verify the serving certificate for the Service's DNS name.
	var secret object
	for _, s := range objs["Secret"] {
		if strings.HasSuffix(s.name(), "-webhook-tls") {
			secret = s
		}
	}
	if secret == nil {
		t.Fatal("no webhook TLS secret")
	}
	caPEM := mustB64(t, get(wh, "clientConfig", "caBundle").(string))
	if secretCA := mustB64(t, get(secret, "data", "ca.crt").(string)); !bytes.Equal(caPEM, secretCA) {
		t.Fatal("caBundle and the secret's ca.crt differ: the CA was generated twice")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle is not PEM")
	}
	blk, _ := pem.Decode(mustB64(t, get(secret, "data", "tls.crt").(string)))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "vigil-webhook.vigil-system.svc"}); err != nil {
		t.Fatalf("serving cert does not verify against caBundle: %v", err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		values, env, failurePolicy string
	}{
		{"helm/vigil/values-staging.yaml", "staging", "Ignore"},
		{"helm/vigil/values-production.yaml", "production", "Fail"},
	} {
		objs := byKind(render(t, "-f", tc.values))
		var cfg string
		for _, cm := range objs["ConfigMap"] {
			if strings.HasSuffix(cm.name(), "-guard") {
				cfg = get(cm, "data", "config.yaml").(string)
			}
		}
		var parsed map[string]any
		if err := yaml.Unmarshal([]byte(cfg), &parsed); err != nil {
			t.Fatalf("%s: guard config does not parse: %v\n%s", tc.values, err, cfg)
		}
		if parsed["environment"] != tc.env {
			t.Errorf("%s: environment %v", tc.values, parsed["environment"])
		}
		wh := get(objs["ValidatingWebhookConfiguration"][0], "webhooks").([]any)[0]
		if get(wh, "failurePolicy") != tc.failurePolicy {
			t.Errorf("%s: failurePolicy %v", tc.values, get(wh, "failurePolicy"))
		}
	}
}

func TestCertManagerPath(t *testing.T) {
	objs := byKind(render(t, "--api-versions", "cert-manager.io/v1"))
	if len(objs["Certificate"]) != 1 || len(objs["Issuer"]) != 1 {
		t.Fatalf("cert-manager present but no Issuer/Certificate: %v", len(objs["Certificate"]))
	}
	vwc := objs["ValidatingWebhookConfiguration"][0]
	if get(vwc, "metadata", "annotations", "cert-manager.io/inject-ca-from") == nil {
		t.Fatal("no CA injection annotation")
	}
	for _, s := range objs["Secret"] {
		if strings.HasSuffix(s.name(), "-webhook-tls") {
			t.Fatal("chart generated a TLS secret although cert-manager manages it")
		}
	}
}

func TestKustomizeBaseIsCurrent(t *testing.T) {
	// The committed base must be the chart rendered with default values,
	// minus the generated TLS material (which differs on every render).
	want, err := os.ReadFile("kustomize/base/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../scripts/manifests.sh", "--stdout")
	cmd.Env = append(os.Environ(), "VIGIL_HELM="+helmPath(t))
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("manifests.sh: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("deploy/kustomize/base/vigil.yaml is stale: run make manifests")
	}
}

// TestRenderedCommandsAndConfigAreValid: every argument the chart passes
// to `vigil` is a flag the binary accepts, and the guard's rendered config
// file passes the guard's own validation. Chart and binary cannot drift.
func TestRenderedCommandsAndConfigAreValid(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/vigil").CombinedOutput(); err != nil {
		t.Fatalf("build vigil: %v\n%s", err, out)
	}
	for _, values := range []string{"helm/vigil/values.yaml", "helm/vigil/values-production.yaml"} {
		objs := byKind(render(t, "-f", values, "--set", "webhook.pss.namespaces.prod.mode=enforce"))
		for _, kind := range []string{"DaemonSet", "Deployment"} {
			c := get(objs[kind][0], "spec", "template", "spec", "containers").([]any)[0]
			var args []string
			for _, a := range get(c, "args").([]any) {
				args = append(args, a.(string))
			}
			// Parse the real flags (with --help, nothing runs).
			if out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput(); err != nil {
				t.Errorf("%s %s: vigil rejects its arguments %v: %v\n%s", values, kind, args, err, out)
			}
		}
		for _, cm := range objs["ConfigMap"] {
			if !strings.HasSuffix(cm.name(), "-guard") {
				continue
			}
			cfg := config.Default()
			if err := config.Parse([]byte(get(cm, "data", "config.yaml").(string)), &cfg); err != nil {
				t.Errorf("%s: rendered guard config is invalid: %v", values, err)
			}
		}
	}
}
