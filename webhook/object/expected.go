package object

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vigilsec/vigil/guard/profile"
)

// Annotations users put on the pod template to declare behavior the
// manifest cannot show. Values are comma-separated lists.
const (
	// AnnotationAllowedEgress lists host:port, host, ip:port or CIDR peers.
	AnnotationAllowedEgress = "vigil.dev/allowed-egress"
	// AnnotationExtraExecutables lists paths or names expected to run.
	AnnotationExtraExecutables = "vigil.dev/extra-executables"
	// AnnotationWritablePaths lists extra paths expected to be written.
	AnnotationWritablePaths = "vigil.dev/writable-paths"
)

// ImageDefault stands for "whatever the image's ENTRYPOINT is": the manifest
// does not say, and admission cannot read the image.
const ImageDefault = "<image-default>"

// Expected derives each regular and init container's expected behavior.
// Ephemeral (debug) containers get none: they are by definition unexpected.
func (t *Template) Expected(namespace string, now time.Time) []profile.Expected {
	s := t.Spec
	extraExec := splitList(t.PodMeta.Annotations[AnnotationExtraExecutables])
	extraWrite := splitList(t.PodMeta.Annotations[AnnotationWritablePaths])
	egressAnn := parseEgressList(t.PodMeta.Annotations[AnnotationAllowedEgress], "annotation")

	all := make([]*corev1.Container, 0, len(s.InitContainers)+len(s.Containers))
	for i := range s.InitContainers {
		all = append(all, &s.InitContainers[i])
	}
	for i := range s.Containers {
		all = append(all, &s.Containers[i])
	}
	out := make([]profile.Expected, 0, len(all))
	for _, c := range all {
		e := profile.Expected{
			Key:        profile.Key{Namespace: namespace, Workload: t.Workload, Container: c.Name, Revision: t.Revision},
			Image:      c.Image,
			AdmittedAt: now,
		}
		// Entrypoint: command[0] overrides the image's ENTRYPOINT; args
		// alone keep it.
		if len(c.Command) > 0 {
			e.Executables = append(e.Executables, c.Command[0])
			e.Commands = append(e.Commands, concat(c.Command, c.Args))
		} else {
			e.Executables = append(e.Executables, ImageDefault)
			e.Commands = append(e.Commands, concat([]string{ImageDefault}, c.Args))
		}
		for _, cmd := range handlerCommands(c) {
			e.Executables = append(e.Executables, cmd[0])
			e.Commands = append(e.Commands, cmd)
		}
		e.Executables = append(e.Executables, extraExec...)
		e.Executables = dedup(e.Executables)

		for _, p := range c.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			e.ListenPorts = append(e.ListenPorts, profile.Port{Port: uint16(p.ContainerPort), Proto: proto, Name: p.Name})
		}
		for _, env := range c.Env {
			e.Egress = append(e.Egress, parseEgressValue(env.Value, "env:"+env.Name)...)
		}
		e.Egress = append(e.Egress, egressAnn...)

		ro := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
		if !ro {
			e.WritablePaths = append(e.WritablePaths, "/")
		}
		for _, m := range c.VolumeMounts {
			if !m.ReadOnly {
				e.WritablePaths = append(e.WritablePaths, m.MountPath)
			}
		}
		e.WritablePaths = dedup(append(e.WritablePaths, extraWrite...))
		e.Privilege = privilege(s, c.SecurityContext)
		out = append(out, e)
	}
	return out
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// handlerCommands are the argv vectors of exec probes and exec hooks.
func handlerCommands(c *corev1.Container) [][]string {
	var out [][]string
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil && p.Exec != nil && len(p.Exec.Command) > 0 {
			out = append(out, p.Exec.Command)
		}
	}
	if lc := c.Lifecycle; lc != nil {
		for _, h := range []*corev1.LifecycleHandler{lc.PostStart, lc.PreStop} {
			if h != nil && h.Exec != nil && len(h.Exec.Command) > 0 {
				out = append(out, h.Exec.Command)
			}
		}
	}
	return out
}

func privilege(s *corev1.PodSpec, sc *corev1.SecurityContext) profile.Privilege {
	p := profile.Privilege{HostNetwork: s.HostNetwork, HostPID: s.HostPID, HostIPC: s.HostIPC}
	if ps := s.SecurityContext; ps != nil {
		p.RunAsUser, p.RunAsGroup = ps.RunAsUser, ps.RunAsGroup
		p.RunAsNonRoot = ps.RunAsNonRoot != nil && *ps.RunAsNonRoot
	}
	if sc == nil {
		return p
	}
	// Container settings override the pod's.
	if sc.RunAsUser != nil {
		p.RunAsUser = sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		p.RunAsGroup = sc.RunAsGroup
	}
	if sc.RunAsNonRoot != nil {
		p.RunAsNonRoot = *sc.RunAsNonRoot
	}
	p.AllowPrivilegeEscalation = sc.AllowPrivilegeEscalation
	p.Privileged = sc.Privileged != nil && *sc.Privileged
	if sc.Capabilities != nil {
		p.CapsAdd = capNames(sc.Capabilities.Add)
		p.CapsDrop = capNames(sc.Capabilities.Drop)
	}
	p.ReadOnlyRootFilesystem = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	return p
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		out = append(out, f)
	}
	return out
}

