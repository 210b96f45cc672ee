package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/internal/ociimage"
)

// Pod network. ptp (one veth and one /32 host route per pod, no bridge, no
// masquerade) changes the least on the host, and everything it adds goes
// away with the pod's network namespace. The subnet is deliberately odd.
const (
	podSubnet   = "10.213.64.0/24"
	cniNetwork  = "vigil-e2e"
	nodeLockDir = "/run/lock"
)

// node is containerd plus a kubelet registered as NodeName.
type node struct {
	name       string
	dir        string
	sock       string
	ctr        string
	containerd *proc
	kubelet    *proc
	lock       *os.File
	// ownsHostKubeletDir: /var/lib/kubelet did not exist before our kubelet.
	ownsHostKubeletDir bool
}

const hostKubeletDir = "/var/lib/kubelet"

func startNode(ctx context.Context, c *Cluster) (n *node, err error) {
	containerdBin, err := lookTool("containerd")
	if err != nil {
		return nil, err
	}
	ctrBin, err := lookTool("ctr")
	if err != nil {
		return nil, err
	}
	if _, err := lookTool("runc"); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		return nil, fmt.Errorf("%w: CNI plugins in /usr/lib/cni (run scripts/deps.sh k8s): %v", ErrBinaryMissing, err)
	}
	if _, err := os.Stat(BusyboxStatic); err != nil {
		return nil, fmt.Errorf("%w: %s (run scripts/deps.sh base): %v", ErrBinaryMissing, BusyboxStatic, err)
	}

	dir := filepath.Join(c.Dir, "node")
	n = &node{name: nodeName, dir: dir, sock: filepath.Join(dir, "run", "containerd.sock"), ctr: ctrBin}
	// Cleanup of a half-started node is the caller's Stop, which needs n.
	c.node = n

	// A kubelet owns host-wide things (the /kubepods cgroups, the node
	// name, /var/log/containers): one node cluster at a time per machine.
	c.logf("cluster: waiting for the node lock %s", filepath.Join(nodeLockDir, "vigil-e2e-node.lock"))
	if n.lock, err = lockFile(ctx, filepath.Join(nodeLockDir, "vigil-e2e-node.lock")); err != nil {
		return n, err
	}
	for _, d := range []string{"root", "state", "run", "opt", "runc", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return n, err
		}
	}
	if err := n.writeConfigs(c); err != nil {
		return n, err
	}

	n.containerd = newProc(c.Dir, "containerd", containerdBin, "--config", filepath.Join(dir, "containerd.toml"))
	c.logf("cluster: starting containerd (socket %s)", n.sock)
	if err := n.containerd.start(); err != nil {
		return n, err
	}
	if err := c.waitFor(ctx, n.containerd, "containerd", func(ctx context.Context) error {
		_, err := n.ctrRun(ctx, "version")
		return err
	}); err != nil {
		return n, err
	}

	st := time.Now()
	if err := n.loadImages(ctx, c); err != nil {
		return n, err
	}
	c.logf("cluster: images loaded in %s", time.Since(st).Round(time.Millisecond))

	// The kubelet hard-codes /var/lib/kubelet/device-plugins; remove it in
	// stop only if this run created it.
	if _, err := os.Stat(hostKubeletDir); errors.Is(err, os.ErrNotExist) {
		n.ownsHostKubeletDir = true
	}
	n.kubelet = newProc(c.Dir, "kubelet", filepath.Join(c.opts.BinDir, "kubelet"),
		"--config="+filepath.Join(dir, "kubelet.yaml"),
		"--kubeconfig="+filepath.Join(c.Dir, "kubelet.kubeconfig"),
		"--container-runtime-endpoint=unix://"+n.sock,
		"--root-dir="+filepath.Join(dir, "kubelet"),
		"--node-ip="+c.NodeIP,
		"--hostname-override="+n.name,
	)
	c.logf("cluster: starting kubelet as node %s (%s)", n.name, c.NodeIP)
	if err := n.kubelet.start(); err != nil {
		return n, err
	}
	err = c.waitFor(ctx, n.kubelet, "node Ready", func(ctx context.Context) error {
		nd, err := c.Client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range nd.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s: %s", cond.Reason, cond.Message)
			}
		}
		return errors.New("node has no Ready condition yet")
	})
	if err != nil {
		return n, fmt.Errorf("%w\ncontainerd log:\n%s", err, n.containerd.tail(20))
	}
	return n, nil
}

