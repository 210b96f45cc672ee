// Package profile holds the types that cross from the admission webhook to
// the node guards: a container's expected behavior as read from its manifest
// (the initial behavioral baseline), and release windows. The webhook
// produces them; guard/baseline consumes them.
package profile

import "time"

// Key names one container of one workload revision.
type Key struct {
	Namespace string `json:"namespace"`
	// Workload is "Kind/name" of the top owner, e.g. "Deployment/web", or
	// "Pod/name" for a bare pod.
	Workload string `json:"workload"`
	// Container is the container's name in the pod template.
	Container string `json:"container"`
	// Revision is the pod-template hash, or the image digest where known.
	Revision string `json:"revision"`
}

// WorkloadKey names a workload across revisions.
type WorkloadKey struct {
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
}

// Port is a listening port.
type Port struct {
	Port  uint16 `json:"port"`
	Proto string `json:"proto"` // "TCP", "UDP", "SCTP"
	Name  string `json:"name,omitempty"`
}

// Egress is one expected outbound peer. Host may be a DNS name or an IP;
// CIDR is set instead for declared ranges. Port 0 means any.
type Egress struct {
	Host string `json:"host,omitempty"`
	CIDR string `json:"cidr,omitempty"`
	Port uint16 `json:"port,omitempty"`
	// From says where it was found: "env:NAME", "annotation".
	From string `json:"from,omitempty"`
}

// Privilege is the container's privilege envelope.
type Privilege struct {
	RunAsUser                *int64   `json:"runAsUser,omitempty"`
	RunAsGroup               *int64   `json:"runAsGroup,omitempty"`
	RunAsNonRoot             bool     `json:"runAsNonRoot,omitempty"`
	AllowPrivilegeEscalation *bool    `json:"allowPrivilegeEscalation,omitempty"`
	Privileged               bool     `json:"privileged,omitempty"`
	CapsAdd                  []string `json:"capsAdd,omitempty"`
	CapsDrop                 []string `json:"capsDrop,omitempty"`
	HostNetwork              bool     `json:"hostNetwork,omitempty"`
	HostPID                  bool     `json:"hostPID,omitempty"`
	HostIPC                  bool     `json:"hostIPC,omitempty"`
	ReadOnlyRootFilesystem   bool     `json:"readOnlyRootFilesystem,omitempty"`
}

// Expected is what a container is supposed to do, derived from its manifest
// at admission plus user annotations.
type Expected struct {
	Key   Key    `json:"key"`
	Image string `json:"image"`
	// Executables are paths or names expected to run: the entrypoint,
	// command[0], exec probes and lifecycle hooks, and annotated extras.
	Executables []string `json:"executables,omitempty"`
	// Commands are full expected argv vectors (command+args, probes, hooks).
	Commands      [][]string `json:"commands,omitempty"`
	ListenPorts   []Port     `json:"listenPorts,omitempty"`
	Egress        []Egress   `json:"egress,omitempty"`
	WritablePaths []string   `json:"writablePaths,omitempty"`
	Privilege     Privilege  `json:"privilege"`
	AdmittedAt    time.Time  `json:"admittedAt"`
}

// ReleaseWindow is an admitted rollout of a workload: during [Opened,
// Closes) deviations are expected and scored down.
type ReleaseWindow struct {
	Workload     WorkloadKey `json:"workload"`
	Revision     string      `json:"revision"`
	PrevRevision string      `json:"prevRevision,omitempty"`
	Opened       time.Time   `json:"opened"`
	Closes       time.Time   `json:"closes"`
	// User is the requester from the AdmissionReview's userInfo.
	User string `json:"user,omitempty"`
	// Changed lists what changed against the previous revision: "image",
	// "command", "args", "env", "ports", "securityContext", "volumes".
	Changed []string `json:"changed,omitempty"`
}

// Open reports whether the window is open at t.
func (w *ReleaseWindow) Open(t time.Time) bool {
	return !t.Before(w.Opened) && t.Before(w.Closes)
}
