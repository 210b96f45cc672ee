package event

import (
	"encoding/binary"
	"fmt"
)

// Admission is a Kubernetes object under review, flattened to the facts that
// admission rules (and the Pod Security Standards) decide on. The webhook
// fills it from the AdmissionReview; AppendAdmission puts it on the wire and
// DecodeAdmission reads it back inside a rule, so host and guest share one
// model and the PSS checks run unchanged in both.
//
// # Notes
//
// Optional Kubernetes fields (pointers in the API) are pointers here too:
// their records are present on the wire exactly when the field is set, even
// when the value is zero or false. A rule can therefore tell
// "runAsNonRoot: false" from "runAsNonRoot not set".
type Admission struct {
	// Kind is the reviewed object's kind: Pod, Deployment, ..., Namespace.
	Kind      string
	Namespace string
	Name      string
	// Operation is CREATE, UPDATE, DELETE or CONNECT.
	Operation string
	User      string
	Groups    []string
	DryRun    bool
	// UID is the AdmissionRequest uid.
	UID string
	// Workload is "Kind/name" of the top owner, Revision its pod-template
	// revision (see webhook/object).
	Workload string
	Revision string

	Pod AdmissionPod
}

// AdmissionPod is the pod (or pod template) of the reviewed object.
type AdmissionPod struct {
	HostNetwork bool
	HostPID     bool
	HostIPC     bool
	HostUsers   *bool
	// OS is spec.os.name ("linux", "windows") or empty.
	OS             string
	ServiceAccount string

	RunAsNonRoot *bool
	RunAsUser    *int64
	RunAsGroup   *int64
	// Seccomp and AppArmor are the profile types, set when the profile is.
	Seccomp            *string
	AppArmor           *string
	SELinux            *SELinux
	Sysctls            []string // names
	WindowsHostProcess *bool
	// Annotations and Labels are "key=value" pairs, sorted by key.
	Annotations []string
	Labels      []string

	Volumes []AdmissionVolume
	// Containers lists init containers, then containers, then ephemeral
	// containers: the order the Pod Security Standards visit them.
	Containers []AdmissionContainer
}

// SELinux mirrors seLinuxOptions.
type SELinux struct {
	User, Role, Type, Level string
}

// AdmissionVolume is one pod volume.
type AdmissionVolume struct {
	Name string
	// Type is the volume source's field name: "hostPath", "configMap",
	// "emptyDir", ...; "unknown" when none is recognised.
	Type     string
	HostPath string // hostPath.path
}

// Container kinds in AdmissionContainer.Kind.
const (
	ContainerInit      = "init"
	ContainerRegular   = "regular"
	ContainerEphemeral = "ephemeral"
)

// AdmissionContainer is one container of the pod.
type AdmissionContainer struct {
	Name    string
	Kind    string // ContainerInit, ContainerRegular or ContainerEphemeral
	Image   string
	Command []string
	Args    []string
	// Ports are "port/PROTO" of containerPorts; HostPorts the same for
	// non-zero hostPorts.
	Ports     []string
	HostPorts []string
	// ProbeHosts are the host fields set in probes and lifecycle handlers
	// (httpGet.host, tcpSocket.host).
	ProbeHosts []string
	// ExecCommands are argv[0] of exec probes and exec lifecycle hooks.
	ExecCommands []string

	Privileged               *bool
	AllowPrivilegeEscalation *bool
	CapsAdd                  []string
	CapsDrop                 []string
	RunAsNonRoot             *bool
	RunAsUser                *int64
	RunAsGroup               *int64
	ReadOnlyRootFilesystem   *bool
	ProcMount                *string
	Seccomp                  *string
	AppArmor                 *string
	SELinux                  *SELinux
	WindowsHostProcess       *bool
}

