package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultVersion is the Kubernetes release scripts/k8s-bins.sh builds.
const DefaultVersion = "v1.37.2"

// Sentinel errors callers may test with errors.Is.
var (
	// ErrBinaryMissing means a Kubernetes or system binary is absent;
	// scripts/e2e.sh (scripts/k8s-bins.sh, scripts/deps.sh k8s) installs them.
	ErrBinaryMissing = errors.New("binary missing")
	// ErrNotReady means a component started but did not become ready in time.
	ErrNotReady = errors.New("component not ready")
	// ErrStopped means the cluster was already stopped.
	ErrStopped = errors.New("cluster stopped")
)

// Options selects what Start runs. The zero value runs etcd and the API
// server only, which is enough for admission webhook tests.
type Options struct {
	// BinDir holds kube-apiserver, kubelet, kubectl, kube-scheduler and
	// kube-controller-manager. Default: $VIGIL_K8S_BIN, else
	// $CACHE/k8s/<DefaultVersion> with CACHE defaulting to /var/cache/vigil.
	BinDir string
	// Dir is the cluster's working directory (certs, etcd data, logs,
	// containerd and kubelet state). Default: a fresh temp dir, removed by
	// Stop unless KeepDir is set.
	Dir     string
	KeepDir bool
	// Node also starts containerd and a kubelet, registers a Ready node,
	// and loads the pause and busybox images.
	Node bool
	// Scheduler starts kube-scheduler, so pods need not set nodeName.
	Scheduler bool
	// ControllerManager starts kube-controller-manager (DaemonSets,
	// Deployments, service-account tokens, garbage collection).
	ControllerManager bool
	// Images are extra images loaded into the node's containerd.
	Images []Image
	// ImageArchives are OCI image-layout tarballs (such as `make image`
	// writes) imported into the node's containerd as they are.
	ImageArchives []string
	// Logf receives progress lines. Default: discard.
	Logf func(format string, args ...any)
	// ReadyTimeout bounds each readiness wait. Default 90 s, generous
	// because other builds share the machine's two cores.
	ReadyTimeout time.Duration
}

// Timings records how long each stage of Start took.
type Timings struct {
	Etcd, APIServer, Node, Total time.Duration
}

// Cluster is a running single-machine Kubernetes control plane and,
// optionally, one node. All fields are read-only after Start.
type Cluster struct {
	Dir        string
	Kubeconfig string // admin (system:masters) kubeconfig
	KubectlBin string // the kubectl built for this cluster's version
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	Server     string // https://127.0.0.1:PORT
	NodeName   string // empty without Options.Node
	NodeIP     string
	// CA signed every certificate in the cluster; the API server trusts
	// it, so webhook serving certs issued from it need only its caBundle.
	CA      *CA
	Timings Timings

	opts    Options
	logf    func(string, ...any)
	etcd    *proc
	apisrv  *proc
	sched   *proc
	kcm     *proc
	node    *node
	tmpDir  bool
	stopMu  sync.Mutex
	stopped bool
}

