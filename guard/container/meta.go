package container

import (
	"context"
	"errors"
	"os"
	"strings"
)

// Metadata is what a container runtime's API knows about a container beyond
// its cgroup: names and image. Fields the runtime does not know stay empty.
type Metadata struct {
	// Name is the container's name: the Kubernetes container name for CRI
	// containers, else the runtime's own name (for containerd, the id the
	// user chose with `ctr run`).
	Name  string
	Image string
	// ImageDigest is the registry (manifest) digest where the runtime knows
	// one; through CRI, an image that was never pulled from a registry has
	// none, and its image id (config digest) is reported instead.
	ImageDigest string

	// Kubernetes context, from the labels the kubelet sets through CRI.
	PodName       string
	PodNamespace  string
	PodUID        string
	ContainerName string
	// Revision is the pod's template revision: the pod-template-hash label
	// of Deployment pods, or controller-revision-hash of StatefulSet and
	// DaemonSet pods.
	Revision string

	// Source names the MetadataSource that answered.
	Source string
}

// ErrNotFound is returned by a MetadataSource that does not know the
// container, so the Resolver tries the next source.
var ErrNotFound = errors.New("container not found")

// MetadataSource looks a container up in a runtime's API. Lookup runs on
// the Resolver's background worker, never on the event path, and must
// honour ctx's deadline.
type MetadataSource interface {
	// Name identifies the source in counters and Metadata.Source.
	Name() string
	Lookup(ctx context.Context, info PathInfo) (Metadata, error)
	Close() error
}

// Kubernetes labels the kubelet puts on every CRI container.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// fillFromLabels copies the kubelet's labels into m.
func fillFromLabels(m *Metadata, labels map[string]string) {
	m.PodName = labels[labelPodName]
	m.PodNamespace = labels[labelPodNamespace]
	m.PodUID = labels[labelPodUID]
	m.ContainerName = labels[labelContainerName]
	if m.ContainerName != "" {
		m.Name = m.ContainerName
	}
}

// revisionOf returns the revision hash among a pod's labels.
func revisionOf(podLabels map[string]string) string {
	if h := podLabels["pod-template-hash"]; h != "" {
		return h
	}
	return podLabels["controller-revision-hash"]
}

// digestOf extracts "algo:hex" from an image reference such as
// "docker.io/library/busybox@sha256:ab..", "sha256:ab.." or an image id.
func digestOf(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		ref = ref[i+1:]
	}
	algo, hex, ok := strings.Cut(ref, ":")
	if !ok || (algo != "sha256" && algo != "sha512") || hex == "" {
		return ""
	}
	for i := 0; i < len(hex); i++ {
		if !isHex(hex[i]) {
			return ""
		}
	}
	return ref
}

// DetectSources returns metadata sources for the runtime sockets that exist
// now: for containerd, CRI first (authoritative for pod names) and then
// containerd's own API (every namespace, including `ctr` and nerdctl
// containers); for cri-o, CRI. Sockets default to ContainerdSocket and
// CRIOSocket when empty.
func DetectSources(containerdSock, crioSock string) []MetadataSource {
	if containerdSock == "" {
		containerdSock = ContainerdSocket
	}
	if crioSock == "" {
		crioSock = CRIOSocket
	}
	var out []MetadataSource
	if isSocket(containerdSock) {
		out = append(out, NewCRISource(containerdSock), NewContainerdSource(containerdSock))
	}
	if isSocket(crioSock) {
		out = append(out, NewCRISource(crioSock))
	}
	return out
}

func isSocket(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}
