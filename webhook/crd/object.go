// Package crd owns the WorkloadProfile custom resource (vigil.dev/v1alpha1):
// its Go form, the mapping between it and the guard/profile types, object
// naming, and the webhook's asynchronous writer that keeps one object per
// admitted workload revision up to date through server-side apply. Guards
// read the same objects with guard/crdwatch and write their learned-state
// summary into the status subresource.
//
// The spec is written by the webhook only; the status is written by guards
// only, each node owning its own entry of status.nodes (a list map keyed by
// node), so no two writers ever contend for a field.
package crd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vigilsec/vigil/guard/profile"
)

// The resource's coordinates.
const (
	Group      = "vigil.dev"
	Version    = "v1alpha1"
	Kind       = "WorkloadProfile"
	Resource   = "workloadprofiles"
	APIVersion = Group + "/" + Version
)

// GVR is the resource the dynamic client and informers address.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// Labels set on every object, for `kubectl get wlp -l ...`. Values that
// are not valid label values (too long) are left out; the spec always
// carries the exact identity.
const (
	LabelWorkloadKind = "vigil.dev/workload-kind"
	LabelWorkloadName = "vigil.dev/workload-name"
	LabelRevision     = "vigil.dev/revision"
)

// ErrInvalid is returned by Decode for an object that is not a usable
// WorkloadProfile.
var ErrInvalid = errors.New("invalid WorkloadProfile")

// Object is a WorkloadProfile as it travels to and from the API server.
type Object struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Status     *Status  `json:"status,omitempty"`
}

// Metadata is the part of ObjectMeta this package reads or writes.
type Metadata struct {
	Name       string            `json:"name"`
	Namespace  string            `json:"namespace"`
	Labels     map[string]string `json:"labels,omitempty"`
	UID        string            `json:"uid,omitempty"`
	Generation int64             `json:"generation,omitempty"`
}

// Spec is one workload revision's expected behavior, written by the
// webhook.
type Spec struct {
	// Workload is "Kind/name" of the top owner, e.g. "Deployment/web".
	Workload string `json:"workload"`
	// Revision is the pod-template hash, or the image digest where known.
	Revision string `json:"revision"`
	// Containers are the expected behaviors, one per container of the pod
	// template. omitempty: a window-only apply must not claim the field.
	Containers []Container `json:"containers,omitempty"`
	// ReleaseWindow is the window the latest rollout to this revision
	// opened, with its deploy context.
	ReleaseWindow *Window `json:"releaseWindow,omitempty"`
}

// Container is profile.Expected without the key (the object and the
// container name carry it).
type Container struct {
	Name          string            `json:"name"`
	Image         string            `json:"image,omitempty"`
	Executables   []string          `json:"executables,omitempty"`
	Commands      [][]string        `json:"commands,omitempty"`
	ListenPorts   []profile.Port    `json:"listenPorts,omitempty"`
	Egress        []profile.Egress  `json:"egress,omitempty"`
	WritablePaths []string          `json:"writablePaths,omitempty"`
	Privilege     profile.Privilege `json:"privilege"`
	AdmittedAt    time.Time         `json:"admittedAt,omitzero"`
}

// Window is profile.ReleaseWindow without the workload and revision.
type Window struct {
	PrevRevision string    `json:"prevRevision,omitempty"`
	Opened       time.Time `json:"opened"`
	Closes       time.Time `json:"closes"`
	User         string    `json:"user,omitempty"`
	Changed      []string  `json:"changed,omitempty"`
}

// Status is the guards' learned state, one entry per node.
type Status struct {
	Nodes []NodeStatus `json:"nodes,omitempty"`
}

// NodeStatus is one node's view of the revision, written by that node's
// guard.
type NodeStatus struct {
	Node       string            `json:"node"`
	Updated    time.Time         `json:"updated"`
	Containers []ContainerStatus `json:"containers,omitempty"`
}

