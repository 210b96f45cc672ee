package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/vigilsec/vigil/guard/rules"
	"github.com/vigilsec/vigil/webhook"
	"github.com/vigilsec/vigil/webhook/crd"
)

type webhookFlags struct {
	addr, cert, key    string
	selfSigned         bool
	selfSignedDir      string
	selfSignedHosts    []string
	store              string
	window             time.Duration
	defaultMode        string
	namespaceModes     []string
	namespaceModesFile string
	auditLog           string
	readTimeout        time.Duration
	writeTimeout       time.Duration
	idleTimeout        time.Duration
	maxBody            int
	concurrency        int
	verbose            bool
	admissionRules     string
	rulesCache         string
	ruleTimeout        time.Duration
	ruleFailure        string
	maxRuleEvent       int
	rulesUnchecked     []string
	profilesBackend    string
	kubeconfig         string
	crdQueue           int
	crdTimeout         time.Duration
}

func newWebhookCmd() *cobra.Command { return newWebhookCmdWith(&webhookFlags{}) }

func newWebhookCmdWith(f *webhookFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the validating admission webhook (Pod Security Standards, expected-behavior baselines, release windows)",
		Long: `Serves admission.k8s.io/v1 AdmissionReviews over TLS on /validate for Pods and
pod-template owners, applies the admission rules (Wasm modules; by default the built-in Pod Security
Standards pack, baseline and restricted) per namespace mode,
records each admitted revision's expected behavior and opens release windows.
Guards read them from /v1/profiles and /v1/windows. See webhook/README.md.`,
		Example: `  vigil webhook --self-signed --store /tmp/vigil-webhook.db
  vigil webhook --tls-cert tls.crt --tls-key tls.key --namespace-mode prod=enforce:restricted`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			return runWebhook(cmd.Context(), cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", ":8443", "TLS listen address")
	fl.StringVar(&f.cert, "tls-cert", "", "serving certificate (PEM)")
	fl.StringVar(&f.key, "tls-key", "", "serving key (PEM)")
	fl.BoolVar(&f.selfSigned, "self-signed", false, "generate a CA and serving certificate (development); writes ca.crt, tls.crt, tls.key to --self-signed-dir")
	fl.StringVar(&f.selfSignedDir, "self-signed-dir", "vigil-webhook-tls", "where --self-signed writes its files")
	fl.StringSliceVar(&f.selfSignedHosts, "self-signed-hosts", []string{"localhost", "127.0.0.1", "vigil-webhook.vigil-system.svc"}, "DNS names and IPs of the generated certificate")
	fl.StringVar(&f.store, "store", "vigil-webhook.db", "bbolt file holding profiles and release windows")
	fl.DurationVar(&f.window, "release-window", 30*time.Minute, "how long a rollout's release window stays open")
	fl.StringVar(&f.defaultMode, "default-mode", "audit:baseline", "mode of namespaces without a configured or labelled one: enforce[:level], audit[:level] or off")
	fl.StringSliceVar(&f.namespaceModes, "namespace-mode", nil, "namespace=mode pins, e.g. prod=enforce:restricted (repeatable; win over namespace labels)")
	fl.StringVar(&f.namespaceModesFile, "namespace-modes-file", "", "file of namespace=mode lines")
	fl.StringVar(&f.auditLog, "audit-log", "-", "audit records as JSON lines: a file path, or - for stdout")
	fl.DurationVar(&f.readTimeout, "read-timeout", 5*time.Second, "time to read one request, TLS handshake included")
	fl.DurationVar(&f.writeTimeout, "write-timeout", 5*time.Second, "time to write one response")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", 90*time.Second, "keep-alive idle limit")
	fl.IntVar(&f.maxBody, "max-body-bytes", 6<<20, "largest AdmissionReview accepted (413 above)")
	fl.IntVar(&f.concurrency, "concurrency", 4096, "requests served at once")
	fl.BoolVar(&f.verbose, "verbose", false, "debug logging")
	fl.StringVar(&f.admissionRules, "admission-rules", "", "directory of Wasm admission rule modules, the Pod Security Standards pack among them; "+
		"default: the built-in pack (wasm-rules/build/admission beside the binary or in the working directory, or "+systemPackDir+"); "+
		"\"native\" runs the in-process Go checks instead")
	fl.StringVar(&f.rulesCache, "admission-rules-cache", "/var/cache/vigil/wazero", "compiled-code cache of the admission rules (\"\" keeps it in memory)")
	fl.DurationVar(&f.ruleTimeout, "admission-rule-timeout", time.Second, "CPU-time limit of one admission module on one request; a module that uses it up is quarantined (a request starved of CPU for 3x this in wall time is retried once, then fails per --admission-rule-failure)")
	fl.IntVar(&f.maxRuleEvent, "admission-max-event-bytes", 32<<10, "largest admission event handed to the rules; larger objects are denied in enforce namespaces, warned in audit ones")
	fl.StringSliceVar(&f.rulesUnchecked, "admission-rules-unchecked", nil, "sha256:<hex> digests of vetted admission modules to run without wazero's termination checks "+
		"(about 30 CPU-µs less per review for the built-in C pack; such a module is no longer stopped by --admission-rule-timeout); repeatable")
	fl.StringVar(&f.ruleFailure, "admission-rule-failure", "open", "when an admission rule fails (trap, loop, quarantine): open allows with an audit record, closed denies in enforce namespaces")
	fl.StringVar(&f.profilesBackend, "profiles-backend", "auto", "where recorded profiles go besides the bbolt store and the local API: "+
		"crd also writes WorkloadProfile objects (asynchronously; admission never waits for the API server), bbolt writes nothing else; "+
		"auto is crd when running in a pod or given --kubeconfig, else bbolt")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster the crd backend writes to (default: the pod's service account)")
	fl.IntVar(&f.crdQueue, "crd-queue", 1024, "revisions the crd backend holds while the API server is slow or down; more are dropped (counted) and re-queued from the store at the next start")
	fl.DurationVar(&f.crdTimeout, "crd-request-timeout", 10*time.Second, "time limit of one WorkloadProfile write; a slower API server counts as down and the write is retried with backoff")
	return cmd
}

// runWebhookCfg is everything runWebhook needs, flags already parsed.
type runWebhookCfg struct {
	server     webhook.Config
	selfSigned bool
	dir        string
	hosts      []string
	auditPath  string
	rules      rules.Config // Dir "native": no engine
	// crd is set when profiles also go to WorkloadProfile objects.
	crd        bool
	crdAuto    bool // chosen by auto: a pod without a token falls back to bbolt
	kubeconfig string
	crdQueue   int
	crdTimeout time.Duration
}

// systemPackDir is where packages install the built-in admission pack.
const systemPackDir = "/usr/share/vigil/admission"

// builtinPack finds the built-in admission pack: beside the binary (bin/vigil
// in a checkout), in the working directory's checkout, or installed.
func builtinPack() (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "..", "wasm-rules", "build", "admission"))
	}
	dirs = append(dirs, filepath.Join("wasm-rules", "build", "admission"), systemPackDir)
	for _, d := range dirs {
		if m, _ := filepath.Glob(filepath.Join(d, "*.wasm")); len(m) > 0 {
			return d, nil
		}
	}
	return "", fmt.Errorf("no built-in admission pack in %s: run `make rules`, or pass --admission-rules DIR (or native)", strings.Join(dirs, ", "))
}

