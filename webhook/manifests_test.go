package webhook

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	admregv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

// TestDeployManifests keeps deploy/webhook honest: every document parses,
// the webhook registration covers every kind the server understands with
// sideEffects NoneOnDryRun, and the webhook's own Deployment meets the
// restricted standard it enforces.
func TestDeployManifests(t *testing.T) {
	dir := filepath.Join("..", "deploy", "webhook")
	b, err := os.ReadFile(filepath.Join(dir, "webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		kinds[meta.Kind] = true
		switch meta.Kind {
		case "Deployment":
			tm, err := object.Decode("Deployment", js)
			if err != nil {
				t.Fatal(err)
			}
			var a event.Admission
			tm.Flatten(&a)
			if v := pss.Check(pss.Restricted, &a.Pod); len(v) != 0 {
				t.Errorf("webhook Deployment violates restricted: %v", v)
			}
		case "ValidatingWebhookConfiguration":
			var vwc admregv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &vwc); err != nil {
				t.Fatal(err)
			}
			resources := map[string]bool{}
			for _, w := range vwc.Webhooks {
				if w.SideEffects == nil || *w.SideEffects != admregv1.SideEffectClassNoneOnDryRun {
					t.Errorf("%s: sideEffects must be NoneOnDryRun", w.Name)
				}
				if w.FailurePolicy == nil || w.ClientConfig.Service == nil || *w.ClientConfig.Service.Path != "/validate" {
					t.Errorf("%s: failurePolicy or service path missing", w.Name)
				}
				for _, r := range w.Rules {
					for _, res := range r.Resources {
						resources[res] = true
					}
				}
			}
			for _, res := range []string{"pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs", "namespaces"} {
				if !resources[res] {
					t.Errorf("webhook configuration does not cover %s", res)
				}
			}
		}
	}
	for _, k := range []string{"Namespace", "Deployment", "Service", "ValidatingWebhookConfiguration"} {
		if !kinds[k] {
			t.Errorf("webhook.yaml lacks a %s", k)
		}
	}
	crd, err := os.ReadFile(filepath.Join(dir, "crd-workloadprofile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(crd, &c); err != nil || c["kind"] != "CustomResourceDefinition" {
		t.Fatalf("crd: %v %v", err, c["kind"])
	}
}
