// Package pss owns Vigil's implementation of the Kubernetes Pod Security
// Standards (baseline and restricted, as of v1.37) over the flattened
// admission model in guard/event.
//
// It deliberately imports nothing but guard/event and the standard library's
// strings/sort/strconv, and uses no reflection, so the same code compiles
// natively (the webhook's fast path) and as a Wasm guest (GOOS=wasip1) behind
// the rule ABI: EvaluateWire is the whole guest-side entry point.
//
// The checks follow k8s.io/pod-security-admission's policy package check by
// check, including its overrides (a restricted check replaces its baseline
// twin) and its exemptions (spec.os.name=windows, hostUsers=false).
package pss

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/guard/event"
)

// Level is a Pod Security Standards level.
type Level uint8

// Levels. Privileged means "no checks".
const (
	Privileged Level = iota
	Baseline
	Restricted
)

// ParseLevel parses "privileged", "baseline" or "restricted".
func ParseLevel(s string) (Level, error) {
	switch s {
	case "privileged":
		return Privileged, nil
	case "baseline":
		return Baseline, nil
	case "restricted":
		return Restricted, nil
	}
	return 0, fmt.Errorf("pss: unknown level %q (want privileged, baseline or restricted)", s)
}

func (l Level) String() string {
	switch l {
	case Privileged:
		return "privileged"
	case Baseline:
		return "baseline"
	case Restricted:
		return "restricted"
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// Violation is one failed check.
type Violation struct {
	// Check is the upstream check id, e.g. "hostNamespaces".
	Check string `json:"check"`
	// Reason is short ("host namespaces"), Detail says which fields of which
	// containers and values offend.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (v Violation) String() string { return v.Reason + " (" + v.Detail + ")" }

type check struct {
	id    string
	level Level
	// overrides names the baseline check this restricted check replaces.
	overrides string
	fn        func(*event.AdmissionPod) (reason, detail string, ok bool)
}

var checks = []check{
	{id: "appArmorProfile", level: Baseline, fn: appArmorProfile},
	{id: "capabilities_baseline", level: Baseline, fn: capabilitiesBaseline},
	{id: "hostNamespaces", level: Baseline, fn: hostNamespaces},
	{id: "hostPathVolumes", level: Baseline, fn: hostPathVolumes},
	{id: "hostPorts", level: Baseline, fn: hostPorts},
	{id: "hostProbesAndHostLifecycle", level: Baseline, fn: hostProbes},
	{id: "privileged", level: Baseline, fn: privileged},
	{id: "procMount", level: Baseline, fn: procMountBaseline},
	{id: "seccompProfile_baseline", level: Baseline, fn: seccompBaseline},
	{id: "seLinuxOptions", level: Baseline, fn: seLinuxOptions},
	{id: "sysctls", level: Baseline, fn: sysctls},
	{id: "windowsHostProcess", level: Baseline, fn: windowsHostProcess},

	{id: "allowPrivilegeEscalation", level: Restricted, fn: allowPrivilegeEscalation},
	{id: "capabilities_restricted", level: Restricted, overrides: "capabilities_baseline", fn: capabilitiesRestricted},
	{id: "procMount_restricted", level: Restricted, overrides: "procMount", fn: procMountRestricted},
	{id: "restrictedVolumes", level: Restricted, overrides: "hostPathVolumes", fn: restrictedVolumes},
	{id: "runAsNonRoot", level: Restricted, fn: runAsNonRoot},
	{id: "runAsUser", level: Restricted, fn: runAsUser},
	{id: "seccompProfile_restricted", level: Restricted, overrides: "seccompProfile_baseline", fn: seccompRestricted},
}

// Check evaluates every check of level against the pod and returns the
// violations, in check-id order; none means the pod meets the level.
func Check(level Level, p *event.AdmissionPod) []Violation {
	var out []Violation
	for i := range checks {
		c := &checks[i]
		if c.level > level || overridden(c.id, level) {
			continue
		}
		if reason, detail, ok := c.fn(p); !ok {
			out = append(out, Violation{Check: c.id, Reason: reason, Detail: detail})
		}
	}
	return out
}

// CheckLevels evaluates the pod at both levels with each check run once:
// the same results as Check(Baseline, p) and Check(Restricted, p), for
// callers that need both (the Wasm pack answers both levels per event).
func CheckLevels(p *event.AdmissionPod) (baseline, restricted []Violation) {
	for i := range checks {
		c := &checks[i]
		inRestricted := !overridden(c.id, Restricted)
		if c.level > Baseline && !inRestricted {
			continue
		}
		reason, detail, ok := c.fn(p)
		if ok {
			continue
		}
		v := Violation{Check: c.id, Reason: reason, Detail: detail}
		if c.level <= Baseline {
			baseline = append(baseline, v)
		}
		if inRestricted {
			restricted = append(restricted, v)
		}
	}
	return baseline, restricted
}

// ReplacedBy returns the id of the check that replaces check id at level
// (restricted checks replace their baseline twins), or id itself.
func ReplacedBy(id string, level Level) string {
	for i := range checks {
		if checks[i].overrides == id && checks[i].level <= level {
			return checks[i].id
		}
	}
	return id
}

func overridden(id string, level Level) bool {
	for i := range checks {
		if checks[i].overrides == id && checks[i].level <= level {
			return true
		}
	}
	return false
}

// EvaluateWire decodes one wire-format admission event and checks it: the
// entry point of the Wasm guest build.
func EvaluateWire(level Level, b []byte) ([]Violation, error) {
	kind, recs, _, err := event.Decode(b)
	if err != nil {
		return nil, err
	}
	if kind != event.KindAdmission {
		return nil, fmt.Errorf("pss: event kind %v is not admission", kind)
	}
	a, err := event.DecodeAdmission(recs)
	if err != nil {
		return nil, err
	}
	return Check(level, &a.Pod), nil
}

// Summary renders violations the way kubectl users know from PSA:
// `reason (detail), reason (detail)`.
func Summary(vs []Violation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}

// ---- helpers ----

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

func windows(p *event.AdmissionPod) bool { return p.OS == "windows" }

// userNamespaced reports hostUsers=false, which relaxes some checks.
func userNamespaced(p *event.AdmissionPod) bool { return isFalse(p.HostUsers) }

func quote(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func plural(single, many string, n int) string {
	if n == 1 {
		return single
	}
	return many
}

func containers(names []string) string {
	return plural("container", "containers", len(names)) + " " + quote(names)
}

// set is a tiny sorted string set (no generics-heavy or reflective deps).
type set map[string]struct{}

func (s set) add(v string) { s[v] = struct{}{} }
func (s set) list() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func setters(pod bool, ctrs []string) string {
	var parts []string
	if pod {
		parts = append(parts, "pod")
	}
	if len(ctrs) > 0 {
		parts = append(parts, containers(ctrs))
	}
	return strings.Join(parts, " and ")
}

// ---- baseline ----

func hostNamespaces(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	if p.HostNetwork {
		bad = append(bad, "hostNetwork=true")
	}
	if p.HostPID {
		bad = append(bad, "hostPID=true")
	}
	if p.HostIPC {
		bad = append(bad, "hostIPC=true")
	}
	if len(bad) > 0 {
		return "host namespaces", strings.Join(bad, ", "), false
	}
	return "", "", true
}

func privileged(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	for i := range p.Containers {
		if isTrue(p.Containers[i].Privileged) {
			bad = append(bad, p.Containers[i].Name)
		}
	}
	if len(bad) > 0 {
		return "privileged", containers(bad) + " must not set securityContext.privileged=true", false
	}
	return "", "", true
}

var baselineCaps = set{"AUDIT_WRITE": {}, "CHOWN": {}, "DAC_OVERRIDE": {}, "FOWNER": {}, "FSETID": {}, "KILL": {},
	"MKNOD": {}, "NET_BIND_SERVICE": {}, "SETFCAP": {}, "SETGID": {}, "SETPCAP": {}, "SETUID": {}, "SYS_CHROOT": {}}

func capabilitiesBaseline(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	caps := set{}
	for i := range p.Containers {
		c := &p.Containers[i]
		valid := true
		for _, cp := range c.CapsAdd {
			if _, ok := baselineCaps[cp]; !ok {
				valid = false
				caps.add(cp)
			}
		}
		if !valid {
			bad = append(bad, c.Name)
		}
	}
	if len(bad) > 0 {
		return "non-default capabilities", containers(bad) + " must not include " + quote(caps.list()) +
			" in securityContext.capabilities.add", false
	}
	return "", "", true
}

func hostPathVolumes(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	for _, v := range p.Volumes {
		if v.Type == "hostPath" {
			bad = append(bad, v.Name)
		}
	}
	if len(bad) > 0 {
		return "hostPath volumes", plural("volume", "volumes", len(bad)) + " " + quote(bad), false
	}
	return "", "", true
}

func hostPorts(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	ports := set{}
	for i := range p.Containers {
		c := &p.Containers[i]
		if len(c.HostPorts) == 0 {
			continue
		}
		bad = append(bad, c.Name)
		for _, hp := range c.HostPorts {
			port, _, _ := strings.Cut(hp, "/")
			ports.add(port)
		}
	}
	if len(bad) > 0 {
		l := ports.list()
		return "hostPort", containers(bad) + " " + plural("uses", "use", len(bad)) + " " +
			plural("hostPort", "hostPorts", len(l)) + " " + strings.Join(l, ", "), false
	}
	return "", "", true
}

func hostProbes(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	hosts := set{}
	for i := range p.Containers {
		c := &p.Containers[i]
		if len(c.ProbeHosts) == 0 {
			continue
		}
		bad = append(bad, c.Name)
		for _, h := range c.ProbeHosts {
			hosts.add(h)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return "probe or lifecycle host", containers(bad) + " " + plural("uses", "use", len(bad)) + " " +
			plural("probe or lifecycle host", "probe or lifecycle hosts", len(hosts)) + " " + quote(hosts.list()), false
	}
	return "", "", true
}

func appArmorAllowedType(t string) bool { return t == "RuntimeDefault" || t == "Localhost" }

const appArmorAnnotationPrefix = "container.apparmor.security.beta.kubernetes.io/"

func appArmorProfile(p *event.AdmissionPod) (string, string, bool) {
	var who []string
	bad := set{}
	if p.AppArmor != nil && !appArmorAllowedType(*p.AppArmor) {
		who = append(who, "pod")
		bad.add(*p.AppArmor)
	}
	var ctrs []string
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.AppArmor != nil && !appArmorAllowedType(*c.AppArmor) {
			ctrs = append(ctrs, c.Name)
			bad.add(*c.AppArmor)
		}
	}
	if len(ctrs) > 0 {
		who = append(who, containers(ctrs))
	}
	values := bad.list()
	var annotations []string
	for _, kv := range p.Annotations {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, appArmorAnnotationPrefix) && v != "" && v != "runtime/default" && !strings.HasPrefix(v, "localhost/") {
			annotations = append(annotations, k+"="+strconv.Quote(v))
		}
	}
	if len(annotations) > 0 {
		sort.Strings(annotations)
		values = append(values, annotations...)
		who = append(who, plural("annotation", "annotations", len(annotations)))
	}
	if len(who) > 0 {
		return plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
			strings.Join(who, " and ") + " must not set AppArmor profile type to " + quote(values), false
	}
	return "", "", true
}

var seLinuxTypes = set{"": {}, "container_t": {}, "container_init_t": {}, "container_kvm_t": {}, "container_engine_t": {}}

func seLinuxOptions(p *event.AdmissionPod) (string, string, bool) {
	types := set{}
	var setUser, setRole bool
	valid := func(o *event.SELinux) bool {
		ok := true
		if _, allowed := seLinuxTypes[o.Type]; !allowed {
			ok = false
			types.add(o.Type)
		}
		if o.User != "" {
			ok, setUser = false, true
		}
		if o.Role != "" {
			ok, setRole = false, true
		}
		return ok
	}
	podBad := p.SELinux != nil && !valid(p.SELinux)
	var ctrs []string
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.SELinux != nil && !valid(c.SELinux) {
			ctrs = append(ctrs, c.Name)
		}
	}
	if !podBad && len(ctrs) == 0 {
		return "", "", true
	}
	var data []string
	if len(types) > 0 {
		l := types.list()
		data = append(data, plural("type", "types", len(l))+" "+quote(l))
	}
	if setUser {
		data = append(data, "user may not be set")
	}
	if setRole {
		data = append(data, "role may not be set")
	}
	return "seLinuxOptions", setters(podBad, ctrs) + " set forbidden securityContext.seLinuxOptions: " + strings.Join(data, "; "), false
}

func procMount(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	types := set{}
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.ProcMount != nil && *c.ProcMount != "Default" {
			bad = append(bad, c.Name)
			types.add(*c.ProcMount)
		}
	}
	if len(bad) > 0 {
		return "procMount", containers(bad) + " must not set securityContext.procMount to " + quote(types.list()), false
	}
	return "", "", true
}

// procMountBaseline allows Unmasked in user-namespaced pods, where /proc
// belongs to the pod's own namespace (1.35+); restricted does not.
func procMountBaseline(p *event.AdmissionPod) (string, string, bool) {
	if userNamespaced(p) {
		return "", "", true
	}
	return procMount(p)
}

func procMountRestricted(p *event.AdmissionPod) (string, string, bool) { return procMount(p) }

func seccompValid(t string) bool { return t == "RuntimeDefault" || t == "Localhost" }

func seccompBaseline(p *event.AdmissionPod) (string, string, bool) {
	bad := set{}
	podBad := false
	if p.Seccomp != nil && !seccompValid(*p.Seccomp) {
		podBad = true
		bad.add(*p.Seccomp)
	}
	var ctrs []string
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.Seccomp != nil && !seccompValid(*c.Seccomp) {
			ctrs = append(ctrs, c.Name)
			bad.add(*c.Seccomp)
		}
	}
	if podBad || len(ctrs) > 0 {
		return "seccompProfile", setters(podBad, ctrs) + " must not set securityContext.seccompProfile.type to " + quote(bad.list()), false
	}
	return "", "", true
}