func (n *node) writeConfigs(c *Cluster) error {
	containerd := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # The VM lacks CAP_SYS_RESOURCE, so lowering oom_score_adj fails.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Keep network namespaces under our state dir, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.sock, filepath.Join(n.dir, "opt"),
		PauseImage, filepath.Join(n.dir, "runc"), filepath.Join(n.dir, "cni/net.d"))
	if err := os.WriteFile(filepath.Join(n.dir, "containerd.toml"), []byte(containerd), 0o644); err != nil {
		return err
	}

	cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    }
  ]
}
`, cniNetwork, podSubnet, filepath.Join(n.dir, "cni/ipam"))
	if err := os.WriteFile(filepath.Join(n.dir, "cni/net.d/10-vigil-e2e.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}

	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	pki := filepath.Join(c.Dir, "pki")
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host mounts cgroup v1 controllers next to cgroup2 (hybrid).
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[3]d
tlsCertFile: %[4]s/kubelet-serving.crt
tlsPrivateKeyFile: %[4]s/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %[4]s/ca.crt
authorization:
  mode: AlwaysAllow
podLogsDir: %[5]s
resolvConf: ""
clusterDomain: cluster.local
# Tests share a busy disk; never evict or garbage-collect their images.
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
serializeImagePulls: false
# The kubelet's KUBE-FIREWALL and hint chains serve kube-proxy, which does
# not run here; without this the host keeps iptables rules after Stop.
makeIPTablesUtilChains: false
`, c.NodeIP, ports[0], ports[1], pki, filepath.Join(n.dir, "pod-logs"))
	return os.WriteFile(filepath.Join(n.dir, "kubelet.yaml"), []byte(kubelet), 0o644)
}