// Start brings the cluster up and returns once every requested component is
// ready. On failure it stops whatever it started and returns an error that
// carries the failing component's log tail.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	t0 := time.Now()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.BinDir == "" {
		opts.BinDir = DefaultBinDir()
	}
	bins := []string{"kube-apiserver", "kubectl"}
	if opts.Node {
		bins = append(bins, "kubelet")
	}
	if opts.Scheduler {
		bins = append(bins, "kube-scheduler")
	}
	if opts.ControllerManager {
		bins = append(bins, "kube-controller-manager")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s (run scripts/k8s-bins.sh): %v", ErrBinaryMissing, b, err)
		}
	}
	etcdBin, err := lookTool("etcd")
	if err != nil {
		return nil, err
	}

	c = &Cluster{opts: opts, logf: logf, KubectlBin: filepath.Join(opts.BinDir, "kubectl")}
	if opts.Dir == "" {
		// Short base path: containerd's socket must fit in sun_path.
		d, err := os.MkdirTemp("/tmp", "vigil-e2e-")
		if err != nil {
			return nil, err
		}
		opts.Dir, c.tmpDir = d, !opts.KeepDir
	}
	c.Dir = opts.Dir
	c.opts = opts
	// scripts/e2e.sh sweeps directories whose owner is dead (a test binary
	// killed by its timeout) and leaves live ones alone.
	if err := os.WriteFile(filepath.Join(c.Dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			logf("cluster: start failed, tearing down: %v", err)
			_ = c.Stop()
			c = nil
		}
	}()
	logf("cluster: dir %s, binaries %s", c.Dir, opts.BinDir)

	if c.NodeIP, err = primaryIP(); err != nil {
		return c, err
	}
	if err := c.writePKI(); err != nil {
		return c, fmt.Errorf("write pki: %w", err)
	}

	// etcd
	ports, err := freePorts(3)
	if err != nil {
		return c, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.etcd = newProc(c.Dir, "etcd", etcdBin,
		"--name=vigil-e2e",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=vigil-e2e="+peerURL,
		"--log-level=warn",
	)
	st := time.Now()
	logf("cluster: starting etcd on %s", etcdURL)
	if err := c.etcd.start(); err != nil {
		return c, err
	}
	if err := c.waitFor(ctx, c.etcd, "etcd healthy", func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, etcdURL+"/health")
	}); err != nil {
		return c, err
	}
	c.Timings.Etcd = time.Since(st)
	logf("cluster: etcd ready in %s", c.Timings.Etcd.Round(time.Millisecond))

	// kube-apiserver
	c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	pki := filepath.Join(c.Dir, "pki")
	c.apisrv = newProc(c.Dir, "kube-apiserver", filepath.Join(opts.BinDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address="+c.NodeIP,
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+filepath.Join(pki, "apiserver.crt"),
		"--tls-private-key-file="+filepath.Join(pki, "apiserver.key"),
		"--client-ca-file="+filepath.Join(pki, "ca.crt"),
		"--kubelet-client-certificate="+filepath.Join(pki, "apiserver-kubelet.crt"),
		"--kubelet-client-key="+filepath.Join(pki, "apiserver-kubelet.key"),
		"--kubelet-certificate-authority="+filepath.Join(pki, "ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-key-file="+filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		// An unusual range: no kube-proxy runs, so nothing routes it, and
		// it must not look like any network the host already uses.
		"--service-cluster-ip-range=10.213.128.0/24",
		// No controller-manager keeps the kubernetes Service's endpoints.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=Node,RBAC",
		// No kube-proxy or DNS routes Service IPs here, so the API server
		// calls admission webhooks (and aggregated APIs) behind a Service
		// at one of its endpoints' pod IPs, which the host reaches over
		// the CNI bridge. TLS is still verified against the Service's DNS
		// name. Endpoints come from kube-controller-manager
		// (Options.ControllerManager).
		"--enable-aggregator-routing=true",
		"--allow-privileged=true",
		"--profiling=false",
	)
	st = time.Now()
	logf("cluster: starting kube-apiserver on %s", c.Server)
	if err := c.apisrv.start(); err != nil {
		return c, err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return c, err
	}
	if err := c.writeKubeconfigs(); err != nil {
		return c, err
	}
	if c.RESTConfig, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return c, fmt.Errorf("load kubeconfig: %w", err)
	}
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return c, fmt.Errorf("clientset: %w", err)
	}
	for _, ns := range []string{"default", "kube-system"} {
		if err := c.EnsureNamespace(ctx, ns); err != nil {
			return c, err
		}
	}
	c.Timings.APIServer = time.Since(st)
	logf("cluster: kube-apiserver ready in %s", c.Timings.APIServer.Round(time.Millisecond))

	admin := filepath.Join(c.Dir, "admin.kubeconfig")
	if opts.Scheduler {
		c.sched = newProc(c.Dir, "kube-scheduler", filepath.Join(opts.BinDir, "kube-scheduler"),
			"--kubeconfig="+admin, "--authentication-kubeconfig="+admin, "--authorization-kubeconfig="+admin,
			"--leader-elect=false", "--secure-port=0")
		logf("cluster: starting kube-scheduler")
		if err := c.sched.start(); err != nil {
			return c, err
		}
	}
	if opts.ControllerManager {
		c.kcm = newProc(c.Dir, "kube-controller-manager", filepath.Join(opts.BinDir, "kube-controller-manager"),
			"--kubeconfig="+admin, "--authentication-kubeconfig="+admin, "--authorization-kubeconfig="+admin,
			"--leader-elect=false", "--secure-port=0",
			"--service-account-private-key-file="+filepath.Join(pki, "sa.key"),
			"--root-ca-file="+filepath.Join(pki, "ca.crt"),
			"--use-service-account-credentials=false")
		logf("cluster: starting kube-controller-manager")
		if err := c.kcm.start(); err != nil {
			return c, err
		}
	}

	if opts.Node {
		st = time.Now()
		if c.node, err = startNode(ctx, c); err != nil {
			return c, err
		}
		c.NodeName = c.node.name
		c.Timings.Node = time.Since(st)
		logf("cluster: node %s Ready in %s", c.NodeName, c.Timings.Node.Round(time.Millisecond))
	}
	c.Timings.Total = time.Since(t0)
	logf("cluster: up in %s (etcd %s, apiserver %s, node %s)", c.Timings.Total.Round(time.Millisecond),
		c.Timings.Etcd.Round(time.Millisecond), c.Timings.APIServer.Round(time.Millisecond), c.Timings.Node.Round(time.Millisecond))
	return c, nil
}

