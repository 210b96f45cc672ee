package container

import (
	"strings"
	"testing"
)

const (
	cid  = "4e5c1d9f0a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
	cid2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid  = "8a3e5c0e-1b2d-4f6a-9c7e-0d1f2a3b4c5d"
	uidU = "8a3e5c0e_1b2d_4f6a_9c7e_0d1f2a3b4c5d"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		name string
		path string
		want PathInfo
	}{
		{"host root", "/", PathInfo{}},
		{"host service", "/system.slice/sshd.service", PathInfo{}},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", PathInfo{}},
		{"empty", "", PathInfo{}},

		// Docker.
		{"docker cgroupfs", "/docker/" + cid, PathInfo{Runtime: RuntimeDocker, ID: cid}},
		{"docker systemd", "/system.slice/docker-" + cid + ".scope", PathInfo{Runtime: RuntimeDocker, ID: cid}},
		{"docker systemd nested init.scope", "/system.slice/docker-" + cid + ".scope/init.scope", PathInfo{Runtime: RuntimeDocker, ID: cid}},
		{"docker short id is not an id", "/docker/4e5c1d9f0a8b", PathInfo{}},
		{"docker uppercase is not an id", "/docker/" + strings.ToUpper(cid), PathInfo{}},

		// containerd.
		{"containerd k8s.io namespace", "/k8s.io/" + cid, PathInfo{Runtime: RuntimeContainerd, ID: cid, Namespace: "k8s.io"}},
		{"containerd default namespace needs state dir", "/default/mybox", PathInfo{}},

		// Kubernetes, systemd driver, every QoS class and runtime.
		{"k8s systemd burstable containerd",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			PathInfo{Runtime: RuntimeContainerd, ID: cid, PodUID: uid, QoS: QoSBurstable}},
		{"k8s systemd besteffort crio",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + cid + ".scope",
			PathInfo{Runtime: RuntimeCRIO, ID: cid, PodUID: uid, QoS: QoSBestEffort}},
		{"k8s systemd guaranteed docker (cri-dockerd)",
			"/kubepods.slice/kubepods-pod" + uidU + ".slice/docker-" + cid + ".scope",
			PathInfo{Runtime: RuntimeDocker, ID: cid, PodUID: uid, QoS: QoSGuaranteed}},
		{"k8s systemd pod slice only",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice",
			PathInfo{PodUID: uid, QoS: QoSBurstable}},
		{"k8s systemd crio conmon is not a container",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope",
			PathInfo{PodUID: uid, QoS: QoSBestEffort}},
		{"k8s systemd under kubelet.slice (kind)",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
			PathInfo{Runtime: RuntimeContainerd, ID: cid, PodUID: uid, QoS: QoSBestEffort}},

		// Kubernetes, cgroupfs driver.
		{"k8s cgroupfs besteffort", "/kubepods/besteffort/pod" + uid + "/" + cid,
			PathInfo{ID: cid, PodUID: uid, QoS: QoSBestEffort}},
		{"k8s cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + cid,
			PathInfo{ID: cid, PodUID: uid, QoS: QoSBurstable}},
		{"k8s cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + cid,
			PathInfo{ID: cid, PodUID: uid, QoS: QoSGuaranteed}},
		{"k8s cgroupfs crio", "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			PathInfo{Runtime: RuntimeCRIO, ID: cid, PodUID: uid, QoS: QoSBurstable}},
		{"k8s cgroupfs static pod hash uid", "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + cid,
			PathInfo{ID: cid, PodUID: "0123456789abcdef0123456789abcdef", QoS: QoSBurstable}},
		{"k8s cgroupfs pod not under kubepods", "/other/pod" + uid + "/" + cid, PathInfo{}},
		{"k8s systemd bad uid", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnotauid.slice", PathInfo{}},

		// Nesting: kind nodes are docker containers running kubepods.
		{"docker in docker kubepods", "/docker/" + cid2 + "/kubepods/besteffort/pod" + uid + "/" + cid,
			PathInfo{ID: cid, PodUID: uid, QoS: QoSBestEffort}},
		{"kind node itself", "/docker/" + cid2 + "/system.slice/containerd.service", PathInfo{Runtime: RuntimeDocker, ID: cid2}},

		// cri-o, podman.
		{"crio systemd outside k8s", "/machine.slice/crio-" + cid + ".scope", PathInfo{Runtime: RuntimeCRIO, ID: cid}},
		{"podman root", "/machine.slice/libpod-" + cid + ".scope", PathInfo{Runtime: RuntimePodman, ID: cid}},
		{"podman rootless",
			"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope/container",
			PathInfo{Runtime: RuntimePodman, ID: cid}},
		{"podman conmon", "/machine.slice/libpod-conmon-" + cid + ".scope", PathInfo{}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + cid, PathInfo{Runtime: RuntimePodman, ID: cid}},
		{"podman pod slice", "/machine.slice/machine-libpod_pod_" + cid2 + ".slice/libpod-" + cid + ".scope",
			PathInfo{Runtime: RuntimePodman, ID: cid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParsePath(tt.path)
			if got != tt.want {
				t.Fatalf("ParsePath(%q)\n got  %+v\n want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/", "/docker/" + cid, "/system.slice/docker-" + cid + ".scope",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
		"/kubepods/besteffort/pod" + uid + "/" + cid, "/kubepods/pod" + uid + "/crio-" + cid,
		"//", "/pod/", "kubepods-pod.slice", "/libpod_parent/libpod-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		info := ParsePath(path)
		if info.ID != "" && !isHexID(info.ID) {
			t.Fatalf("non-hex container id %q from %q", info.ID, path)
		}
		if info.ID != "" && !strings.Contains(path, info.ID) {
			t.Fatalf("id %q not in path %q", info.ID, path)
		}
		if info.PodUID != "" && info.QoS == "" {
			t.Fatalf("pod %q without QoS from %q", info.PodUID, path)
		}
		if info.Runtime != "" && info.ID == "" {
			t.Fatalf("runtime %q without id from %q", info.Runtime, path)
		}
		if info.Namespace != "" && info.Runtime != RuntimeContainerd {
			t.Fatalf("namespace %q for runtime %q", info.Namespace, info.Runtime)
		}
	})
}