// Admission field ids. Request facts and pod facts use record index 0;
// volume fields use the volume's position and container fields the
// container's position (see AdmissionPod.Containers) as record index.
const (
	FieldAdmKind      FieldID = 1000
	FieldAdmNamespace FieldID = 1001
	FieldAdmName      FieldID = 1002
	FieldAdmOperation FieldID = 1003
	FieldAdmUser      FieldID = 1004
	FieldAdmGroups    FieldID = 1005
	FieldAdmDryRun    FieldID = 1006
	FieldAdmUID       FieldID = 1007
	FieldAdmWorkload  FieldID = 1008
	FieldAdmRevision  FieldID = 1009

	FieldPodHostNetwork    FieldID = 1100
	FieldPodHostPID        FieldID = 1101
	FieldPodHostIPC        FieldID = 1102
	FieldPodHostUsers      FieldID = 1103
	FieldPodOS             FieldID = 1104
	FieldPodServiceAccount FieldID = 1105
	FieldPodRunAsNonRoot   FieldID = 1106
	FieldPodRunAsUser      FieldID = 1107
	FieldPodRunAsGroup     FieldID = 1108
	FieldPodSeccomp        FieldID = 1109
	FieldPodAppArmor       FieldID = 1110
	FieldPodSELinuxUser    FieldID = 1111
	FieldPodSELinuxRole    FieldID = 1112
	FieldPodSELinuxType    FieldID = 1113
	FieldPodSELinuxLevel   FieldID = 1114
	FieldPodSysctls        FieldID = 1115
	FieldPodWinHostProcess FieldID = 1116
	FieldPodAnnotations    FieldID = 1117
	FieldPodLabels         FieldID = 1118
	FieldPodVolumeCount    FieldID = 1119
	FieldPodContainerCount FieldID = 1120
	FieldPodSELinuxSet     FieldID = 1121

	FieldVolName     FieldID = 1200
	FieldVolType     FieldID = 1201
	FieldVolHostPath FieldID = 1202

	FieldCtrName         FieldID = 1300
	FieldCtrKind         FieldID = 1301
	FieldCtrImage        FieldID = 1302
	FieldCtrCommand      FieldID = 1303
	FieldCtrArgs         FieldID = 1304
	FieldCtrPorts        FieldID = 1305
	FieldCtrHostPorts    FieldID = 1306
	FieldCtrProbeHosts   FieldID = 1307
	FieldCtrExecCommands FieldID = 1308
	FieldCtrPrivileged   FieldID = 1309
	FieldCtrAllowPrivEsc FieldID = 1310
	FieldCtrCapsAdd      FieldID = 1311
	FieldCtrCapsDrop     FieldID = 1312
	FieldCtrRunAsNonRoot FieldID = 1313
	FieldCtrRunAsUser    FieldID = 1314
	FieldCtrRunAsGroup   FieldID = 1315
	FieldCtrReadOnlyRoot FieldID = 1316
	FieldCtrProcMount    FieldID = 1317
	FieldCtrSeccomp      FieldID = 1318
	FieldCtrAppArmor     FieldID = 1319
	FieldCtrSELinuxUser  FieldID = 1320
	FieldCtrSELinuxRole  FieldID = 1321
	FieldCtrSELinuxType  FieldID = 1322
	FieldCtrSELinuxLevel FieldID = 1323
	FieldCtrWinHostProc  FieldID = 1324
	FieldCtrSELinuxSet   FieldID = 1325
)

// Admission facts are not part of Event (a kernel event never carries a pod
// spec), so their registry getters return zero and AppendEvent skips them;
// AppendAdmission is their encoder.
func noU(*Event) uint64   { return 0 }
func noI(*Event) int64    { return 0 }
func noB(*Event) bool     { return false }
func noS(*Event) string   { return "" }
func noL(*Event) []string { return nil }

