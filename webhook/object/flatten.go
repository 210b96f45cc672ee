package object

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/vigilsec/vigil/guard/event"
)

// lastApplied is kubectl's copy of the whole manifest: large, and nothing a
// rule should decide on.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Flatten fills a's pod facts from the template (a's request facts are the
// caller's). Containers are visited init, regular, ephemeral, like the Pod
// Security Standards do.
func (t *Template) Flatten(a *event.Admission) {
	a.Workload, a.Revision = t.Workload, t.Revision
	s := t.Spec
	p := &a.Pod
	p.HostNetwork, p.HostPID, p.HostIPC = s.HostNetwork, s.HostPID, s.HostIPC
	p.HostUsers = s.HostUsers
	if s.OS != nil {
		p.OS = string(s.OS.Name)
	}
	p.ServiceAccount = s.ServiceAccountName
	if sc := s.SecurityContext; sc != nil {
		p.RunAsNonRoot, p.RunAsUser, p.RunAsGroup = sc.RunAsNonRoot, sc.RunAsUser, sc.RunAsGroup
		if sc.SeccompProfile != nil {
			v := string(sc.SeccompProfile.Type)
			p.Seccomp = &v
		}
		if sc.AppArmorProfile != nil {
			v := string(sc.AppArmorProfile.Type)
			p.AppArmor = &v
		}
		p.SELinux = selinux(sc.SELinuxOptions)
		for _, c := range sc.Sysctls {
			p.Sysctls = append(p.Sysctls, c.Name)
		}
		if sc.WindowsOptions != nil {
			p.WindowsHostProcess = sc.WindowsOptions.HostProcess
		}
	}
	p.Annotations = sortedPairs(t.PodMeta.Annotations, lastApplied)
	p.Labels = sortedPairs(t.PodMeta.Labels, "")

	p.Volumes = make([]event.AdmissionVolume, len(s.Volumes))
	for i := range s.Volumes {
		v := &s.Volumes[i]
		p.Volumes[i] = event.AdmissionVolume{Name: v.Name, Type: VolumeType(&v.VolumeSource)}
		if v.HostPath != nil {
			p.Volumes[i].HostPath = v.HostPath.Path
		}
	}

	p.Containers = make([]event.AdmissionContainer, 0, len(s.InitContainers)+len(s.Containers)+len(s.EphemeralContainers))
	for i := range s.InitContainers {
		p.Containers = append(p.Containers, flattenContainer(&s.InitContainers[i], event.ContainerInit))
	}
	for i := range s.Containers {
		p.Containers = append(p.Containers, flattenContainer(&s.Containers[i], event.ContainerRegular))
	}
	for i := range s.EphemeralContainers {
		c := (*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon)
		p.Containers = append(p.Containers, flattenContainer(c, event.ContainerEphemeral))
	}
}

