package container

import (
	"strings"
)

// Runtime names as they appear in event.Container.Runtime.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
	RuntimeRunc       = "runc"
)

// QoS classes of a Kubernetes pod, from the kubepods cgroup hierarchy.
const (
	QoSGuaranteed = "guaranteed"
	QoSBurstable  = "burstable"
	QoSBestEffort = "besteffort"
)

// PathInfo is what a cgroup path alone says about the container in it.
type PathInfo struct {
	// Runtime is one of the Runtime* constants; empty when the path names a
	// container id but not its runtime (kubepods with the cgroupfs driver).
	Runtime string
	// ID is the container id; empty when the path is not a container's.
	ID string
	// Namespace is the containerd namespace where the path names it.
	Namespace string
	// PodUID is the Kubernetes pod UID (with dashes), QoS its class.
	PodUID string
	QoS    string
}

// IsContainer reports whether the path belongs to a container.
func (p PathInfo) IsContainer() bool { return p.ID != "" }

// ParsePath reads a cgroup path (relative to the hierarchy root, as in
// /proc/<pid>/cgroup) and returns the container and pod it names. It handles
// the systemd and cgroupfs drivers of docker, containerd (CRI and
// namespaced), cri-o and podman, and Kubernetes kubepods trees of every QoS
// class. The innermost container segment wins, so nested setups (kind,
// docker-in-docker) resolve to the container the task really runs in.
//
// # Notes
//
//   - Monitor cgroups (crio-conmon-*, libpod-conmon-*) are not containers.
//   - A plain runc container has no recognisable path; the Resolver matches
//     those against runc state dirs instead.
func ParsePath(path string) PathInfo {
	var info PathInfo
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		if seg == "" {
			continue
		}
		if uid, qos, ok := parsePodSegment(seg, segs, i); ok {
			info.PodUID, info.QoS = uid, qos
			// A new pod level resets any container seen above it (nesting).
			info.ID, info.Runtime, info.Namespace = "", "", ""
			continue
		}
		if rt, id, ok := parseScope(seg); ok {
			info.Runtime, info.ID, info.Namespace = rt, id, ""
			continue
		}
		if i > 0 {
			parent := segs[i-1]
			switch {
			case (parent == "docker" || parent == "moby") && isHexID(seg):
				// cgroupfs driver: /docker/<id>.
				info.Runtime, info.ID, info.Namespace = RuntimeDocker, seg, ""
				continue
			case parent == "libpod_parent" && strings.HasPrefix(seg, "libpod-"):
				if id := strings.TrimPrefix(seg, "libpod-"); isHexID(id) {
					info.Runtime, info.ID, info.Namespace = RuntimePodman, id, ""
				}
				continue
			case parent == "k8s.io" && isHexID(seg):
				// containerd's CRI namespace with the cgroupfs driver
				// outside kubepods: /k8s.io/<id>.
				info.Runtime, info.ID, info.Namespace = RuntimeContainerd, seg, "k8s.io"
				continue
			case info.PodUID != "" && isPodSegment(parent) && isHexID(seg):
				// cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>. The runtime
				// is not in the path.
				info.ID, info.Runtime, info.Namespace = seg, "", ""
				continue
			case info.PodUID != "" && isPodSegment(parent):
				// cri-o with cgroupfs: /kubepods/<qos>/pod<uid>/crio-<id>.
				if rt, id, ok := parseScope(seg + ".scope"); ok {
					info.Runtime, info.ID, info.Namespace = rt, id, ""
				}
				continue
			}
		}
	}
	return info
}

// parseScope recognises systemd scope units named after a container:
// docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope.
func parseScope(seg string) (runtime, id string, ok bool) {
	name, found := strings.CutSuffix(seg, ".scope")
	if !found {
		return "", "", false
	}
	for _, p := range scopePrefixes {
		if rest, ok := strings.CutPrefix(name, p.prefix); ok {
			if isHexID(rest) {
				return p.runtime, rest, true
			}
			return "", "", false
		}
	}
	return "", "", false
}

var scopePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", RuntimeContainerd},
	{"docker-", RuntimeDocker},
	{"crio-", RuntimeCRIO},
	{"libpod-", RuntimePodman},
}

// parsePodSegment recognises a pod's cgroup:
//
//	systemd:  kubepods-pod<uid_>.slice, kubepods-<qos>-pod<uid_>.slice
//	cgroupfs: pod<uid> under kubepods[/<qos>]
//
// systemd slice names replace the UID's dashes with underscores.
func parsePodSegment(seg string, segs []string, i int) (uid, qos string, ok bool) {
	if name, found := strings.CutSuffix(seg, ".slice"); found {
		// A kubelet --cgroup-root adds a prefix: kind names pod slices
		// kubelet-kubepods-<qos>-pod<uid_>.slice.
		idx := strings.Index(name, "kubepods-")
		if idx < 0 || idx > 0 && name[idx-1] != '-' {
			return "", "", false
		}
		rest := name[idx+len("kubepods-"):]
		qos = QoSGuaranteed
		for _, q := range []string{QoSBurstable, QoSBestEffort} {
			if r, ok := strings.CutPrefix(rest, q+"-"); ok {
				qos, rest = q, r
				break
			}
		}
		u, ok := strings.CutPrefix(rest, "pod")
		if !ok || !isUID(u, '_') {
			return "", "", false
		}
		return strings.ReplaceAll(u, "_", "-"), qos, true
	}
	u, found := strings.CutPrefix(seg, "pod")
	if !found || !isUID(u, '-') || i == 0 {
		return "", "", false
	}
	switch parent := segs[i-1]; {
	case parent == "kubepods":
		return u, QoSGuaranteed, true
	case (parent == QoSBurstable || parent == QoSBestEffort) && i >= 2 && segs[i-2] == "kubepods":
		return u, parent, true
	}
	return "", "", false
}

func isPodSegment(seg string) bool {
	u, ok := strings.CutPrefix(seg, "pod")
	return ok && isUID(u, '-')
}

// isHexID reports whether s looks like a runtime container id: 64 lowercase
// hex digits (docker, containerd CRI, cri-o, podman all use this form).
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isUID reports whether s is a Kubernetes UID (RFC 4122 text form, 36
// chars) with sep as its group separator. Static pods use a 32-hex hash
// instead, which is accepted too.
func isUID(s string, sep byte) bool {
	switch len(s) {
	case 32:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	case 36:
		for i := 0; i < len(s); i++ {
			switch i {
			case 8, 13, 18, 23:
				if s[i] != sep {
					return false
				}
			default:
				if !isHex(s[i]) {
					return false
				}
			}
		}
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
