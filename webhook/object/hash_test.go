package object

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestPodTemplateHashMatchesController checks PodTemplateHash against values
// computed by k8s.io/kubernetes v1.37.2 pkg/controller.ComputeHash itself
// (a throwaway program importing it, fed these same files), with no
// collision count and with collisionCount=2.
func TestPodTemplateHashMatchesController(t *testing.T) {
	for _, tc := range []struct {
		file         string
		plain, coll2 string
	}{
		{"deployment-template.json", "67757fd977", "54f75d46b7"},
		{"rich-template.json", "79476b589b", "6ccff5645d"},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var tmpl corev1.PodTemplateSpec
		if err := json.Unmarshal(b, &tmpl); err != nil {
			t.Fatal(err)
		}
		cc := int32(2)
		if got := PodTemplateHash(&tmpl, nil); got != tc.plain {
			t.Errorf("%s: hash %s, kube-controller-manager %s", tc.file, got, tc.plain)
		}
		if got := PodTemplateHash(&tmpl, &cc); got != tc.coll2 {
			t.Errorf("%s: hash with collisionCount 2 %s, kube-controller-manager %s", tc.file, got, tc.coll2)
		}
	}
}

// The Deployment path (goccy/go-json decoding, then hashing) lands on the
// controller's value too.
func TestDeploymentRevisionIsControllerHash(t *testing.T) {
	if got := decodeYAML(t, "Deployment", deployment).Revision; got != "67757fd977" {
		t.Fatalf("revision %s, kube-controller-manager 67757fd977", got)
	}
}
