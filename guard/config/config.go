// Package config owns the guard's configuration file: its schema, defaults,
// presets and validation. Everything else receives the parsed Config struct;
// nothing reads flags or files on its own.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/alert"
)

// Duration is a time.Duration that reads "100ms", "5m" in YAML/JSON.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ModeName is a mode as written in the file. YAML 1.1 reads a bare `off`
// as the boolean false; ModeName turns that back into "off" so users can
// write `mode: off` without quotes.
type ModeName string

// UnmarshalJSON implements json.Unmarshaler.
func (m *ModeName) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "false":
		*m = "off"
		return nil
	case "true":
		return errors.New("mode: a bare yes/on/true is not a mode (want off, audit or enforce)")
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("mode must be a string: %w", err)
	}
	switch s {
	case "false": // sigs.k8s.io/yaml already stringified a bare off
		s = "off"
	case "true":
		return errors.New("mode: a bare yes/on/true is not a mode (want off, audit or enforce)")
	}
	*m = ModeName(s)
	return nil
}

// Environment presets.
const (
	Production = "production" // enforce by default
	Staging    = "staging"    // audit by default
)

// Config is the guard's whole configuration.
type Config struct {
	// Environment is a preset: "production" (enforce) or "staging" (audit).
	Environment string `json:"environment,omitempty"`
	// Mode overrides the preset's default mode: off, audit or enforce.
	Mode ModeName `json:"mode,omitempty"`
	// Require lists enforcement backends that must be active for enforce
	// mode to start, e.g. ["lsm"]. Without them the guard refuses to start
	// rather than degrade silently.
	Require []string `json:"require,omitempty"`
	// Modes sets modes per namespace, workload ("ns/Kind/name", or
	// "ns/container" outside Kubernetes) and rule ("rule", or
	// "ns/Kind/name:rule"). The most specific setting wins:
	// workload+rule > rule > workload > namespace > environment preset.
	Modes Modes `json:"modes,omitempty"`
	// Actions override a rule's own default action by rule name: "kill",
	// "block", "alert" or "allow". A floor rule such as "Terminal shell in
	// container" is shipped as an alert; production sets it to kill here.
	Actions map[string]string `json:"actions,omitempty"`
	// Policies are deny decisions expressible as data. They are compiled
	// into BPF maps for each matching container, so the kernel decides
	// without waiting for userspace (the fast path).
	Policies []Policy `json:"policies,omitempty"`
	// SystemNamespaces are never acted upon (alerts only).
	SystemNamespaces []string `json:"systemNamespaces,omitempty"`
	// FailClosed pins the enforcement programs in bpffs so they keep
	// denying while the guard is down. Default: fail open.
	FailClosed bool `json:"failClosed,omitempty"`

	StateDir string   `json:"stateDir,omitempty"`
	Rules    Rules    `json:"rules"`
	Sensor   Sensor   `json:"sensor"`
	Output   Output   `json:"output"`
	Metrics  Metrics  `json:"metrics"`
	Baseline Baseline `json:"baseline"`
}

// Policy is one fast-path deny rule and the containers it applies to.
type Policy struct {
	Name string `json:"name"`
	// Action is "block" (deny with EPERM where the backend can) or "kill".
	Action string      `json:"action"`
	Match  PolicyMatch `json:"match"`
	// ExecPaths are executables or directories whose programs may not run;
	// ExecNames are executable file names.
	ExecPaths []string `json:"execPaths,omitempty"`
	ExecNames []string `json:"execNames,omitempty"`
	// OpenPaths are files or directories that may not be opened.
	OpenPaths []string `json:"openPaths,omitempty"`
	// Connect and Bind are "CIDR", "CIDR:port" or ":port" (any address).
	Connect []string `json:"connect,omitempty"`
	Bind    []string `json:"bind,omitempty"`
	// Deny lists privileged operations: ptrace, mount, module_load, setuid
	// (BPF-LSM only).
	Deny []string `json:"deny,omitempty"`
}

// PolicyMatch selects containers; empty fields match anything, and a
// policy never applies to host processes.
type PolicyMatch struct {
	Namespace string `json:"namespace,omitempty"`
	// Workload is "Kind/name", e.g. "Deployment/web".
	Workload string `json:"workload,omitempty"`
	// Container is a container name, or a prefix of its id.
	Container string `json:"container,omitempty"`
	// Image is a prefix of the image reference.
	Image string `json:"image,omitempty"`
}

