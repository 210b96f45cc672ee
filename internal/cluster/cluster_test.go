package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/privtest"
	corev1 "k8s.io/api/core/v1"
)

func TestBusyboxImage(t *testing.T) {
	privtest.RequireTool(t, BusyboxStatic)
	img, err := NewBusyboxImage(BusyboxImage, BusyboxStatic)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]bool{}
	for _, f := range img.Files {
		if f.Link != "" {
			links[f.Path] = true
		}
	}
	for _, p := range []string{"/bin/sh", "/bin/echo", "/bin/sleep", "/bin/hostname"} {
		if !links[p] {
			t.Errorf("busybox image lacks applet link %s", p)
		}
	}
	if err := img.WriteOCIArchive(io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestCAIssue(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM) {
		t.Fatal("CA PEM does not parse")
	}
	srvPEM, srvKey, err := ca.Issue(CertSpec{CommonName: "webhook", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(srvPEM, srvKey); err != nil {
		t.Fatalf("cert and key do not pair: %v", err)
	}
	cliPEM, _, err := ca.Issue(CertSpec{CommonName: "admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	parse := func(b []byte) *x509.Certificate {
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv, cli := parse(srvPEM), parse(cliPEM)
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server cert: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client-only cert verified for server auth")
	}
	if cli.Subject.Organization[0] != "system:masters" {
		t.Errorf("client organization %v", cli.Subject.Organization)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:          "/tmp/a",
		`/tmp/a\040b`:     "/tmp/a b",
		`/tmp/tab\011x`:   "/tmp/tab\tx",
		`/tmp/back\134sl`: `/tmp/back\sl`,
		`/tmp/trail\04`:   `/tmp/trail\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodStuck(t *testing.T) {
	waiting := func(reason string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}},
		}}}
	}
	for reason, stuck := range map[string]bool{
		"ContainerCreating": false,
		"PodInitializing":   false,
		"ErrImageNeverPull": true,
		"CrashLoopBackOff":  true,
	} {
		if got := podStuck(waiting(reason)) != ""; got != stuck {
			t.Errorf("waiting %s: stuck=%v, want %v", reason, got, stuck)
		}
	}
	if podStuck(&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}) == "" {
		t.Error("phase Failed not reported as stuck")
	}
}

// TestProcStop checks that stop ends the whole process group, including a
// child that ignores SIGTERM, and that the log keeps the output.
func TestProcStop(t *testing.T) {
	dir := t.TempDir()
	p := newProc(dir, "sh", "/bin/sh", "-c", `trap "" TERM; sleep 300 & echo child=$!; wait`)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		for _, l := range strings.Split(p.tail(5), "\n") {
			if v, ok := strings.CutPrefix(l, "child="); ok {
				child, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if child == 0 {
		t.Fatalf("child pid never logged: %s", p.tail(5))
	}
	if done, _ := p.exited(); done {
		t.Fatal("process exited early")
	}
	p.stop(200 * time.Millisecond)
	if done, _ := p.exited(); !done {
		t.Fatal("process still running after stop")
	}
	// The child was SIGKILLed; give the kernel a moment to reap it via init.
	for i := 0; i < 100 && syscall.Kill(child, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(child, 0); err == nil && !isZombie(child) {
		t.Errorf("child %d survived stop", child)
	}
	p.stop(time.Second) // idempotent
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestLockFile checks that a second node cluster waits for the first one's
// lock and gives up when its context ends.
func TestLockFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "node.lock")
	first, err := lockFile(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	if f, err := lockFile(ctx, p); err == nil {
		f.Close()
		t.Fatal("second lock acquired while the first is held")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a context deadline error", err)
	}
	first.Close()
	second, err := lockFile(t.Context(), p)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	second.Close()
}