var safeSysctls = set{
	"kernel.shm_rmid_forced": {}, "net.ipv4.ip_local_port_range": {}, "net.ipv4.tcp_syncookies": {},
	"net.ipv4.ping_group_range": {}, "net.ipv4.ip_unprivileged_port_start": {}, "net.ipv4.ip_local_reserved_ports": {},
	"net.ipv4.tcp_keepalive_time": {}, "net.ipv4.tcp_fin_timeout": {}, "net.ipv4.tcp_keepalive_intvl": {},
	"net.ipv4.tcp_keepalive_probes": {}, "net.ipv4.tcp_rmem": {}, "net.ipv4.tcp_wmem": {},
	"net.ipv4.tcp_slow_start_after_idle": {}, "net.ipv4.tcp_notsent_lowat": {},
}

func sysctls(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	for _, s := range p.Sysctls {
		if _, ok := safeSysctls[s]; !ok {
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		return "forbidden sysctls", strings.Join(bad, ", "), false
	}
	return "", "", true
}

func windowsHostProcess(p *event.AdmissionPod) (string, string, bool) {
	var ctrs []string
	for i := range p.Containers {
		if isTrue(p.Containers[i].WindowsHostProcess) {
			ctrs = append(ctrs, p.Containers[i].Name)
		}
	}
	podBad := isTrue(p.WindowsHostProcess)
	if podBad || len(ctrs) > 0 {
		return "hostProcess", setters(podBad, ctrs) + " must not set securityContext.windowsOptions.hostProcess=true", false
	}
	return "", "", true
}

// ---- restricted ----

func allowPrivilegeEscalation(p *event.AdmissionPod) (string, string, bool) {
	if windows(p) {
		return "", "", true
	}
	var bad []string
	for i := range p.Containers {
		if !isFalse(p.Containers[i].AllowPrivilegeEscalation) {
			bad = append(bad, p.Containers[i].Name)
		}
	}
	if len(bad) > 0 {
		return "allowPrivilegeEscalation != false", containers(bad) + " must set securityContext.allowPrivilegeEscalation=false", false
	}
	return "", "", true
}

func capabilitiesRestricted(p *event.AdmissionPod) (string, string, bool) {
	if windows(p) {
		return "", "", true
	}
	var missingDrop, adding []string
	caps := set{}
	for i := range p.Containers {
		c := &p.Containers[i]
		dropped := false
		for _, d := range c.CapsDrop {
			if d == "ALL" {
				dropped = true
				break
			}
		}
		if !dropped {
			missingDrop = append(missingDrop, c.Name)
		}
		forbidden := false
		for _, a := range c.CapsAdd {
			if a != "NET_BIND_SERVICE" {
				forbidden = true
				caps.add(a)
			}
		}
		if forbidden {
			adding = append(adding, c.Name)
		}
	}
	var details []string
	if len(missingDrop) > 0 {
		details = append(details, containers(missingDrop)+` must set securityContext.capabilities.drop=["ALL"]`)
	}
	if len(adding) > 0 {
		details = append(details, containers(adding)+" must not include "+quote(caps.list())+" in securityContext.capabilities.add")
	}
	if len(details) > 0 {
		return "unrestricted capabilities", strings.Join(details, "; "), false
	}
	return "", "", true
}

var restrictedVolumeTypes = set{"configMap": {}, "csi": {}, "downwardAPI": {}, "emptyDir": {}, "ephemeral": {},
	"image": {}, "persistentVolumeClaim": {}, "projected": {}, "secret": {}}

func restrictedVolumes(p *event.AdmissionPod) (string, string, bool) {
	var bad []string
	types := set{}
	for _, v := range p.Volumes {
		if _, ok := restrictedVolumeTypes[v.Type]; ok {
			continue
		}
		bad = append(bad, v.Name)
		types.add(v.Type)
	}
	if len(bad) > 0 {
		l := types.list()
		return "restricted volume types", plural("volume", "volumes", len(bad)) + " " + quote(bad) + " " +
			plural("uses", "use", len(bad)) + " " + plural("restricted volume type", "restricted volume types", len(l)) + " " + quote(l), false
	}
	return "", "", true
}

func runAsNonRoot(p *event.AdmissionPod) (string, string, bool) {
	if userNamespaced(p) {
		return "", "", true
	}
	podBad := isFalse(p.RunAsNonRoot)
	podOK := isTrue(p.RunAsNonRoot)
	var explicit, implicit []string
	for i := range p.Containers {
		c := &p.Containers[i]
		switch {
		case c.RunAsNonRoot != nil:
			if !*c.RunAsNonRoot {
				explicit = append(explicit, c.Name)
			}
		case !podOK:
			implicit = append(implicit, c.Name)
		}
	}
	if podBad || len(explicit) > 0 {
		return "runAsNonRoot != true", setters(podBad, explicit) + " must not set securityContext.runAsNonRoot=false", false
	}
	if len(implicit) > 0 {
		return "runAsNonRoot != true", "pod or " + containers(implicit) + " must set securityContext.runAsNonRoot=true", false
	}
	return "", "", true
}

func runAsUser(p *event.AdmissionPod) (string, string, bool) {
	if userNamespaced(p) {
		return "", "", true
	}
	podBad := p.RunAsUser != nil && *p.RunAsUser == 0
	var ctrs []string
	for i := range p.Containers {
		c := &p.Containers[i]
		if c.RunAsUser != nil && *c.RunAsUser == 0 {
			ctrs = append(ctrs, c.Name)
		}
	}
	if podBad || len(ctrs) > 0 {
		return "runAsUser=0", setters(podBad, ctrs) + " must not set runAsUser=0", false
	}
	return "", "", true
}

func seccompRestricted(p *event.AdmissionPod) (string, string, bool) {
	if windows(p) {
		return "", "", true
	}
	bad := set{}
	podBad, podOK := false, false
	if p.Seccomp != nil {
		if seccompValid(*p.Seccomp) {
			podOK = true
		} else {
			podBad = true
			bad.add(*p.Seccomp)
		}
	}
	var explicit, implicit []string
	for i := range p.Containers {
		c := &p.Containers[i]
		switch {
		case c.Seccomp != nil:
			if !seccompValid(*c.Seccomp) {
				explicit = append(explicit, c.Name)
				bad.add(*c.Seccomp)
			}
		case !podOK:
			implicit = append(implicit, c.Name)
		}
	}
	if podBad || len(explicit) > 0 {
		return "seccompProfile", setters(podBad, explicit) + " must not set securityContext.seccompProfile.type to " + quote(bad.list()), false
	}
	if len(implicit) > 0 {
		return "seccompProfile", "pod or " + containers(implicit) +
			` must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`, false
	}
	return "", "", true
}

// CheckIDs lists every check id, baseline first.
func CheckIDs() []string {
	out := make([]string, len(checks))
	for i := range checks {
		out[i] = checks[i].id
	}
	return out
}