func (f *webhookFlags) config() (runWebhookCfg, error) {
	var c runWebhookCfg
	def, err := webhook.ParseMode(f.defaultMode)
	if err != nil {
		return c, fmt.Errorf("--default-mode: %w", err)
	}
	modes := map[string]webhook.Mode{}
	if f.namespaceModesFile != "" {
		fh, err := os.Open(f.namespaceModesFile)
		if err != nil {
			return c, err
		}
		modes, err = webhook.ParseNamespaceModes(fh)
		fh.Close()
		if err != nil {
			return c, fmt.Errorf("%s: %w", f.namespaceModesFile, err)
		}
	}
	pins, err := webhook.ParseNamespaceModes(strings.NewReader(strings.Join(f.namespaceModes, "\n")))
	if err != nil {
		return c, fmt.Errorf("--namespace-mode: %w", err)
	}
	for ns, m := range pins {
		modes[ns] = m
	}
	failure, err := webhook.ParseFailurePolicy(f.ruleFailure)
	if err != nil {
		return c, fmt.Errorf("--admission-rule-failure: %w", err)
	}
	// The wall cap keeps a starved review (retried once) inside the API
	// server's 10 s webhook timeout.
	c.rules = rules.Config{Dir: f.admissionRules, CacheDir: f.rulesCache, Timeout: f.ruleTimeout, WallTimeout: 3 * f.ruleTimeout}
	for _, d := range f.rulesUnchecked {
		h, ok := strings.CutPrefix(d, "sha256:")
		if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return c, fmt.Errorf("--admission-rules-unchecked %q: want sha256:<64 lowercase hex>", d)
		}
		c.rules.Unchecked = append(c.rules.Unchecked, h)
	}
	if !f.selfSigned && (f.cert == "" || f.key == "") {
		return c, fmt.Errorf("TLS only: give --tls-cert and --tls-key, or --self-signed")
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	c.server = webhook.Config{
		Addr: f.addr, CertFile: f.cert, KeyFile: f.key, StorePath: f.store,
		WindowDuration: f.window, DefaultMode: def, NamespaceModes: modes,
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		MaxBodyBytes: f.maxBody, Concurrency: f.concurrency, RuleFailure: failure, MaxRuleEventBytes: f.maxRuleEvent,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	c.selfSigned, c.dir, c.hosts, c.auditPath = f.selfSigned, f.selfSignedDir, f.selfSignedHosts, f.auditLog
	switch f.profilesBackend {
	case "crd":
		c.crd = true
	case "bbolt":
	case "auto":
		c.crd = f.kubeconfig != "" || crd.InCluster()
		c.crdAuto = true
	default:
		return c, fmt.Errorf("--profiles-backend %q: want auto, crd or bbolt", f.profilesBackend)
	}
	c.kubeconfig, c.crdQueue, c.crdTimeout = f.kubeconfig, f.crdQueue, f.crdTimeout
	return c, nil
}

func runWebhook(ctx context.Context, c runWebhookCfg) error {
	if c.selfSigned {
		certs, err := webhook.GenerateSelfSigned(c.dir, c.hosts, time.Now())
		if err != nil {
			return err
		}
		c.server.CertFile, c.server.KeyFile = certs.CertFile, certs.KeyFile
		abs, _ := filepath.Abs(certs.CAFile)
		c.server.Logger.Info("self-signed certificate written", "ca", abs)
	}
	var audit io.Writer = os.Stdout
	if c.auditPath != "-" {
		fh, err := os.OpenFile(c.auditPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		defer fh.Close()
		audit = fh
	}
	c.server.AuditLog = audit
	if c.rules.Dir != "native" {
		if c.rules.Dir == "" {
			dir, err := builtinPack()
			if err != nil {
				return err
			}
			c.rules.Dir = dir
		}
		if c.rules.CacheDir != "" {
			// A read-only root (the deployment's default) only costs the
			// cold compile at each start.
			if err := os.MkdirAll(c.rules.CacheDir, 0o755); err != nil {
				c.server.Logger.Warn("admission rules: compiled-code cache unavailable, compiling in memory", "dir", c.rules.CacheDir, "err", err)
				c.rules.CacheDir = ""
			}
		}
		c.rules.Logger = c.server.Logger
		w, err := webhook.OpenWasmRules(ctx, c.rules)
		if err != nil {
			return err
		}
		defer w.Close()
		st := w.Engine().Stats()
		for _, m := range st.Modules {
			c.server.Logger.Info("admission rules", "file", m.Path, "module", m.Module, "rules", m.Rules, "quarantined", m.Quarantined, "reason", m.Reason)
		}
		if len(st.Modules) == 0 {
			return fmt.Errorf("admission rules: no modules in %s", c.rules.Dir)
		}
		c.server.Rules = w
	} else {
		c.server.Logger.Warn("admission rules: native in-process Pod Security Standards checks; no Wasm rules run")
	}
	var rc *rest.Config
	if c.crd {
		var err error
		rc, err = crd.RESTConfig(c.kubeconfig)
		switch {
		case err != nil && c.crdAuto:
			c.server.Logger.Warn("profiles backend auto: no usable service account, using bbolt only", "err", err)
			rc = nil
		case err != nil:
			return fmt.Errorf("profiles backend crd: %w", err)
		}
	}
	if rc != nil {
		rc.UserAgent = "vigil-webhook"
		dc, err := dynamic.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("profiles backend crd: %w", err)
		}
		w := crd.NewWriter(crd.NewDynamicApplier(dc), crd.WriterConfig{QueueSize: c.crdQueue, RequestTimeout: c.crdTimeout, Logger: c.server.Logger})
		// Deferred before Run's own close: the server stops enqueueing
		// first, then the writer stops.
		defer w.Close()
		c.server.Profiles = w
		c.server.Logger.Info("profiles backend: crd (WorkloadProfile objects) and bbolt", "api", rc.Host)
	} else {
		c.server.Logger.Info("profiles backend: bbolt and the local API only")
	}
	return webhook.Run(ctx, c.server)
}
