package object

import (
	"bytes"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The slim decode reads a Pod as the admission path needs it when the pod's
// revision is its controller's pod-template-hash label (every pod of a
// Deployment or ReplicaSet, by far the most frequent admission): the
// identity and the fields Flatten reads. It skips what only the expected
// behavior needs (env, resources, mounts, ...), which costs most of a full
// decode (resource.Quantity parsing, the large Container struct). The rest is
// decoded by Complete, only when a revision is new to the store.

// slimMeta is the part of ObjectMeta the webhook reads.
type slimMeta struct {
	Name            string                  `json:"name"`
	GenerateName    string                  `json:"generateName"`
	Namespace       string                  `json:"namespace"`
	Labels          map[string]string       `json:"labels"`
	Annotations     map[string]string       `json:"annotations"`
	OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
}

func (m *slimMeta) objectMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace,
		Labels: m.Labels, Annotations: m.Annotations, OwnerReferences: m.OwnerReferences}
}

// slimContainer holds the Container fields Flatten reads.
type slimContainer struct {
	Name            string                  `json:"name"`
	Image           string                  `json:"image"`
	Command         []string                `json:"command"`
	Args            []string                `json:"args"`
	Ports           []corev1.ContainerPort  `json:"ports"`
	LivenessProbe   *corev1.Probe           `json:"livenessProbe"`
	ReadinessProbe  *corev1.Probe           `json:"readinessProbe"`
	StartupProbe    *corev1.Probe           `json:"startupProbe"`
	Lifecycle       *corev1.Lifecycle       `json:"lifecycle"`
	SecurityContext *corev1.SecurityContext `json:"securityContext"`
}

func (c *slimContainer) container() corev1.Container {
	return corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args, Ports: c.Ports,
		LivenessProbe: c.LivenessProbe, ReadinessProbe: c.ReadinessProbe, StartupProbe: c.StartupProbe,
		Lifecycle: c.Lifecycle, SecurityContext: c.SecurityContext}
}

// slimPodSpec holds the PodSpec fields Flatten reads.
type slimPodSpec struct {
	HostNetwork         bool                       `json:"hostNetwork"`
	HostPID             bool                       `json:"hostPID"`
	HostIPC             bool                       `json:"hostIPC"`
	HostUsers           *bool                      `json:"hostUsers"`
	OS                  *corev1.PodOS              `json:"os"`
	ServiceAccountName  string                     `json:"serviceAccountName"`
	SecurityContext     *corev1.PodSecurityContext `json:"securityContext"`
	Volumes             []corev1.Volume            `json:"volumes"`
	InitContainers      []slimContainer            `json:"initContainers"`
	Containers          []slimContainer            `json:"containers"`
	EphemeralContainers []slimContainer            `json:"ephemeralContainers"`
}

func (s *slimPodSpec) podSpec() *corev1.PodSpec {
	out := &corev1.PodSpec{HostNetwork: s.HostNetwork, HostPID: s.HostPID, HostIPC: s.HostIPC, HostUsers: s.HostUsers,
		OS: s.OS, ServiceAccountName: s.ServiceAccountName, SecurityContext: s.SecurityContext, Volumes: s.Volumes}
	conv := func(cs []slimContainer) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i := range cs {
			out[i] = cs[i].container()
		}
		return out
	}
	out.InitContainers, out.Containers = conv(s.InitContainers), conv(s.Containers)
	for i := range s.EphemeralContainers {
		out.EphemeralContainers = append(out.EphemeralContainers,
			corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon(s.EphemeralContainers[i].container())})
	}
	return out
}

type slimPod struct {
	Metadata slimMeta    `json:"metadata"`
	Spec     slimPodSpec `json:"spec"`
}

var hashLabel = []byte(`"` + appsv1.DefaultDeploymentUniqueLabelKey + `"`)

// decodeSlimPod fills t from a slim decode of a Pod whose revision is its
// pod-template-hash label and reports whether it did; false (and no error)
// sends the caller to the full decode.
func decodeSlimPod(unmarshal Unmarshal, t *Template, raw []byte) (bool, error) {
	if !bytes.Contains(raw, hashLabel) {
		return false, nil
	}
	var o slimPod
	if err := unmarshal(raw, &o); err != nil {
		return false, fmt.Errorf("decode pod: %w", err)
	}
	h := o.Metadata.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if h == "" {
		return false, nil
	}
	t.Meta = o.Metadata.objectMeta()
	t.PodMeta, t.Spec = t.Meta, o.Spec.podSpec()
	t.Revision, t.RevisionFromController = h, true
	t.partial, t.raw, t.unmarshal = true, raw, unmarshal
	return true, nil
}

// Complete decodes the whole object when t came from the slim decode, so
// that Expected and Aspects see every field; it is a no-op otherwise, and
// safe to call again. The webhook calls it before recording a revision new
// to the store. An error is a malformed object (a field the slim decode
// skipped does not decode).
func (t *Template) Complete() error {
	if !t.partial {
		return nil
	}
	var o corev1.Pod
	if err := t.unmarshal(t.raw, &o); err != nil {
		return fmt.Errorf("decode pod: %w", err)
	}
	t.Meta, t.PodMeta, t.Spec = o.ObjectMeta, o.ObjectMeta, &o.Spec
	t.partial, t.raw = false, nil
	return nil
}

// Partial reports whether t holds only the fields admission rules read (see
// Complete).
func (t *Template) Partial() bool { return t.partial }