// admissionFields are the fields of admission events (ids 1000–1999): a
// Kubernetes object under review, flattened so that admission rules read it
// through the same ABI as kernel events. Owned by the webhook.
var admissionFields = []Field{
	str(FieldAdmKind, "adm.kind", "Kind of the reviewed object: Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, Namespace.", noS),
	str(FieldAdmNamespace, "adm.namespace", "Namespace of the reviewed object.", noS),
	str(FieldAdmName, "adm.name", "Name of the reviewed object (may be empty for generateName creates).", noS),
	str(FieldAdmOperation, "adm.operation", "Admission operation: CREATE, UPDATE, DELETE or CONNECT.", noS),
	str(FieldAdmUser, "adm.user", "Requesting user (userInfo.username).", noS),
	strs(FieldAdmGroups, "adm.groups", "Requesting user's groups.", noL),
	boolean(FieldAdmDryRun, "adm.dry_run", "The request is a dry run; nothing is recorded.", noB),
	str(FieldAdmUID, "adm.uid", "AdmissionRequest uid.", noS),
	str(FieldAdmWorkload, "adm.workload", "Top owner of the pod template as Kind/name, e.g. Deployment/web.", noS),
	str(FieldAdmRevision, "adm.revision", "Revision of the pod template (pod-template-hash or stable template hash).", noS),

	boolean(FieldPodHostNetwork, "pod.host_network", "spec.hostNetwork.", noB),
	boolean(FieldPodHostPID, "pod.host_pid", "spec.hostPID.", noB),
	boolean(FieldPodHostIPC, "pod.host_ipc", "spec.hostIPC.", noB),
	boolean(FieldPodHostUsers, "pod.host_users", "spec.hostUsers; present only when set.", noB),
	str(FieldPodOS, "pod.os", "spec.os.name (linux, windows); empty when unset.", noS),
	str(FieldPodServiceAccount, "pod.service_account", "spec.serviceAccountName.", noS),
	boolean(FieldPodRunAsNonRoot, "pod.run_as_non_root", "Pod securityContext.runAsNonRoot; present only when set.", noB),
	i64(FieldPodRunAsUser, "pod.run_as_user", "Pod securityContext.runAsUser; present only when set (0 is root).", noI),
	i64(FieldPodRunAsGroup, "pod.run_as_group", "Pod securityContext.runAsGroup; present only when set.", noI),
	str(FieldPodSeccomp, "pod.seccomp", "Pod seccompProfile.type (RuntimeDefault, Localhost, Unconfined); present only when a profile is set.", noS),
	str(FieldPodAppArmor, "pod.apparmor", "Pod appArmorProfile.type; present only when a profile is set.", noS),
	str(FieldPodSELinuxUser, "pod.selinux_user", "Pod seLinuxOptions.user.", noS),
	str(FieldPodSELinuxRole, "pod.selinux_role", "Pod seLinuxOptions.role.", noS),
	str(FieldPodSELinuxType, "pod.selinux_type", "Pod seLinuxOptions.type.", noS),
	str(FieldPodSELinuxLevel, "pod.selinux_level", "Pod seLinuxOptions.level.", noS),
	strs(FieldPodSysctls, "pod.sysctls", "Names of the pod's sysctls.", noL),
	boolean(FieldPodWinHostProcess, "pod.windows_host_process", "Pod windowsOptions.hostProcess; present only when set.", noB),
	strs(FieldPodAnnotations, "pod.annotations", "Pod template annotations as key=value, sorted (kubectl's last-applied-configuration is left out).", noL),
	strs(FieldPodLabels, "pod.labels", "Pod template labels as key=value, sorted.", noL),
	u64(FieldPodVolumeCount, "pod.volume_count", "Number of volumes; volume fields carry indexes 0..n-1.", noU),
	u64(FieldPodContainerCount, "pod.container_count", "Number of containers (init, regular, ephemeral); container fields carry indexes 0..n-1.", noU),
	boolean(FieldPodSELinuxSet, "pod.selinux_set", "Pod seLinuxOptions is set.", noB),

	str(FieldVolName, "volume.name", "Volume name (record index = volume number).", noS),
	str(FieldVolType, "volume.type", "Volume source type: hostPath, configMap, secret, emptyDir, ... or unknown.", noS),
	str(FieldVolHostPath, "volume.host_path", "hostPath.path of a hostPath volume.", noS),

	str(FieldCtrName, "container.spec_name", "Container name in the pod spec (record index = container number).", noS),
	str(FieldCtrKind, "container.spec_kind", "Container kind: init, regular or ephemeral.", noS),
	str(FieldCtrImage, "container.spec_image", "Container image reference from the spec.", noS),
	strs(FieldCtrCommand, "container.command", "Container command (entrypoint override); empty means the image default.", noL),
	strs(FieldCtrArgs, "container.args", "Container args.", noL),
	strs(FieldCtrPorts, "container.ports", "containerPorts as port/PROTO.", noL),
	strs(FieldCtrHostPorts, "container.host_ports", "Non-zero hostPorts as port/PROTO.", noL),
	strs(FieldCtrProbeHosts, "container.probe_hosts", "host fields set in httpGet/tcpSocket probes and lifecycle handlers.", noL),
	strs(FieldCtrExecCommands, "container.exec_commands", "argv[0] of exec probes and exec lifecycle hooks.", noL),
	boolean(FieldCtrPrivileged, "container.privileged", "securityContext.privileged; present only when set.", noB),
	boolean(FieldCtrAllowPrivEsc, "container.allow_privilege_escalation", "securityContext.allowPrivilegeEscalation; present only when set.", noB),
	strs(FieldCtrCapsAdd, "container.caps_add", "securityContext.capabilities.add.", noL),
	strs(FieldCtrCapsDrop, "container.caps_drop", "securityContext.capabilities.drop.", noL),
	boolean(FieldCtrRunAsNonRoot, "container.run_as_non_root", "securityContext.runAsNonRoot; present only when set.", noB),
	i64(FieldCtrRunAsUser, "container.run_as_user", "securityContext.runAsUser; present only when set (0 is root).", noI),
	i64(FieldCtrRunAsGroup, "container.run_as_group", "securityContext.runAsGroup; present only when set.", noI),
	boolean(FieldCtrReadOnlyRoot, "container.read_only_root_fs", "securityContext.readOnlyRootFilesystem; present only when set.", noB),
	str(FieldCtrProcMount, "container.proc_mount", "securityContext.procMount (Default, Unmasked); present only when set.", noS),
	str(FieldCtrSeccomp, "container.seccomp", "Container seccompProfile.type; present only when a profile is set.", noS),
	str(FieldCtrAppArmor, "container.apparmor", "Container appArmorProfile.type; present only when a profile is set.", noS),
	str(FieldCtrSELinuxUser, "container.selinux_user", "Container seLinuxOptions.user.", noS),
	str(FieldCtrSELinuxRole, "container.selinux_role", "Container seLinuxOptions.role.", noS),
	str(FieldCtrSELinuxType, "container.selinux_type", "Container seLinuxOptions.type.", noS),
	str(FieldCtrSELinuxLevel, "container.selinux_level", "Container seLinuxOptions.level.", noS),
	boolean(FieldCtrWinHostProc, "container.windows_host_process", "Container windowsOptions.hostProcess; present only when set.", noB),
	boolean(FieldCtrSELinuxSet, "container.selinux_set", "Container seLinuxOptions is set.", noB),
}