// ParseNet parses a policy network match: "CIDR", "CIDR:port", "IP",
// "IP:port" or ":port".
func ParseNet(s string) (netip.Prefix, uint16, error) {
	var port uint16
	addr := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i:], "]") && (strings.Count(s, ":") == 1 || strings.HasPrefix(s, "[")) {
		p, err := strconv.ParseUint(s[i+1:], 10, 16)
		if err != nil {
			return netip.Prefix{}, 0, fmt.Errorf("port in %q: %w", s, err)
		}
		port, addr = uint16(p), strings.Trim(s[:i], "[]")
	}
	if addr == "" {
		if port == 0 {
			return netip.Prefix{}, 0, fmt.Errorf("%q matches nothing", s)
		}
		return netip.MustParsePrefix("0.0.0.0/0"), port, nil
	}
	if !strings.Contains(addr, "/") {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return netip.Prefix{}, 0, err
		}
		return netip.PrefixFrom(a, a.BitLen()), port, nil
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return netip.Prefix{}, 0, err
	}
	return p.Masked(), port, nil
}

// Modes holds per-scope mode overrides.
type Modes struct {
	Namespaces map[string]ModeName `json:"namespaces,omitempty"`
	Workloads  map[string]ModeName `json:"workloads,omitempty"`
	Rules      map[string]ModeName `json:"rules,omitempty"`
}

// Rules configures the Wasm rule engine.
type Rules struct {
	Dir string `json:"dir,omitempty"`
	// Pinning refuses modules whose sha256 is not listed in Pins.
	Pinning bool `json:"pinning,omitempty"`
	// Pins maps module file names to "sha256:<hex>".
	Pins map[string]string `json:"pins,omitempty"`
	// Unchecked lists "sha256:<hex>" digests of vetted modules that run
	// without the runaway deadline. wazero's interruption check costs a Go
	// exit per guest loop iteration; a module you wrote and pinned can skip
	// it at the price of no longer being stoppable. Empty by default.
	Unchecked      []string `json:"unchecked,omitempty"`
	Timeout        Duration `json:"timeout,omitempty"`
	MemoryLimitMiB uint32   `json:"memoryLimitMiB,omitempty"`
	ReloadInterval Duration `json:"reloadInterval,omitempty"`
	CacheDir       string   `json:"cacheDir,omitempty"`
}

// Sensor configures the eBPF sensors.
type Sensor struct {
	// OpenAlways are path prefixes whose every open is reported.
	OpenAlways []string `json:"openAlways,omitempty"`
	// OpenWrites are path prefixes whose opens for writing are reported.
	OpenWrites []string `json:"openWrites,omitempty"`
	// RingBufferMiB sizes the kernel→userspace ring buffer.
	RingBufferMiB uint32 `json:"ringBufferMiB,omitempty"`
}

// Output configures where alerts go.
type Output struct {
	// Stdout writes JSON lines to standard output (default true).
	Stdout *bool `json:"stdout,omitempty"`
	// Events also prints every event, not only alerts.
	Events        bool          `json:"events,omitempty"`
	File          *FileOutput   `json:"file,omitempty"`
	Falcosidekick *HTTPOutput   `json:"falcosidekick,omitempty"`
	Syslog        *SyslogOutput `json:"syslog,omitempty"`
	DedupWindow   Duration      `json:"dedupWindow,omitempty"`
	QueueDepth    int           `json:"queueDepth,omitempty"`
}

// FileOutput is a rotated JSON-lines file.
type FileOutput struct {
	Path       string `json:"path"`
	MaxSizeMiB int64  `json:"maxSizeMiB,omitempty"`
	Keep       int    `json:"keep,omitempty"`
}

// HTTPOutput posts alerts in the Falcosidekick format.
type HTTPOutput struct {
	URL     string   `json:"url"`
	Timeout Duration `json:"timeout,omitempty"`
	Retries int      `json:"retries,omitempty"`
}

// SyslogOutput sends RFC 5424 messages.
type SyslogOutput struct {
	Network string `json:"network"` // unixgram, udp or tcp
	Address string `json:"address"`
}

// Metrics configures the Prometheus/health endpoint.
type Metrics struct {
	// Listen is host:port for /metrics, /healthz and /readyz; empty
	// disables the endpoint.
	Listen string `json:"listen,omitempty"`
}

