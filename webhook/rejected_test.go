package webhook

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A validating webhook runs before the API server knows whether a CREATE
// will be stored: creating something that already exists is rejected
// (AlreadyExists) only afterwards. These tests pin that such doomed
// requests cannot weaken a namespace's mode or forge a rollout.

func TestNamespaceCreateCannotDowngrade(t *testing.T) {
	ts := startServer(t, nil) // default mode: audit
	pod := fmt.Sprintf(privilegedPod, "prod")
	ts.admit(t, req{kind: "Namespace", name: "prod", object: `{"metadata":{"name":"prod","labels":{"vigil.dev/mode":"enforce","vigil.dev/level":"baseline"}}}`}.json())
	if ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: pod}.json()).Response.Allowed {
		t.Fatal("labelled enforce namespace admitted a privileged pod")
	}
	// `kubectl create ns prod` against the existing namespace: rejected by
	// the API server after this review, so it must change nothing.
	out := ts.admit(t, req{kind: "Namespace", name: "prod", object: `{"metadata":{"name":"prod"}}`}.json())
	if len(out.Response.Warnings) == 0 || !strings.Contains(out.Response.Warnings[0], "ignored") {
		t.Fatalf("create of a known namespace: %+v", out.Response)
	}
	if ts.admit(t, req{kind: "Pod", ns: "prod", name: "root", object: pod}.json()).Response.Allowed {
		t.Fatal("a rejected namespace create downgraded enforce")
	}
	// A create may not set a mode weaker than the default either ...
	ts.admit(t, req{kind: "Namespace", name: "dev", object: `{"metadata":{"name":"dev","labels":{"vigil.dev/mode":"off"}}}`}.json())
	devPod := fmt.Sprintf(privilegedPod, "dev")
	if out := ts.admit(t, req{kind: "Pod", ns: "dev", name: "root", object: devPod}.json()); len(out.Response.Warnings) == 0 {
		t.Fatal("create with mode off switched checks off")
	}
	// ... but an update, which needs permission to modify the namespace, may.
	ts.admit(t, req{kind: "Namespace", name: "dev", op: "UPDATE", object: `{"metadata":{"name":"dev","labels":{"vigil.dev/mode":"off"}}}`}.json())
	if out := ts.admit(t, req{kind: "Pod", ns: "dev", name: "root", object: devPod}.json()); len(out.Response.Warnings) != 0 || !out.Response.Allowed {
		t.Fatalf("update to mode off not applied: %+v", out.Response)
	}
}

func TestRejectedWorkloadCreateRecordsNothing(t *testing.T) {
	ts := startServer(t, nil)
	v1 := strings.Replace(restrictedDeployment, "IMAGE", "1.0", 1)
	v2 := strings.Replace(restrictedDeployment, "IMAGE", "2.0", 1)
	windows := func() int {
		ws, err := ts.store.Windows(0, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(ws)
	}
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: v1}.json())
	if windows() != 1 {
		t.Fatalf("first create opened %d windows", windows())
	}
	// A second CREATE of the live Deployment fails with AlreadyExists.
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: v2}.json())
	if windows() != 1 {
		t.Fatalf("a doomed create opened a release window (%d windows)", windows())
	}
	// Deleting a pod of it does not make the Deployment re-creatable ...
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-abc","namespace":"prod","labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`
	ts.admit(t, req{kind: "Pod", ns: "prod", name: "web-abc", op: "DELETE", oldObject: pod}.json())
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: v2}.json())
	if windows() != 1 {
		t.Fatalf("create after an unrelated delete opened a window (%d)", windows())
	}
	// ... deleting the Deployment itself does: the next create is a rollout.
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", op: "DELETE", oldObject: v1}.json())
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: v2}.json())
	if windows() != 2 {
		t.Fatalf("re-create after delete: %d windows, want 2", windows())
	}
	// Updates are rollouts as before.
	v3 := strings.Replace(restrictedDeployment, "IMAGE", "3.0", 1)
	ts.admit(t, req{kind: "Deployment", group: "apps", ns: "prod", name: "web", op: "UPDATE", object: v3, oldObject: v2}.json())
	if windows() != 3 {
		t.Fatalf("update: %d windows, want 3", windows())
	}
}