func selinux(o *corev1.SELinuxOptions) *event.SELinux {
	if o == nil {
		return nil
	}
	return &event.SELinux{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

func flattenContainer(c *corev1.Container, kind string) event.AdmissionContainer {
	out := event.AdmissionContainer{Name: c.Name, Kind: kind, Image: c.Image, Command: c.Command, Args: c.Args}
	for _, p := range c.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		out.Ports = append(out.Ports, strconv.Itoa(int(p.ContainerPort))+"/"+proto)
		if p.HostPort != 0 {
			out.HostPorts = append(out.HostPorts, strconv.Itoa(int(p.HostPort))+"/"+proto)
		}
	}
	for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if pr != nil {
			out.ProbeHosts = appendHandlerHosts(out.ProbeHosts, pr.HTTPGet, pr.TCPSocket)
			if pr.Exec != nil && len(pr.Exec.Command) > 0 {
				out.ExecCommands = append(out.ExecCommands, pr.Exec.Command[0])
			}
		}
	}
	if lc := c.Lifecycle; lc != nil {
		for _, h := range []*corev1.LifecycleHandler{lc.PostStart, lc.PreStop} {
			if h != nil {
				out.ProbeHosts = appendHandlerHosts(out.ProbeHosts, h.HTTPGet, h.TCPSocket)
				if h.Exec != nil && len(h.Exec.Command) > 0 {
					out.ExecCommands = append(out.ExecCommands, h.Exec.Command[0])
				}
			}
		}
	}
	sc := c.SecurityContext
	if sc == nil {
		return out
	}
	out.Privileged, out.AllowPrivilegeEscalation = sc.Privileged, sc.AllowPrivilegeEscalation
	if sc.Capabilities != nil {
		out.CapsAdd = capNames(sc.Capabilities.Add)
		out.CapsDrop = capNames(sc.Capabilities.Drop)
	}
	out.RunAsNonRoot, out.RunAsUser, out.RunAsGroup = sc.RunAsNonRoot, sc.RunAsUser, sc.RunAsGroup
	out.ReadOnlyRootFilesystem = sc.ReadOnlyRootFilesystem
	if sc.ProcMount != nil {
		v := string(*sc.ProcMount)
		out.ProcMount = &v
	}
	if sc.SeccompProfile != nil {
		v := string(sc.SeccompProfile.Type)
		out.Seccomp = &v
	}
	if sc.AppArmorProfile != nil {
		v := string(sc.AppArmorProfile.Type)
		out.AppArmor = &v
	}
	out.SELinux = selinux(sc.SELinuxOptions)
	if sc.WindowsOptions != nil {
		out.WindowsHostProcess = sc.WindowsOptions.HostProcess
	}
	return out
}

func appendHandlerHosts(dst []string, h *corev1.HTTPGetAction, t *corev1.TCPSocketAction) []string {
	if h != nil && h.Host != "" {
		dst = append(dst, h.Host)
	}
	if t != nil && t.Host != "" {
		dst = append(dst, t.Host)
	}
	return dst
}

func capNames(cs []corev1.Capability) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// VolumeType names a volume's source by its API field name. A volume with
// no source is an emptyDir, as the API server's defaulting
// (SetDefaults_Volume) makes it; "unknown" is a source this code does not
// know.
func VolumeType(v *corev1.VolumeSource) string {
	if (*v == corev1.VolumeSource{}) {
		return "emptyDir"
	}
	switch {
	case v.HostPath != nil:
		return "hostPath"
	case v.EmptyDir != nil:
		return "emptyDir"
	case v.ConfigMap != nil:
		return "configMap"
	case v.Secret != nil:
		return "secret"
	case v.Projected != nil:
		return "projected"
	case v.DownwardAPI != nil:
		return "downwardAPI"
	case v.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case v.CSI != nil:
		return "csi"
	case v.Ephemeral != nil:
		return "ephemeral"
	case v.Image != nil:
		return "image"
	case v.GCEPersistentDisk != nil:
		return "gcePersistentDisk"
	case v.AWSElasticBlockStore != nil:
		return "awsElasticBlockStore"
	case v.GitRepo != nil:
		return "gitRepo"
	case v.NFS != nil:
		return "nfs"
	case v.ISCSI != nil:
		return "iscsi"
	case v.Glusterfs != nil:
		return "glusterfs"
	case v.RBD != nil:
		return "rbd"
	case v.FlexVolume != nil:
		return "flexVolume"
	case v.Cinder != nil:
		return "cinder"
	case v.CephFS != nil:
		return "cephfs"
	case v.Flocker != nil:
		return "flocker"
	case v.FC != nil:
		return "fc"
	case v.AzureFile != nil:
		return "azureFile"
	case v.VsphereVolume != nil:
		return "vsphereVolume"
	case v.Quobyte != nil:
		return "quobyte"
	case v.AzureDisk != nil:
		return "azureDisk"
	case v.PhotonPersistentDisk != nil:
		return "photonPersistentDisk"
	case v.PortworxVolume != nil:
		return "portworxVolume"
	case v.ScaleIO != nil:
		return "scaleIO"
	case v.StorageOS != nil:
		return "storageos"
	}
	return "unknown"
}
