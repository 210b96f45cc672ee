//go:build e2e

// Package e2e holds Vigil's end-to-end tests against a real cluster started
// by internal/cluster. Run them with `make e2e`.
package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilsec/vigil/internal/cluster"
	"github.com/vigilsec/vigil/internal/privtest"
)

// TestClusterSmoke proves the harness gives a working cluster: the node is
// Ready, a busybox pod pinned to it runs, and kubectl exec reaches it
// through the API server, the kubelet and containerd's stream server.
func TestClusterSmoke(t *testing.T) {
	privtest.RequireRoot(t)
	c := cluster.StartT(t, cluster.Options{Node: true})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	t.Logf("timings: etcd %s, apiserver ready %s, node Ready %s, total %s",
		c.Timings.Etcd, c.Timings.APIServer, c.Timings.Node, c.Timings.Total)

	out, err := c.Kubectl(ctx, "version", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "gitVersion: "+cluster.DefaultVersion) {
		t.Fatalf("kubectl version does not report %s for client and server:\n%s", cluster.DefaultVersion, out)
	}

	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 || nodes.Items[0].Name != c.NodeName {
		t.Fatalf("want exactly node %s, got %d nodes", c.NodeName, len(nodes.Items))
	}

	const ns = "smoke"
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	st := time.Now()
	err = c.Apply(ctx, `apiVersion: v1
kind: Pod
metadata:
  name: busybox
  namespace: smoke
spec:
  nodeName: `+c.NodeName+`
  terminationGracePeriodSeconds: 0
  containers:
  - name: sh
    image: `+cluster.BusyboxImage+`
    imagePullPolicy: Never
    command: ["sleep", "3600"]
`)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := c.WaitPodReady(ctx, ns, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod Ready %s after apply, IP %s", time.Since(st).Round(time.Millisecond), pod.Status.PodIP)
	if pod.Status.PodIP == "" || !strings.HasPrefix(pod.Status.PodIP, "10.213.64.") {
		t.Errorf("pod IP %q is not from the cluster's pod subnet 10.213.64.0/24", pod.Status.PodIP)
	}
	if pod.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %s, want Running", pod.Status.Phase)
	}

	st = time.Now()
	out, err = c.Kubectl(ctx, "-n", ns, "exec", "busybox", "--", "sh", "-c", "echo hello-from-$(hostname)")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "hello-from-busybox" {
		t.Fatalf("exec output %q, want hello-from-busybox", got)
	}
	t.Logf("kubectl exec round trip %s", time.Since(st).Round(time.Millisecond))

	// A failing command must surface as a failure, not as empty output.
	if _, err := c.Kubectl(ctx, "-n", ns, "exec", "busybox", "--", "sh", "-c", "exit 3"); err == nil {
		t.Fatal("kubectl exec of `exit 3` succeeded")
	}
}

// TestAPIServerRestart checks that RestartAPIServer keeps the cluster's
// state and that clients reconnect, which the webhook e2e relies on.
func TestAPIServerRestart(t *testing.T) {
	privtest.RequireRoot(t)
	c := cluster.StartT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := c.EnsureNamespace(ctx, "before-restart"); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().ServiceAccounts("before-restart").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("state lost across restart: %v", err)
	}
	if _, err := c.Kubectl(ctx, "get", "ns", "before-restart"); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonSet checks the control plane the guard DaemonSet e2e needs:
// kube-controller-manager creates the DaemonSet's pod, kube-scheduler binds
// it to the node, and the kubelet runs it.
func TestDaemonSet(t *testing.T) {
	privtest.RequireRoot(t)
	c := cluster.StartT(t, cluster.Options{Node: true, Scheduler: true, ControllerManager: true})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const ns = "ds-smoke"
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	st := time.Now()
	err := c.Apply(ctx, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: probe
  namespace: ds-smoke
spec:
  selector:
    matchLabels: {app: probe}
  template:
    metadata:
      labels: {app: probe}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: sh
        image: `+cluster.BusyboxImage+`
        imagePullPolicy: Never
        command: ["sleep", "3600"]
`)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for name == "" {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) > 0 {
			name = pods.Items[0].Name
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("DaemonSet created no pod: %v\ncontroller-manager log:\n%s", ctx.Err(), c.Logs("kube-controller-manager", 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
	pod, err := c.WaitPodReady(ctx, ns, name)
	if err != nil {
		t.Fatalf("%v\nscheduler log:\n%s", err, c.Logs("kube-scheduler", 20))
	}
	if pod.Spec.NodeName != c.NodeName {
		t.Fatalf("pod on node %q, want %q", pod.Spec.NodeName, c.NodeName)
	}
	t.Logf("DaemonSet pod %s Ready %s after apply", name, time.Since(st).Round(time.Millisecond))
}