// DefaultBinDir is where scripts/k8s-bins.sh caches the binaries.
func DefaultBinDir() string {
	if d := os.Getenv("VIGIL_K8S_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("CACHE")
	if cache == "" {
		cache = "/var/cache/vigil"
	}
	return filepath.Join(cache, "k8s", DefaultVersion)
}

// Stop tears the cluster down: pods and node first (so CNI and mounts are
// released by their owners), then the control plane, then leftovers
// (mounts, cgroups, the working directory). It is safe to call twice; errors
// are collected, not fatal, so one stuck piece does not leak the rest.
func (c *Cluster) Stop() error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	// Controllers first, so nothing recreates the pods the node drains.
	for _, p := range []*proc{c.kcm, c.sched} {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
	if c.node != nil {
		errs = append(errs, c.node.stop(c))
	}
	for _, p := range []*proc{c.apisrv, c.etcd} {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
	if c.Dir != "" {
		errs = append(errs, unmountUnder(c.Dir))
		if c.tmpDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", c.Dir, err))
			}
		}
	}
	c.logf("cluster: stopped")
	return errors.Join(errs...)
}

// Close is Stop, for use with defer and io.Closer.
func (c *Cluster) Close() error { return c.Stop() }

// RestartAPIServer stops kube-apiserver and starts it again with the same
// flags, port and etcd data, and waits until it is ready. Clients built
// from Kubeconfig or RESTConfig keep working across the restart.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	st := time.Now()
	c.logf("cluster: restarting kube-apiserver")
	c.apisrv.stop(15 * time.Second)
	if err := c.apisrv.start(); err != nil {
		return err
	}
	if err := c.waitAPIServer(ctx); err != nil {
		return err
	}
	c.logf("cluster: kube-apiserver back in %s", time.Since(st).Round(time.Millisecond))
	return nil
}

// Logs returns the last n lines of a component's log: etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager, containerd or
// kubelet.
func (c *Cluster) Logs(component string, n int) string {
	return tailFile(filepath.Join(c.Dir, "logs", component+".log"), n)
}