// ContainerStatus summarizes one container's learned profile on a node.
type ContainerStatus struct {
	Name string `json:"name"`
	// State is learning, ready or locked.
	State string `json:"state"`
	// Behaviors is the number of distinct behaviors in the profile;
	// Learned those added since the profile was created (the revision's
	// diff against its predecessor and its seed).
	Behaviors int    `json:"behaviors"`
	Learned   uint64 `json:"learned"`
	// Parent is the revision the profile inherited from.
	Parent    string    `json:"parent,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastNew   time.Time `json:"lastNew,omitzero"`
	ReadyAt   time.Time `json:"readyAt,omitzero"`
}

// Name is the object name of a workload revision: "<kind>-<name>-<revision>"
// in lower case. Where that is not a valid object name (characters outside
// DNS subdomain rules, or longer than 253), it is cleaned and truncated and
// a hash of the exact identity is appended, so distinct revisions never
// share an object.
func Name(workload, revision string) string {
	kind, name, _ := strings.Cut(workload, "/")
	plain := strings.ToLower(kind) + "-" + name + "-" + revision
	if len(validation.IsDNS1123Subdomain(plain)) == 0 {
		return plain
	}
	sum := sha256.Sum256([]byte(workload + "\x00" + revision))
	suffix := "-" + hex.EncodeToString(sum[:5])
	var b strings.Builder
	for _, c := range strings.ToLower(plain) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	clean := b.String()
	if max := validation.DNS1123SubdomainMaxLength - len(suffix); len(clean) > max {
		clean = clean[:max]
	}
	clean = strings.Trim(clean, "-.")
	if clean == "" {
		return "x" + suffix
	}
	return clean + suffix
}

// labels returns the identity labels that are valid label values.
func labels(workload, revision string) map[string]string {
	kind, name, _ := strings.Cut(workload, "/")
	out := map[string]string{}
	for k, v := range map[string]string{LabelWorkloadKind: kind, LabelWorkloadName: name, LabelRevision: revision} {
		if v != "" && len(validation.IsValidLabelValue(v)) == 0 {
			out[k] = v
		}
	}
	return out
}

// FromProfiles builds the object of one workload revision: its containers'
// expected behavior (may be empty for a window-only update) and the release
// window its rollout opened (may be nil).
func FromProfiles(wk profile.WorkloadKey, revision string, ps []profile.Expected, w *profile.ReleaseWindow) Object {
	o := Object{
		APIVersion: APIVersion, Kind: Kind,
		Metadata: Metadata{Name: Name(wk.Workload, revision), Namespace: wk.Namespace, Labels: labels(wk.Workload, revision)},
		Spec:     Spec{Workload: wk.Workload, Revision: revision},
	}
	for i := range ps {
		p := &ps[i]
		o.Spec.Containers = append(o.Spec.Containers, Container{
			Name: p.Key.Container, Image: p.Image, Executables: p.Executables, Commands: p.Commands,
			ListenPorts: p.ListenPorts, Egress: p.Egress, WritablePaths: p.WritablePaths,
			Privilege: p.Privilege, AdmittedAt: p.AdmittedAt.UTC(),
		})
	}
	if w != nil {
		o.Spec.ReleaseWindow = &Window{PrevRevision: w.PrevRevision, Opened: w.Opened.UTC(), Closes: w.Closes.UTC(), User: w.User, Changed: w.Changed}
	}
	return o
}

// Profiles maps the object back to the guard's types: one Expected per
// container, and the release window if the object carries one.
func (o *Object) Profiles() ([]profile.Expected, *profile.ReleaseWindow) {
	wk := profile.WorkloadKey{Namespace: o.Metadata.Namespace, Workload: o.Spec.Workload}
	out := make([]profile.Expected, 0, len(o.Spec.Containers))
	for _, c := range o.Spec.Containers {
		out = append(out, profile.Expected{
			Key:   profile.Key{Namespace: wk.Namespace, Workload: wk.Workload, Container: c.Name, Revision: o.Spec.Revision},
			Image: c.Image, Executables: c.Executables, Commands: c.Commands, ListenPorts: c.ListenPorts,
			Egress: c.Egress, WritablePaths: c.WritablePaths, Privilege: c.Privilege, AdmittedAt: c.AdmittedAt,
		})
	}
	var w *profile.ReleaseWindow
	if rw := o.Spec.ReleaseWindow; rw != nil {
		w = &profile.ReleaseWindow{Workload: wk, Revision: o.Spec.Revision, PrevRevision: rw.PrevRevision,
			Opened: rw.Opened, Closes: rw.Closes, User: rw.User, Changed: rw.Changed}
	}
	return out, w
}

// Decode reads a WorkloadProfile from its JSON form (as an informer or a
// GET returns it). Anyone allowed to create WorkloadProfiles can feed a
// guard, so it checks what the guard relies on: the kind, a namespace, a
// "Kind/name" workload, a revision, and unique non-empty container names.
func Decode(b []byte) (*Object, error) {
	var o Object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if o.Kind != Kind || o.APIVersion != APIVersion {
		return nil, fmt.Errorf("%w: kind %q apiVersion %q", ErrInvalid, o.Kind, o.APIVersion)
	}
	if o.Metadata.Namespace == "" || o.Metadata.Name == "" {
		return nil, fmt.Errorf("%w: no name or namespace", ErrInvalid)
	}
	if kind, name, ok := strings.Cut(o.Spec.Workload, "/"); !ok || kind == "" || name == "" {
		return nil, fmt.Errorf("%w: %s/%s: workload %q is not Kind/name", ErrInvalid, o.Metadata.Namespace, o.Metadata.Name, o.Spec.Workload)
	}
	if o.Spec.Revision == "" {
		return nil, fmt.Errorf("%w: %s/%s: no revision", ErrInvalid, o.Metadata.Namespace, o.Metadata.Name)
	}
	seen := make(map[string]bool, len(o.Spec.Containers))
	for _, c := range o.Spec.Containers {
		if c.Name == "" || seen[c.Name] {
			return nil, fmt.Errorf("%w: %s/%s: empty or repeated container name %q", ErrInvalid, o.Metadata.Namespace, o.Metadata.Name, c.Name)
		}
		seen[c.Name] = true
	}
	return &o, nil
}