// loadImages builds the pause, busybox and caller images and imports them
// into containerd's k8s.io namespace, where the CRI plugin looks.
func (n *node) loadImages(ctx context.Context, c *Cluster) error {
	imgDir := filepath.Join(n.dir, "images")
	pauseBin := filepath.Join(imgDir, "pause")
	if err := buildPause(ctx, pauseBin); err != nil {
		return err
	}
	pause := NewStaticBinaryImage(PauseImage, pauseBin, "/pause")
	busybox, err := NewBusyboxImage(BusyboxImage, BusyboxStatic)
	if err != nil {
		return err
	}
	for _, img := range append([]Image{pause, busybox}, c.opts.Images...) {
		if err := n.importImage(ctx, img); err != nil {
			return err
		}
	}
	for _, a := range c.opts.ImageArchives {
		ref, err := ociimage.ArchiveRef(a)
		if err != nil {
			return fmt.Errorf("image archive %s: %w", a, err)
		}
		if err := n.importArchive(ctx, a, ref); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) importImage(ctx context.Context, img Image) error {
	tarball, err := writeImage(filepath.Join(n.dir, "images"), img)
	if err != nil {
		return fmt.Errorf("pack image %s: %w", img.Ref, err)
	}
	return n.importArchive(ctx, tarball, img.Ref)
}

// importArchive imports an OCI layout tarball and checks that containerd
// then lists ref.
func (n *node) importArchive(ctx context.Context, tarball, ref string) error {
	if _, err := n.ctrRun(ctx, "-n", "k8s.io", "images", "import", "--platform", "linux/"+runtime.GOARCH, tarball); err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	out, err := n.ctrRun(ctx, "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return err
	}
	for _, l := range strings.Fields(out) {
		if l == ref {
			return nil
		}
	}
	return fmt.Errorf("import image %s: containerd lists only %q", ref, out)
}

// LoadImage packs img and imports it into the node's containerd, for
// images built after Start (for example one holding a freshly built binary).
func (c *Cluster) LoadImage(ctx context.Context, img Image) error {
	if c.node == nil {
		return errors.New("load image: cluster has no node (Options.Node)")
	}
	return c.node.importImage(ctx, img)
}

func (n *node) ctrRun(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.ctr, append([]string{"--address", n.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// stop removes the node's pods the way a kubelet would (so CNI DEL runs and
// veths and host routes go away), then stops the kubelet and containerd and
// kills what remains: task processes, shims, mounts and pod cgroups.
func (n *node) stop(c *Cluster) error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if n.kubelet != nil && c.Client != nil {
		if done, _ := n.kubelet.exited(); !done {
			n.drainPods(ctx, c)
		}
	}
	if n.kubelet != nil {
		n.kubelet.stop(10 * time.Second)
	}
	if n.containerd != nil {
		if done, _ := n.containerd.exited(); !done {
			n.removeSandboxes(ctx)
		}
		n.containerd.stop(10 * time.Second)
	}
	errs = append(errs, killShims(n.sock))
	errs = append(errs, unmountUnder(n.dir))
	errs = append(errs, removePodCgroups())
	removeContainerLogLinks(n.dir)
	if n.ownsHostKubeletDir {
		_ = os.RemoveAll(hostKubeletDir)
	}
	if n.lock != nil {
		n.lock.Close() // releases the flock
		n.lock = nil
	}
	return errors.Join(errs...)
}

// drainPods force-deletes every pod and waits until containerd runs no
// task, giving the kubelet the chance to tear down sandboxes (and their CNI
// attachments) itself.
func (n *node) drainPods(ctx context.Context, c *Cluster) {
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	zero := int64(0)
	for _, ns := range nss.Items {
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := n.ctrRun(ctx, "-n", "k8s.io", "tasks", "ls")
		if err != nil || !strings.Contains(out, "RUNNING") {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.logf("cluster: kubelet did not stop every pod in 30s; killing tasks")
}

// removeSandboxes kills and deletes every remaining task and container, so
// their shims exit and release mounts.
func (n *node) removeSandboxes(ctx context.Context) {
	out, err := n.ctrRun(ctx, "-n", "k8s.io", "tasks", "ls", "-q")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(out) {
		_, _ = n.ctrRun(ctx, "-n", "k8s.io", "tasks", "kill", "-a", "-s", "SIGKILL", id)
	}
	for _, id := range strings.Fields(out) {
		_, _ = n.ctrRun(ctx, "-n", "k8s.io", "tasks", "delete", "-f", id)
	}
}

// killShims SIGKILLs containerd-shim processes serving our socket. Shims
// daemonize out of containerd's process group, so stopping containerd does
// not end them; they are found by the -address flag naming our socket.
func killShims(sock string) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for _, a := range args {
			if a == sock {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return nil
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removePodCgroups removes the kubelet's /kubepods tree in every cgroup
// hierarchy once its processes are gone. Only the kubelet started here
// creates it (the node lock guarantees there is one at a time).
func removePodCgroups() error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if st, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil && st.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/kubepods")
	}
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			killCgroup(d)
			var err error
			for range 20 {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs every process still in cgroup dir (a container whose
// shim was killed can survive it).
func killCgroup(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeContainerLogLinks deletes the kubelet's /var/log/containers
// symlinks (a path the kubelet hard-codes) that point into our directory.
func removeContainerLogLinks(dir string) {
	ents, err := os.ReadDir("/var/log/containers")
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join("/var/log/containers", e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			_ = os.Remove(p)
		}
	}
}

// lockFile takes an exclusive flock on path, polling so ctx can cancel.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
