package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubectl runs the cluster's kubectl with the admin kubeconfig and returns
// stdout. A failure's error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlStdin(ctx, "", args...)
}

// KubectlStdin is Kubectl with stdin, e.g. for `apply -f -`.
func (c *Cluster) KubectlStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Apply runs `kubectl apply -f -` on one or more YAML documents.
func (c *Cluster) Apply(ctx context.Context, yaml string) error {
	_, err := c.KubectlStdin(ctx, yaml, "apply", "-f", "-")
	return err
}

// Delete runs `kubectl delete --ignore-not-found --wait=false -f -`.
func (c *Cluster) Delete(ctx context.Context, yaml string) error {
	_, err := c.KubectlStdin(ctx, yaml, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
	return err
}

// ErrPodFailed means a pod reached phase Failed, or a container is stuck
// in a state it cannot leave (image missing with imagePullPolicy Never,
// CreateContainerError, CrashLoopBackOff).
var ErrPodFailed = errors.New("pod failed")

// WaitPodReady waits until pod ns/name is Ready and returns it. It fails
// early, with the pod's container states and the kubelet log tail, when
// the pod cannot become ready.
func (c *Cluster) WaitPodReady(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	var last string
	for {
		pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			last = "not found"
		case err != nil:
			last = err.Error()
		default:
			if podReady(pod) {
				return pod, nil
			}
			last = podState(pod)
			if why := podStuck(pod); why != "" {
				return pod, fmt.Errorf("%w: %s/%s: %s\n%s", ErrPodFailed, ns, name, why, c.nodeLogTail())
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: pod %s/%s: %s: %v\n%s", ErrNotReady, ns, name, last, ctx.Err(), c.nodeLogTail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitPodGone waits until pod ns/name no longer exists.
func (c *Cluster) WaitPodGone(ctx context.Context, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	for {
		_, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: pod %s/%s still exists: %v", ErrNotReady, ns, name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) nodeLogTail() string {
	if c.node == nil {
		return ""
	}
	return "kubelet log:\n" + c.Logs("kubelet", 15) + "\ncontainerd log:\n" + c.Logs("containerd", 10)
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podStuck names a state the pod will not recover from on its own.
func podStuck(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodFailed {
		return "phase Failed: " + p.Status.Reason + " " + p.Status.Message
	}
	for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError":
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}

func podState(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case cs.State.Running != nil:
			fmt.Fprintf(&b, "; %s running", cs.Name)
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue && cond.Message != "" {
			fmt.Fprintf(&b, "; %s: %s", cond.Type, cond.Message)
		}
	}
	return b.String()
}

// TB is the part of testing.TB that StartT uses; the harness does not
// import package testing so it stays usable from non-test tools.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Context() context.Context
}

// StartT starts a cluster for a test, logging progress through t, stops
// it in t.Cleanup, and fails the test (with component log tails) when it
// does not come up.
func StartT(t TB, opts Options) *Cluster {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop cluster: %v", err)
		}
	})
	return c
}