// EnsureNamespace creates namespace ns if needed, plus what the missing
// controller-manager would otherwise add: the "default" ServiceAccount
// (the ServiceAccount admission plugin rejects pods without it) and the
// kube-root-ca.crt ConfigMap (every projected token volume mounts it).
func (c *Cluster) EnsureNamespace(ctx context.Context, ns string) error {
	deadline := time.Now().Add(c.opts.ReadyTimeout)
	for {
		err := c.ensureNamespace(ctx, ns)
		if err == nil {
			return nil
		}
		// The API server creates default and kube-system shortly after it
		// reports ready; retry while the namespace is still terminating or
		// being created.
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ensure namespace %s: %w", ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) ensureNamespace(ctx context.Context, ns string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = c.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data:       map[string]string{"ca.crt": string(c.CA.CertPEM)},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func (c *Cluster) writePKI() error {
	pki := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	ca, err := NewCA("vigil-e2e-ca")
	if err != nil {
		return err
	}
	c.CA = ca
	if err := os.WriteFile(filepath.Join(pki, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	nodeIP := net.ParseIP(c.NodeIP)
	specs := map[string]CertSpec{
		"apiserver": {CommonName: "kube-apiserver", Server: true,
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1), nodeIP, net.IPv4(10, 213, 128, 1)}},
		"admin":             {CommonName: "vigil-e2e-admin", Organization: []string{"system:masters"}, Client: true},
		"apiserver-kubelet": {CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Client: true},
		"kubelet":           {CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}, Client: true},
		"kubelet-serving":   {CommonName: nodeName, DNSNames: []string{nodeName, "localhost"}, IPs: []net.IP{nodeIP, net.IPv4(127, 0, 0, 1)}, Server: true},
	}
	for name, spec := range specs {
		if _, _, err := ca.issueFiles(pki, name, spec); err != nil {
			return err
		}
	}
	return writeServiceAccountKey(filepath.Join(pki, "sa.key"))
}

func (c *Cluster) writeKubeconfigs() error {
	pki := filepath.Join(c.Dir, "pki")
	c.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, pki, "admin"); err != nil {
		return err
	}
	return writeKubeconfig(filepath.Join(c.Dir, "kubelet.kubeconfig"), c.Server, pki, "kubelet")
}

func writeKubeconfig(path, server, pki, user string) error {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(pki, name))
		return string(b), err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return err
	}
	crt, err := read(user + ".crt")
	if err != nil {
		return err
	}
	key, err := read(user + ".key")
	if err != nil {
		return err
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: vigil-e2e
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: vigil-e2e
  context:
    cluster: vigil-e2e
    user: %s
current-context: vigil-e2e
`, server, b64(ca), user, b64(crt), b64(key), user)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// waitAPIServer polls /readyz with the admin client cert.
func (c *Cluster) waitAPIServer(ctx context.Context) error {
	pki := filepath.Join(c.Dir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.CA.Cert)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
	defer hc.CloseIdleConnections()
	return c.waitFor(ctx, c.apisrv, "kube-apiserver /readyz", func(ctx context.Context) error {
		return httpOK(ctx, hc, c.Server+"/readyz")
	})
}

// waitFor polls ready every 100 ms until it succeeds, p exits, the context
// ends or ReadyTimeout passes. The error carries p's log tail.
func (c *Cluster) waitFor(ctx context.Context, p *proc, what string, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	var last error
	for {
		if done, why := p.exited(); done {
			return fmt.Errorf("%w: %s: %s exited (%v); last log lines:\n%s", ErrNotReady, what, p.name, why, p.tail(40))
		}
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		last = ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s after %s: %v; last %s log lines:\n%s", ErrNotReady, what, c.opts.ReadyTimeout, last, p.name, p.tail(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func httpOK(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// freePorts asks the kernel for n distinct free TCP ports on 127.0.0.1.
// They are released before use, so another process could take one in
// between; the component then fails to bind and Start reports its log.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// primaryIP is the source address of the default route: the kubelet
// refuses a loopback node IP, and the API server must reach the kubelet on
// it. Connecting a UDP socket sends nothing.
func primaryIP() (string, error) {
	conn, err := net.Dial("udp4", "192.0.2.255:9")
	if err == nil {
		defer conn.Close()
		if ip := conn.LocalAddr().(*net.UDPAddr).IP; !ip.IsLoopback() {
			return ip.String(), nil
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no non-loopback IPv4 address for the node")
}

// lookTool finds a system binary (etcd, containerd, ctr, runc) on PATH or
// in the sbin directories a non-login root shell may lack.
func lookTool(name string) (string, error) {
	for _, dir := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/sbin", "/usr/bin") {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (run scripts/deps.sh k8s)", ErrBinaryMissing, name)
}

// nodeName is fixed: one node cluster runs at a time (see nodeLock).
const nodeName = "vigil-e2e-node"