// Baseline configures behavior detection.
type Baseline struct {
	Disabled bool   `json:"disabled,omitempty"`
	Store    string `json:"store,omitempty"`
	// LearningWindow is the minimum time a revision learns.
	LearningWindow Duration `json:"learningWindow,omitempty"`
	// StableAfter: a profile is ready once no new behavior appeared for
	// this long after the learning window.
	StableAfter Duration `json:"stableAfter,omitempty"`
	// ProfilesURL is the webhook's local API for expected-behavior
	// profiles and release windows.
	ProfilesURL string `json:"profilesURL,omitempty"`
	// ProfilesCA is the PEM CA that signs the webhook's serving cert.
	ProfilesCA string `json:"profilesCA,omitempty"`
	// ProfilesSource is where expected-behavior profiles and release
	// windows come from: "api" polls ProfilesURL (the default when it is
	// set), "crd" watches WorkloadProfile objects and writes this node's
	// learned-state summary into their status.
	ProfilesSource string `json:"profilesSource,omitempty"`
	// Kubeconfig is the cluster the crd source watches (default: the
	// pod's service account).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// NodeName names this guard's status entry (default: $NODE_NAME, else
	// the host name).
	NodeName string `json:"nodeName,omitempty"`
	// StatusInterval throttles status writes of the crd source: at most
	// one per object per interval, none while nothing changed [30s].
	StatusInterval Duration `json:"statusInterval,omitempty"`
	// MinPriority drops behavior alerts less severe than this (they are
	// still learned and counted). Default Notice: the informational
	// "learned during a release" records stay out of on-call's way.
	MinPriority string `json:"minPriority,omitempty"`
	// Lock locks every profile that becomes ready: execs outside it are
	// denied in the kernel where the mode is enforce, and recorded as
	// "would have denied" where it is audit (rule "Profile lock").
	Lock bool `json:"lock,omitempty"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	t := true
	return Config{
		Environment:      Staging,
		SystemNamespaces: []string{"kube-system"},
		StateDir:         "/var/lib/vigil",
		Rules: Rules{Dir: "/etc/vigil/rules", Timeout: Duration(100 * time.Millisecond),
			MemoryLimitMiB: 64, ReloadInterval: Duration(5 * time.Second), CacheDir: "/var/cache/vigil/wazero"},
		Sensor:   Sensor{RingBufferMiB: 16},
		Output:   Output{Stdout: &t, DedupWindow: Duration(time.Minute), QueueDepth: 8192},
		Metrics:  Metrics{Listen: "127.0.0.1:9464"},
		Baseline: Baseline{LearningWindow: Duration(5 * time.Minute), StableAfter: Duration(2 * time.Minute)},
	}
}

// Load reads a YAML (or JSON) file over the defaults. Unknown keys are an
// error, so a typo never silently disables a setting.
func Load(path string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := Parse(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over cfg and validates the result.
func Parse(b []byte, cfg *Config) error {
	if err := yaml.UnmarshalStrict(b, cfg); err != nil {
		return err
	}
	return cfg.Validate()
}

// ParseAction parses a verdict action name.
func ParseAction(s string) (alert.Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "allow":
		return alert.ActionAllow, nil
	case "alert":
		return alert.ActionAlert, nil
	case "kill":
		return alert.ActionKill, nil
	case "block":
		return alert.ActionBlock, nil
	}
	return alert.ActionAlert, fmt.Errorf("unknown action %q (want allow, alert, kill or block)", s)
}

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid config")

// DefaultMode is the mode the environment preset and Mode produce.
func (c *Config) DefaultMode() alert.Mode {
	if c.Mode != "" {
		m, _ := alert.ParseMode(string(c.Mode))
		return m
	}
	if c.Environment == Production {
		return alert.ModeEnforce
	}
	return alert.ModeAudit
}

// Validate checks every field and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch c.Environment {
	case "", Production, Staging:
	default:
		bad("environment %q: want production or staging", c.Environment)
	}
	if c.Mode != "" {
		if _, err := alert.ParseMode(string(c.Mode)); err != nil {
			bad("mode: %v", err)
		}
	}
	for _, r := range c.Require {
		switch r {
		case "lsm", "fanotify", "cgroup", "sigkill", "pidfd":
		default:
			bad("require: unknown backend %q (want lsm, fanotify, cgroup, sigkill or pidfd)", r)
		}
	}
	for scope, m := range map[string]map[string]ModeName{"namespaces": c.Modes.Namespaces, "workloads": c.Modes.Workloads, "rules": c.Modes.Rules} {
		for k, v := range m {
			if _, err := alert.ParseMode(string(v)); err != nil {
				bad("modes.%s[%q]: %v", scope, k, err)
			}
			if scope == "workloads" && !strings.Contains(k, "/") {
				bad("modes.workloads[%q]: want namespace/workload, e.g. shop/Deployment/web", k)
			}
		}
	}
	for rule, a := range c.Actions {
		if _, err := ParseAction(a); err != nil {
			bad("actions[%q]: %v", rule, err)
		}
	}
	for i, p := range c.Policies {
		if p.Name == "" {
			bad("policies[%d]: name is empty", i)
		}
		if p.Action != "block" && p.Action != "kill" {
			bad("policies[%d] %q: action %q, want block or kill", i, p.Name, p.Action)
		}
		if len(p.ExecPaths)+len(p.ExecNames)+len(p.OpenPaths)+len(p.Connect)+len(p.Bind)+len(p.Deny) == 0 {
			bad("policies[%d] %q: denies nothing", i, p.Name)
		}
		for _, path := range append(append([]string(nil), p.ExecPaths...), p.OpenPaths...) {
			if !strings.HasPrefix(path, "/") {
				bad("policies[%d] %q: path %q is not absolute", i, p.Name, path)
			}
		}
		for _, n := range p.ExecNames {
			if n == "" || len(n) > 15 || strings.Contains(n, "/") {
				bad("policies[%d] %q: exec name %q: want a file name of at most 15 bytes", i, p.Name, n)
			}
		}
		for _, n := range append(append([]string(nil), p.Connect...), p.Bind...) {
			if _, _, err := ParseNet(n); err != nil {
				bad("policies[%d] %q: network match: %v", i, p.Name, err)
			}
		}
		for _, d := range p.Deny {
			switch d {
			case "ptrace", "mount", "module_load", "setuid":
			default:
				bad("policies[%d] %q: deny %q, want ptrace, mount, module_load or setuid", i, p.Name, d)
			}
		}
	}
	for _, d := range c.Rules.Unchecked {
		if h, ok := strings.CutPrefix(d, "sha256:"); !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			bad("rules.unchecked %q: want sha256:<64 lowercase hex>", d)
		}
	}
	for name, pin := range c.Rules.Pins {
		h, ok := strings.CutPrefix(pin, "sha256:")
		if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			bad("rules.pins[%q]: want sha256:<64 lowercase hex>", name)
		}
	}
	if c.Rules.Timeout < 0 || (c.Rules.Timeout > 0 && c.Rules.Timeout.Std() < time.Millisecond) {
		bad("rules.timeout %v: must be at least 1ms", c.Rules.Timeout.Std())
	}
	if c.Rules.MemoryLimitMiB > 4096 {
		bad("rules.memoryLimitMiB %d: at most 4096 (wasm32)", c.Rules.MemoryLimitMiB)
	}
	for _, p := range append(append([]string(nil), c.Sensor.OpenAlways...), c.Sensor.OpenWrites...) {
		if !strings.HasPrefix(p, "/") || len(p) > 255 {
			bad("sensor path prefix %q: must be absolute and at most 255 bytes", p)
		}
	}
	if c.Sensor.RingBufferMiB != 0 && c.Sensor.RingBufferMiB&(c.Sensor.RingBufferMiB-1) != 0 {
		bad("sensor.ringBufferMiB %d: must be a power of two", c.Sensor.RingBufferMiB)
	}
	if f := c.Output.File; f != nil && f.Path == "" {
		bad("output.file.path is empty")
	}
	if h := c.Output.Falcosidekick; h != nil && !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://") {
		bad("output.falcosidekick.url %q: want http(s)://", h.URL)
	}
	if s := c.Output.Syslog; s != nil {
		switch s.Network {
		case "unixgram", "udp", "tcp":
		default:
			bad("output.syslog.network %q: want unixgram, udp or tcp", s.Network)
		}
	}
	if p := c.Baseline.MinPriority; p != "" {
		if _, err := alert.ParsePriority(p); err != nil {
			bad("baseline.minPriority: %v", err)
		}
	}
	if u := c.Baseline.ProfilesURL; u != "" && (!strings.HasPrefix(u, "https://") || c.Baseline.ProfilesCA == "") {
		bad("baseline.profilesURL %q: want https:// with baseline.profilesCA set", u)
	}
	switch c.Baseline.ProfilesSource {
	case "", "api":
	case "crd":
		if c.Baseline.ProfilesURL != "" {
			bad("baseline.profilesSource crd: profilesURL is for the api source; set one or the other")
		}
	default:
		bad("baseline.profilesSource %q: want api or crd", c.Baseline.ProfilesSource)
	}
	if l := c.Metrics.Listen; l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			bad("metrics.listen %q: %v", l, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
}