// AppendAdmission appends the wire encoding of a (kind KindAdmission) to dst.
// Records come in ascending (field id, index) order as the wire format
// requires. It returns an error only when the object cannot be represented:
// more than 65535 containers or volumes, or an encoding above MaxEventSize.
func AppendAdmission(dst []byte, a *Admission) ([]byte, error) {
	p := &a.Pod
	if len(p.Containers) > 0xffff || len(p.Volumes) > 0xffff {
		return dst, fmt.Errorf("admission: %d containers, %d volumes: %w", len(p.Containers), len(p.Volumes), ErrBadLength)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	w := admWriter{dst: dst}

	w.str(FieldAdmKind, 0, a.Kind)
	w.str(FieldAdmNamespace, 0, a.Namespace)
	w.str(FieldAdmName, 0, a.Name)
	w.str(FieldAdmOperation, 0, a.Operation)
	w.str(FieldAdmUser, 0, a.User)
	w.list(FieldAdmGroups, 0, a.Groups)
	if a.DryRun {
		w.boolean(FieldAdmDryRun, 0, true)
	}
	w.str(FieldAdmUID, 0, a.UID)
	w.str(FieldAdmWorkload, 0, a.Workload)
	w.str(FieldAdmRevision, 0, a.Revision)

	w.flag(FieldPodHostNetwork, 0, p.HostNetwork)
	w.flag(FieldPodHostPID, 0, p.HostPID)
	w.flag(FieldPodHostIPC, 0, p.HostIPC)
	w.optBool(FieldPodHostUsers, 0, p.HostUsers)
	w.str(FieldPodOS, 0, p.OS)
	w.str(FieldPodServiceAccount, 0, p.ServiceAccount)
	w.optBool(FieldPodRunAsNonRoot, 0, p.RunAsNonRoot)
	w.optInt(FieldPodRunAsUser, 0, p.RunAsUser)
	w.optInt(FieldPodRunAsGroup, 0, p.RunAsGroup)
	w.optStr(FieldPodSeccomp, 0, p.Seccomp)
	w.optStr(FieldPodAppArmor, 0, p.AppArmor)
	if s := p.SELinux; s != nil {
		w.str(FieldPodSELinuxUser, 0, s.User)
		w.str(FieldPodSELinuxRole, 0, s.Role)
		w.str(FieldPodSELinuxType, 0, s.Type)
		w.str(FieldPodSELinuxLevel, 0, s.Level)
	}
	w.list(FieldPodSysctls, 0, p.Sysctls)
	w.optBool(FieldPodWinHostProcess, 0, p.WindowsHostProcess)
	w.list(FieldPodAnnotations, 0, p.Annotations)
	w.list(FieldPodLabels, 0, p.Labels)
	if n := len(p.Volumes); n > 0 {
		w.u64(FieldPodVolumeCount, 0, uint64(n))
	}
	if n := len(p.Containers); n > 0 {
		w.u64(FieldPodContainerCount, 0, uint64(n))
	}
	w.flag(FieldPodSELinuxSet, 0, p.SELinux != nil)

	// Per-element fields: all indexes of one field before the next field.
	vols := p.Volumes
	for i := range vols {
		w.str(FieldVolName, uint16(i), vols[i].Name)
	}
	for i := range vols {
		w.str(FieldVolType, uint16(i), vols[i].Type)
	}
	for i := range vols {
		w.str(FieldVolHostPath, uint16(i), vols[i].HostPath)
	}

	cs := p.Containers
	for _, f := range containerFields {
		for i := range cs {
			f.put(&w, f.id, uint16(i), &cs[i])
		}
	}

	dst = w.dst
	if len(dst)-start > MaxEventSize {
		return dst[:start], fmt.Errorf("admission: encoding of %d bytes exceeds %d: %w", len(dst)-start, MaxEventSize, ErrBadLength)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	binary.LittleEndian.PutUint16(dst[start+4:], uint16(KindAdmission))
	binary.LittleEndian.PutUint16(dst[start+6:], uint16(min(w.n, 0xffff)))
	if w.n > 0xffff {
		return dst[:start], fmt.Errorf("admission: %d records: %w", w.n, ErrBadLength)
	}
	return dst, nil
}

// containerFields is the container part of the encoding, in field-id order.
var containerFields = []struct {
	id  FieldID
	put func(*admWriter, FieldID, uint16, *AdmissionContainer)
}{
	{FieldCtrName, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.str(id, i, c.Name) }},
	{FieldCtrKind, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.str(id, i, c.Kind) }},
	{FieldCtrImage, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.str(id, i, c.Image) }},
	{FieldCtrCommand, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.Command) }},
	{FieldCtrArgs, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.Args) }},
	{FieldCtrPorts, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.Ports) }},
	{FieldCtrHostPorts, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.HostPorts) }},
	{FieldCtrProbeHosts, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.ProbeHosts) }},
	{FieldCtrExecCommands, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.ExecCommands) }},
	{FieldCtrPrivileged, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optBool(id, i, c.Privileged) }},
	{FieldCtrAllowPrivEsc, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		w.optBool(id, i, c.AllowPrivilegeEscalation)
	}},
	{FieldCtrCapsAdd, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.CapsAdd) }},
	{FieldCtrCapsDrop, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.list(id, i, c.CapsDrop) }},
	{FieldCtrRunAsNonRoot, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optBool(id, i, c.RunAsNonRoot) }},
	{FieldCtrRunAsUser, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optInt(id, i, c.RunAsUser) }},
	{FieldCtrRunAsGroup, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optInt(id, i, c.RunAsGroup) }},
	{FieldCtrReadOnlyRoot, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		w.optBool(id, i, c.ReadOnlyRootFilesystem)
	}},
	{FieldCtrProcMount, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optStr(id, i, c.ProcMount) }},
	{FieldCtrSeccomp, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optStr(id, i, c.Seccomp) }},
	{FieldCtrAppArmor, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.optStr(id, i, c.AppArmor) }},
	{FieldCtrSELinuxUser, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		if c.SELinux != nil {
			w.str(id, i, c.SELinux.User)
		}
	}},
	{FieldCtrSELinuxRole, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		if c.SELinux != nil {
			w.str(id, i, c.SELinux.Role)
		}
	}},
	{FieldCtrSELinuxType, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		if c.SELinux != nil {
			w.str(id, i, c.SELinux.Type)
		}
	}},
	{FieldCtrSELinuxLevel, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		if c.SELinux != nil {
			w.str(id, i, c.SELinux.Level)
		}
	}},
	{FieldCtrWinHostProc, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) {
		w.optBool(id, i, c.WindowsHostProcess)
	}},
	{FieldCtrSELinuxSet, func(w *admWriter, id FieldID, i uint16, c *AdmissionContainer) { w.flag(id, i, c.SELinux != nil) }},
}

