// Package cluster runs a real, throwaway single-machine Kubernetes cluster
// for Vigil's end-to-end tests: Debian's etcd, the kube-apiserver, kubelet
// and kubectl that scripts/k8s-bins.sh builds from k8s.io/kubernetes
// (cached under /var/cache/vigil/k8s/<version>), and, on request, a node
// made of containerd's CRI plugin, runc and the Debian CNI plugins. It owns
// every process, file, mount and cgroup it creates and removes them in
// Stop.
//
// # Using it from a test
//
// E2e tests live under test/e2e/ behind the `e2e` build tag and run with
// `make e2e` (scripts/e2e.sh), which installs the system packages and
// builds or reuses the cached binaries first.
//
//	c := cluster.StartT(t, cluster.Options{Node: true})
//	c.Client        // client-go clientset with the admin (system:masters) identity
//	c.RESTConfig    // the same identity as a *rest.Config
//	c.Kubeconfig    // admin kubeconfig path, for kubectl or a binary under test
//	c.KubectlBin    // kubectl of the cluster's version (not /usr/bin/kubectl)
//	c.NodeName      // the one node ("vigil-e2e-node"); set spec.nodeName unless Options.Scheduler
//	c.CA            // CA the API server trusts: c.CA.Issue(CertSpec{...}) gives webhook certs
//	c.Apply(ctx, yaml)                  // kubectl apply -f -
//	c.Kubectl(ctx, "exec", "pod", "--", "echo", "hi")
//	c.WaitPodReady(ctx, ns, name)       // fails early on ErrImageNeverPull, CrashLoopBackOff, ...
//	c.EnsureNamespace(ctx, ns)          // also creates the default ServiceAccount and kube-root-ca.crt
//	c.LoadImage(ctx, cluster.NewStaticBinaryImage("vigil.local/vigil:e2e", "bin/vigil", "/vigil"))
//	c.RestartAPIServer(ctx)             // same port, same etcd; clients keep working
//	c.Logs("kube-apiserver", 50)        // tail of a component's log
//
// Start (without a test) takes a context and returns an error instead.
//
// Options: the zero value runs etcd and the API server only, enough for
// admission webhook tests. Node adds containerd and a kubelet and loads the
// pause and busybox images. Scheduler and ControllerManager add
// kube-scheduler and kube-controller-manager, which DaemonSets and
// Deployments need. Images are extra images to load into the node.
//
// # Notes
//
//   - No registry is reachable: pods must use BusyboxImage, PauseImage or an
//     image loaded with Options.Images or LoadImage, with
//     imagePullPolicy: Never.
//   - No controller-manager runs unless asked, so namespaces created with
//     kubectl lack the default ServiceAccount; use EnsureNamespace.
//   - Admission webhooks run on the test's host: register them with a
//     url clientConfig (https://127.0.0.1:PORT/...) and caBundle
//     c.CA.CertPEM, and a serving cert from c.CA.Issue with IP 127.0.0.1.
//   - There is no kube-proxy and no DNS; Service IPs do not route. The API
//     server runs with --enable-aggregator-routing, so a webhook behind a
//     Service (service clientConfig, as a Helm chart installs it) is called
//     at an endpoint's pod IP over the CNI bridge, with TLS verified for
//     the Service's DNS name; that needs Options.ControllerManager for the
//     Endpoints.
//   - One node cluster runs per machine at a time (a flock in /run/lock):
//     the kubelet owns host-wide names such as the /kubepods cgroups.
//     Control-plane-only clusters run in parallel freely.
//   - Pod network: the CNI ptp plugin on 10.213.64.0/24, no masquerade;
//     each pod gets a veth and a host route that go away with the pod.
//   - The kubelet runs with failCgroupV1: false (this host is cgroup
//     hybrid) and containerd with restrict_oom_score_adj (no
//     CAP_SYS_RESOURCE in the VM).
package cluster