func dedup(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func parseEgressList(s, from string) []profile.Egress {
	var out []profile.Egress
	for _, item := range splitList(s) {
		if _, n, err := net.ParseCIDR(item); err == nil {
			out = append(out, profile.Egress{CIDR: n.String(), From: from})
			continue
		}
		if e, ok := hostPort(item, from); ok {
			out = append(out, e)
		}
	}
	return out
}

// parseEgressValue finds peers in an env value: URLs (scheme://host[:port]),
// host:port pairs, and comma-separated lists of them (e.g. Kafka brokers).
// Plain words are not peers: "DEBUG" or "/var/lib" must not become egress.
func parseEgressValue(v, from string) []profile.Egress {
	var out []profile.Egress
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if i := strings.Index(item, "://"); i > 0 {
			u, err := url.Parse(item)
			if err != nil || u.Hostname() == "" {
				continue
			}
			port := u.Port()
			if port == "" {
				port = defaultPorts[strings.ToLower(u.Scheme)]
			}
			p, _ := strconv.ParseUint(port, 10, 16)
			out = append(out, profile.Egress{Host: u.Hostname(), Port: uint16(p), From: from})
			continue
		}
		if h, p, err := net.SplitHostPort(item); err == nil && validHost(h) {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n > 0 {
				out = append(out, profile.Egress{Host: h, Port: uint16(n), From: from})
			}
		}
	}
	return out
}

var defaultPorts = map[string]string{
	"http": "80", "https": "443", "ws": "80", "wss": "443", "postgres": "5432", "postgresql": "5432",
	"mysql": "3306", "redis": "6379", "rediss": "6379", "amqp": "5672", "amqps": "5671", "mongodb": "27017",
	"nats": "4222", "grpc": "443", "kafka": "9092",
}

func hostPort(item, from string) (profile.Egress, bool) {
	if h, p, err := net.SplitHostPort(item); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || !validHost(h) {
			return profile.Egress{}, false
		}
		return profile.Egress{Host: h, Port: uint16(n), From: from}, true
	}
	if validHost(item) {
		return profile.Egress{Host: item, From: from}, true
	}
	return profile.Egress{}, false
}

// validHost accepts IPs and DNS-looking names (letters, digits, '-', '.',
// and '*' for a wildcard label).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r == '*' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// Aspects summarises each part of a pod template whose change a release
// window reports, as a digest per aspect: image, command, args, env, ports,
// securityContext, volumes. Comparing two revisions' aspects says what a
// rollout changed.
func (t *Template) Aspects() map[string]string {
	s := t.Spec
	h := map[string]*digest{}
	for _, a := range []string{"image", "command", "args", "env", "ports", "securityContext", "volumes"} {
		h[a] = newDigest()
	}
	all := append(append([]corev1.Container(nil), s.InitContainers...), s.Containers...)
	for i := range all {
		c := &all[i]
		h["image"].add(c.Name, c.Image)
		h["command"].add(c.Name, fmt.Sprintf("%q", c.Command))
		h["args"].add(c.Name, fmt.Sprintf("%q", c.Args))
		for _, e := range c.Env {
			h["env"].add(c.Name, e.Name, e.Value, dumpOf(e.ValueFrom))
		}
		for _, e := range c.EnvFrom {
			h["env"].add(c.Name, dumpOf(e))
		}
		for _, p := range c.Ports {
			h["ports"].add(c.Name, dumpOf(p))
		}
		h["securityContext"].add(c.Name, dumpOf(c.SecurityContext))
		for _, m := range c.VolumeMounts {
			h["volumes"].add(c.Name, dumpOf(m))
		}
	}
	h["securityContext"].add("pod", dumpOf(s.SecurityContext), strconv.FormatBool(s.HostNetwork),
		strconv.FormatBool(s.HostPID), strconv.FormatBool(s.HostIPC))
	for i := range s.Volumes {
		h["volumes"].add("pod", s.Volumes[i].Name, dumpOf(&s.Volumes[i].VolumeSource))
	}
	out := make(map[string]string, len(h))
	for k, d := range h {
		out[k] = d.sum()
	}
	return out
}

// Changed lists the aspects whose digests differ, sorted.
func Changed(prev, cur map[string]string) []string {
	var out []string
	for k, v := range cur {
		if prev[k] != v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// dumpOf renders v deterministically (fmt would print nested pointers as
// addresses).
func dumpOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type digest struct{ parts []string }

func newDigest() *digest { return &digest{} }

func (d *digest) add(parts ...string) { d.parts = append(d.parts, strings.Join(parts, "\x00")) }

func (d *digest) sum() string {
	sort.Strings(d.parts)
	h := fnv.New64a()
	for _, p := range d.parts {
		h.Write([]byte(p))
		h.Write([]byte{0xff})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}
