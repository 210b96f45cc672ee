package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func FuzzDecodeReview(f *testing.F) {
	f.Add(req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json())
	f.Add(req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: strings.Replace(restrictedDeployment, "IMAGE", "1", 1)}.json())
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":null}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeReview(body)
		if err != nil {
			return
		}
		if r == nil || r.UID == "" {
			t.Fatal("accepted a review without a request uid")
		}
	})
}

// FuzzReview drives the whole admission path (decode, flatten, checks,
// store) with arbitrary bodies: bad input is a 400, never a 5xx or a crash.
func FuzzReview(f *testing.F) {
	f.Add(req{kind: "Pod", ns: "prod", name: "root", object: fmt.Sprintf(privilegedPod, "prod")}.json())
	f.Add(req{kind: "Pod", ns: "staging", name: "root", object: fmt.Sprintf(privilegedPod, "staging")}.json())
	f.Add(req{kind: "Deployment", group: "apps", ns: "prod", name: "web", object: strings.Replace(restrictedDeployment, "IMAGE", "1", 1)}.json())
	f.Add(req{kind: "CronJob", ns: "x", name: "c", object: `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"volumes":[{"name":"h","hostPath":{"path":"/"}}]}}}}}}`}.json())
	f.Add(req{kind: "Namespace", name: "n", object: `{"metadata":{"name":"n","labels":{"vigil.dev/mode":"enforce"}}}`}.json())
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"kind":"Pod"},"object":{"spec":{"containers":[{"securityContext":{"capabilities":{"add":[""]}}}]}}}}`))
	ts := startServer(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, resp, _, _, _ := ts.Review(body)
		switch code {
		case 200:
			var out reviewOut
			if err := json.Unmarshal(resp, &out); err != nil || out.Response.UID == "" {
				t.Fatalf("200 with unusable body %s: %v", resp, err)
			}
		case 400:
		default:
			t.Fatalf("status %d for %q: %s", code, body, resp)
		}
	})
}