type admWriter struct {
	dst []byte
	n   int
}

func (w *admWriter) str(id FieldID, idx uint16, v string) {
	if v != "" {
		w.dst = AppendStr(w.dst, id, idx, v)
		w.n++
	}
}

func (w *admWriter) list(id FieldID, idx uint16, v []string) {
	if len(v) > 0 {
		w.dst = AppendStrList(w.dst, id, idx, v)
		w.n++
	}
}

func (w *admWriter) u64(id FieldID, idx uint16, v uint64) {
	w.dst = AppendU64(w.dst, id, idx, v)
	w.n++
}

func (w *admWriter) boolean(id FieldID, idx uint16, v bool) {
	w.dst = AppendBool(w.dst, id, idx, v)
	w.n++
}

// flag writes a plain bool: present only when true.
func (w *admWriter) flag(id FieldID, idx uint16, v bool) {
	if v {
		w.boolean(id, idx, true)
	}
}

func (w *admWriter) optBool(id FieldID, idx uint16, v *bool) {
	if v != nil {
		w.boolean(id, idx, *v)
	}
}

func (w *admWriter) optInt(id FieldID, idx uint16, v *int64) {
	if v != nil {
		w.u64(id, idx, uint64(*v))
	}
}

// optStr writes a present-when-set string, even an empty one: the length-0
// record says "set to empty", which the checks treat differently from unset.
func (w *admWriter) optStr(id FieldID, idx uint16, v *string) {
	if v != nil {
		w.dst = AppendStr(w.dst, id, idx, *v)
		w.n++
	}
}

