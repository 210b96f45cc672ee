// Package object owns the reading of admitted Kubernetes objects: decoding a
// Pod or any pod-template owner (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob) into its pod template, naming its top-level
// workload and revision, flattening the template for admission rules
// (event.Admission) and deriving each container's expected behavior
// (profile.Expected).
package object

import (
	"encoding/json"

	"errors"
	"fmt"
	gojson "github.com/goccy/go-json"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/dump"
)

// ErrUnknownKind is returned for kinds that carry no pod template; the
// webhook allows them and writes an audit record.
var ErrUnknownKind = errors.New("object: kind carries no pod template")

// Template is a pod template with the identity of the workload that owns it.
type Template struct {
	Kind string // the reviewed object's kind
	Meta metav1.ObjectMeta
	// PodMeta and Spec are the pod's (for a Pod) or the template's.
	PodMeta metav1.ObjectMeta
	Spec    *corev1.PodSpec
	// Workload is "Kind/name" of the top owner; Revision the template's
	// revision (see Decode).
	Workload string
	Revision string
	// Controlled is set when a controller owns the object (a pod of a
	// ReplicaSet, StatefulSet, DaemonSet or Job; a ReplicaSet of a
	// Deployment; a Job of a CronJob).
	Controlled bool
	// RevisionFromController is set when Revision is the controller's own
	// (a pod-template-hash label); clear when it was hashed here from a
	// pod the controller has already decorated with its own labels, so it
	// cannot match the revision recorded for the controller.
	RevisionFromController bool

	// partial: Spec and the metadata hold only what Flatten reads (the
	// slim decode, see slim.go); raw and unmarshal let Complete decode the
	// rest.
	partial   bool
	raw       []byte
	unmarshal Unmarshal
}

// Kinds lists the kinds Decode understands.
var Kinds = []string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"}

// Decode parses raw (the AdmissionRequest object) as kind and returns its
// pod template. name is the request's name, used when the object has none
// yet (generateName).
//
// Revisions:
//   - Deployment: the pod-template-hash kube-controller-manager will give its
//     ReplicaSet (fnv32a over k8s.io/utils/dump.ForHash of the template, plus
//     status.collisionCount, safe-encoded), so a pod's label matches it.
//   - ReplicaSet and Pod: their pod-template-hash label when present.
//   - everything else: "t" + a stable hash of the template's JSON.
func Decode(kind string, raw []byte) (*Template, error) {
	return DecodeWith(gojson.Unmarshal, kind, raw)
}

// Unmarshal is a JSON decoder with encoding/json's semantics.
type Unmarshal func(data []byte, v any) error

// DecodeWith is Decode with a chosen JSON decoder. Decode uses
// github.com/goccy/go-json, which honours the API types' json.Unmarshaler
// methods like encoding/json and decodes a pod about 3–10x faster here (see
// BENCHMARKS.md); encoding/json remains for comparison.
func DecodeWith(unmarshal Unmarshal, kind string, raw []byte) (*Template, error) {
	t := &Template{Kind: kind}
	switch kind {
	case "Pod":
		if ok, err := decodeSlimPod(unmarshal, t, raw); err != nil {
			return nil, err
		} else if ok {
			break
		}
		var o corev1.Pod
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode pod: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.ObjectMeta, &o.Spec
	case "Deployment":
		var o appsv1.Deployment
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode deployment: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		t.Revision = PodTemplateHash(&o.Spec.Template, o.Status.CollisionCount)
	case "ReplicaSet":
		var o appsv1.ReplicaSet
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode replicaset: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case "StatefulSet":
		var o appsv1.StatefulSet
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode statefulset: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case "DaemonSet":
		var o appsv1.DaemonSet
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode daemonset: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case "Job":
		var o batchv1.Job
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode job: %w", err)
		}
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case "CronJob":
		var o batchv1.CronJob
		if err := unmarshal(raw, &o); err != nil {
			return nil, fmt.Errorf("decode cronjob: %w", err)
		}
		jt := &o.Spec.JobTemplate.Spec.Template
		t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, jt.ObjectMeta, &jt.Spec
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	t.Workload = topOwner(kind, &t.Meta)
	t.Controlled = controllerOf(&t.Meta) != nil
	if t.Revision == "" {
		if h := t.PodMeta.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" && (kind == "Pod" || kind == "ReplicaSet") {
			t.Revision = h
			t.RevisionFromController = true
		} else {
			t.Revision = stableHash(t.PodMeta, t.Spec)
		}
	}
	return t, nil
}

// topOwner names the workload a pod template belongs to. A ReplicaSet owned
// by a Deployment (name "<deploy>-<hash>") and its pods belong to the
// Deployment; a Job owned by a CronJob to the CronJob; pods of a
// StatefulSet, DaemonSet or bare ReplicaSet to that controller.
func topOwner(kind string, m *metav1.ObjectMeta) string {
	name := m.Name
	if name == "" {
		name = m.GenerateName
	}
	ctrl := controllerOf(m)
	if ctrl == nil {
		return kind + "/" + name
	}
	switch ctrl.Kind {
	case "ReplicaSet":
		// The pod's ReplicaSet name is "<deployment>-<pod-template-hash>"
		// when a Deployment made it; the label tells us the suffix.
		if h := m.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" && strings.HasSuffix(ctrl.Name, "-"+h) {
			return "Deployment/" + strings.TrimSuffix(ctrl.Name, "-"+h)
		}
		return "ReplicaSet/" + ctrl.Name
	}
	// A Job made by a CronJob names the CronJob as its controller. Its pods
	// name the Job ("<cronjob>-<scheduled minute>"), which is where we stop:
	// the suffix is not reliably distinguishable from a user's Job name.
	return ctrl.Kind + "/" + ctrl.Name
}

func controllerOf(m *metav1.ObjectMeta) *metav1.OwnerReference {
	for i := range m.OwnerReferences {
		if r := &m.OwnerReferences[i]; r.Controller != nil && *r.Controller {
			return r
		}
	}
	return nil
}

// PodTemplateHash computes the pod-template-hash label the Deployment
// controller gives the ReplicaSet for this template, the way
// k8s.io/kubernetes/pkg/controller.ComputeHash does.
func PodTemplateHash(t *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(*t))
	if collisionCount != nil {
		var b [8]byte
		c := uint32(*collisionCount)
		b[0], b[1], b[2], b[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
		h.Write(b[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// stableHash identifies a template whose controller hashes differently
// (StatefulSet and DaemonSet controller revisions hash a patch, not the
// template). encoding/json sorts map keys, so equal templates hash equal.
func stableHash(meta metav1.ObjectMeta, spec *corev1.PodSpec) string {
	h := fnv.New64a()
	// Only labels and annotations of the template's metadata take part; the
	// rest (name, uid, resourceVersion) changes without a new revision.
	_ = json.NewEncoder(h).Encode(struct {
		L map[string]string `json:"l,omitempty"`
		A map[string]string `json:"a,omitempty"`
		S *corev1.PodSpec   `json:"s"`
	}{meta.Labels, meta.Annotations, spec})
	return "t" + strconv.FormatUint(h.Sum64(), 36)
}

// sortedPairs renders a map as sorted "key=value" strings.
func sortedPairs(m map[string]string, skip string) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if k == skip {
			continue
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
