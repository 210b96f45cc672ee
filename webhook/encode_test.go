package webhook

import (
	"encoding/json"
	"testing"
)

// FuzzAppendResponse: the hand-written response encoder writes exactly the
// bytes encoding/json writes for the same response, whatever the strings.
func FuzzAppendResponse(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\ <html> & co`, "ctl\x00\x01\x1f\t\n\r\b\f", "é日本\U0001F600",
		"\u2028\u2029", "\xff\xfe bad \xe2\x82", "vigil: pod \"root\" violates PodSecurity \"restricted:latest\": privileged (container \"sh\")"} {
		f.Add(s, s+"x", true, 403)
	}
	f.Fuzz(func(t *testing.T, a, b string, allowed bool, code int) {
		for _, r := range []response{
			{UID: a, Allowed: allowed},
			{UID: a, Allowed: allowed, Status: &status{Code: code, Message: b, Reason: a}},
			{UID: a, Status: &status{Code: code, Message: b}, Warnings: []string{a, b}, AuditAnnotations: map[string]string{a: b, b: a, "k": ""}},
		} {
			want, err := json.Marshal(reviewResponse{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: r})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendResponse(nil, &r); string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		}
	})
}