// DecodeAdmission rebuilds an Admission from the records of a KindAdmission
// event (as returned by Decode). Unknown field ids are skipped so older rules
// keep working with newer hosts; indexes beyond the declared counts are an
// error, as is a value of the wrong size.
func DecodeAdmission(recs []Record) (*Admission, error) {
	a := &Admission{}
	p := &a.Pod
	// Counts come before any per-element field (lower ids), so the slices
	// are sized before they are indexed.
	for _, r := range recs {
		if r.ID < FieldAdmKind || r.ID > 1999 {
			continue
		}
		f, known := byID[r.ID]
		if !known {
			continue
		}
		if err := checkValue(f.Type, r.Value); err != nil {
			return nil, fmt.Errorf("admission field %s: %w", f.Name, err)
		}
		if r.ID < FieldVolName && r.Index != 0 {
			return nil, fmt.Errorf("admission field %s: index %d on a pod-level field: %w", f.Name, r.Index, ErrBadLength)
		}
		var c *AdmissionContainer
		var v *AdmissionVolume
		switch {
		case r.ID >= FieldCtrName:
			if int(r.Index) >= len(p.Containers) {
				return nil, fmt.Errorf("admission field %s: container index %d of %d: %w", f.Name, r.Index, len(p.Containers), ErrBadLength)
			}
			c = &p.Containers[r.Index]
		case r.ID >= FieldVolName:
			if int(r.Index) >= len(p.Volumes) {
				return nil, fmt.Errorf("admission field %s: volume index %d of %d: %w", f.Name, r.Index, len(p.Volumes), ErrBadLength)
			}
			v = &p.Volumes[r.Index]
		}
		s := string(r.Value)
		switch r.ID {
		case FieldAdmKind:
			a.Kind = s
		case FieldAdmNamespace:
			a.Namespace = s
		case FieldAdmName:
			a.Name = s
		case FieldAdmOperation:
			a.Operation = s
		case FieldAdmUser:
			a.User = s
		case FieldAdmGroups:
			a.Groups = strList(r.Value)
		case FieldAdmDryRun:
			a.DryRun = r.Value[0] == 1
		case FieldAdmUID:
			a.UID = s
		case FieldAdmWorkload:
			a.Workload = s
		case FieldAdmRevision:
			a.Revision = s
		case FieldPodHostNetwork:
			p.HostNetwork = r.Value[0] == 1
		case FieldPodHostPID:
			p.HostPID = r.Value[0] == 1
		case FieldPodHostIPC:
			p.HostIPC = r.Value[0] == 1
		case FieldPodHostUsers:
			p.HostUsers = boolPtr(r.Value)
		case FieldPodOS:
			p.OS = s
		case FieldPodServiceAccount:
			p.ServiceAccount = s
		case FieldPodRunAsNonRoot:
			p.RunAsNonRoot = boolPtr(r.Value)
		case FieldPodRunAsUser:
			p.RunAsUser = intPtr(r.Value)
		case FieldPodRunAsGroup:
			p.RunAsGroup = intPtr(r.Value)
		case FieldPodSeccomp:
			p.Seccomp = &s
		case FieldPodAppArmor:
			p.AppArmor = &s
		case FieldPodSELinuxUser:
			selinux(&p.SELinux).User = s
		case FieldPodSELinuxRole:
			selinux(&p.SELinux).Role = s
		case FieldPodSELinuxType:
			selinux(&p.SELinux).Type = s
		case FieldPodSELinuxLevel:
			selinux(&p.SELinux).Level = s
		case FieldPodSysctls:
			p.Sysctls = strList(r.Value)
		case FieldPodWinHostProcess:
			p.WindowsHostProcess = boolPtr(r.Value)
		case FieldPodAnnotations:
			p.Annotations = strList(r.Value)
		case FieldPodLabels:
			p.Labels = strList(r.Value)
		case FieldPodVolumeCount:
			n := binary.LittleEndian.Uint64(r.Value)
			if n > 0xffff {
				return nil, fmt.Errorf("admission: %d volumes: %w", n, ErrBadLength)
			}
			p.Volumes = make([]AdmissionVolume, n)
		case FieldPodContainerCount:
			n := binary.LittleEndian.Uint64(r.Value)
			if n > 0xffff {
				return nil, fmt.Errorf("admission: %d containers: %w", n, ErrBadLength)
			}
			p.Containers = make([]AdmissionContainer, n)
		case FieldPodSELinuxSet:
			if r.Value[0] == 1 {
				selinux(&p.SELinux)
			}
		case FieldVolName:
			v.Name = s
		case FieldVolType:
			v.Type = s
		case FieldVolHostPath:
			v.HostPath = s
		case FieldCtrName:
			c.Name = s
		case FieldCtrKind:
			c.Kind = s
		case FieldCtrImage:
			c.Image = s
		case FieldCtrCommand:
			c.Command = strList(r.Value)
		case FieldCtrArgs:
			c.Args = strList(r.Value)
		case FieldCtrPorts:
			c.Ports = strList(r.Value)
		case FieldCtrHostPorts:
			c.HostPorts = strList(r.Value)
		case FieldCtrProbeHosts:
			c.ProbeHosts = strList(r.Value)
		case FieldCtrExecCommands:
			c.ExecCommands = strList(r.Value)
		case FieldCtrPrivileged:
			c.Privileged = boolPtr(r.Value)
		case FieldCtrAllowPrivEsc:
			c.AllowPrivilegeEscalation = boolPtr(r.Value)
		case FieldCtrCapsAdd:
			c.CapsAdd = strList(r.Value)
		case FieldCtrCapsDrop:
			c.CapsDrop = strList(r.Value)
		case FieldCtrRunAsNonRoot:
			c.RunAsNonRoot = boolPtr(r.Value)
		case FieldCtrRunAsUser:
			c.RunAsUser = intPtr(r.Value)
		case FieldCtrRunAsGroup:
			c.RunAsGroup = intPtr(r.Value)
		case FieldCtrReadOnlyRoot:
			c.ReadOnlyRootFilesystem = boolPtr(r.Value)
		case FieldCtrProcMount:
			c.ProcMount = &s
		case FieldCtrSeccomp:
			c.Seccomp = &s
		case FieldCtrAppArmor:
			c.AppArmor = &s
		case FieldCtrSELinuxUser:
			selinux(&c.SELinux).User = s
		case FieldCtrSELinuxRole:
			selinux(&c.SELinux).Role = s
		case FieldCtrSELinuxType:
			selinux(&c.SELinux).Type = s
		case FieldCtrSELinuxLevel:
			selinux(&c.SELinux).Level = s
		case FieldCtrWinHostProc:
			c.WindowsHostProcess = boolPtr(r.Value)
		case FieldCtrSELinuxSet:
			if r.Value[0] == 1 {
				selinux(&c.SELinux)
			}
		}
	}
	return a, nil
}

func selinux(p **SELinux) *SELinux {
	if *p == nil {
		*p = &SELinux{}
	}
	return *p
}

func strList(v []byte) []string {
	l, _ := SplitStrList(v) // validated by checkValue
	return l
}

func boolPtr(v []byte) *bool {
	b := v[0] == 1
	return &b
}

func intPtr(v []byte) *int64 {
	i := int64(binary.LittleEndian.Uint64(v))
	return &i
}
