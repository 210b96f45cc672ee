package crd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/profile"
)

// schemaNode is the part of an OpenAPI v3 schema the CRD uses.
type schemaNode struct {
	Type       string                 `json:"type"`
	Properties map[string]*schemaNode `json:"properties"`
	Items      *schemaNode            `json:"items"`
	Required   []string               `json:"required"`
	Enum       []any                  `json:"enum"`
	Pattern    string                 `json:"pattern"`
	Minimum    *float64               `json:"minimum"`
	Maximum    *float64               `json:"maximum"`
	ListType   string                 `json:"x-kubernetes-list-type"`
	MapKeys    []string               `json:"x-kubernetes-list-map-keys"`
}

type crdDoc struct {
	Spec struct {
		Group    string `json:"group"`
		Names    struct{ Kind, Plural string }
		Versions []crdVersion `json:"versions"`
	} `json:"spec"`
}

type crdVersion struct {
	Name         string `json:"name"`
	Subresources struct {
		Status *struct{} `json:"status"`
	} `json:"subresources"`
	Schema struct {
		OpenAPIV3Schema *schemaNode `json:"openAPIV3Schema"`
	} `json:"schema"`
}

func loadCRD(t *testing.T) crdDoc {
	t.Helper()
	path := filepath.Join("..", "..", "deploy", "webhook", "crd-workloadprofile.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	helm, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "vigil", "crds", "workloadprofile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, helm) {
		t.Errorf("deploy/helm/vigil/crds/workloadprofile.yaml differs from %s: copy it", path)
	}
	var d crdDoc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSchemaAcceptsWhatWeWrite walks every field the webhook and the
// guards write against the CRD's structural schema: a field the schema
// lacks would be silently pruned by the API server, a type or enum
// mismatch would make every write fail.
func TestSchemaAcceptsWhatWeWrite(t *testing.T) {
	d := loadCRD(t)
	if d.Spec.Group != Group || d.Spec.Names.Kind != Kind || d.Spec.Names.Plural != Resource {
		t.Fatalf("CRD names %s %+v", d.Spec.Group, d.Spec.Names)
	}
	i := slices.IndexFunc(d.Spec.Versions, func(v crdVersion) bool { return v.Name == Version })
	if i < 0 {
		t.Fatalf("no version %s", Version)
	}
	v := d.Spec.Versions[i]
	if v.Subresources.Status == nil {
		t.Error("no status subresource: guards' status writes would bump the generation and race the webhook")
	}
	root := v.Schema.OpenAPIV3Schema

	wk, rev, ps := richProfiles(t)
	uid, gid := int64(0), int64(1<<40)
	ps[0].Privilege.RunAsUser, ps[0].Privilege.RunAsGroup = &uid, &gid
	no := false
	ps[0].Privilege.AllowPrivilegeEscalation = &no
	ps[0].Egress = append(ps[0].Egress, profile.Egress{CIDR: "10.0.0.0/8", Port: 443, From: "annotation"})
	now := time.Now()
	o := FromProfiles(wk, rev, ps, &profile.ReleaseWindow{PrevRevision: "p", Opened: now, Closes: now.Add(time.Hour), User: "u",
		Changed: []string{"image", "command", "args", "env", "ports", "securityContext", "volumes"}})
	o.Status = &Status{Nodes: []NodeStatus{{Node: "n1", Updated: now, Containers: []ContainerStatus{
		{Name: "web", State: "locked", Behaviors: 3, Learned: 2, Parent: "p", FirstSeen: now, LastNew: now, ReadyAt: now},
		{Name: "migrate", State: "learning", FirstSeen: now},
		{Name: "x", State: "ready", FirstSeen: now},
	}}}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var val any
	if err := json.Unmarshal(b, &val); err != nil {
		t.Fatal(err)
	}
	var fields int
	for _, e := range check(root, val, "", &fields) {
		t.Error(e)
	}
	if fields < 60 {
		t.Errorf("walked only %d fields: the fixture lost its richness", fields)
	}
}

func check(s *schemaNode, v any, path string, n *int) []string {
	*n++
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if path == ".metadata" {
		return nil // ObjectMeta: the API server's own schema
	}
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, v) {
		bad("%v not in enum %v", v, s.Enum)
	}
	switch x := v.(type) {
	case map[string]any:
		if s.Type != "object" {
			bad("object where the schema says %s", s.Type)
			return errs
		}
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				bad("required %s missing", r)
			}
		}
		for k, fv := range x {
			ps, ok := s.Properties[k]
			if !ok {
				bad("field %s not in the schema (the API server would prune it)", k)
				continue
			}
			errs = append(errs, check(ps, fv, path+"."+k, n)...)
		}
	case []any:
		if s.Type != "array" || s.Items == nil {
			bad("array where the schema says %s", s.Type)
			return errs
		}
		for i, e := range x {
			errs = append(errs, check(s.Items, e, fmt.Sprintf("%s[%d]", path, i), n)...)
		}
	case string:
		if s.Type != "string" {
			bad("string where the schema says %s", s.Type)
		}
		if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(x) {
			bad("%q does not match %s", x, s.Pattern)
		}
	case float64:
		if s.Type != "integer" && s.Type != "number" {
			bad("number where the schema says %s", s.Type)
		}
		if (s.Minimum != nil && x < *s.Minimum) || (s.Maximum != nil && x > *s.Maximum) {
			bad("%v out of range", x)
		}
	case bool:
		if s.Type != "boolean" {
			bad("boolean where the schema says %s", s.Type)
		}
	}
	return errs
}
