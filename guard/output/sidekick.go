package output

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/vigilsec/vigil/guard/alert"
)

// SidekickPayload is Falco's JSON output format, which Falcosidekick accepts
// on POST /. Sending exactly this shape lets every Falcosidekick sink (Slack,
// PagerDuty, Loki, Elasticsearch, Kafka, ...) work unchanged.
type SidekickPayload struct {
	UUID         string         `json:"uuid"`
	Output       string         `json:"output"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Time         time.Time      `json:"time"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname"`
}

// ToSidekick converts an alert. Vigil's context that Falco has no field for
// (mode, action, deploy context) goes into output_fields under "vigil.*", so
// sinks that template on output_fields can show it.
func ToSidekick(a *alert.Alert, hostname string) SidekickPayload {
	fields := make(map[string]any, len(a.Fields)+24)
	if a.Event != nil {
		e := a.Event
		put := func(k string, v any, zero bool) {
			if !zero {
				fields[k] = v
			}
		}
		put("evt.type", e.Kind.String(), false)
		put("evt.time", e.Time.UnixNano(), e.Time.IsZero())
		put("proc.pid", e.Proc.PID, e.Proc.PID == 0)
		put("proc.name", e.Proc.Name, e.Proc.Name == "")
		put("proc.exe", e.Proc.Exe, e.Proc.Exe == "")
		put("proc.cmdline", joinArgs(e.Proc.Args), len(e.Proc.Args) == 0)
		put("user.uid", e.Proc.UID, false)
		if len(e.Proc.Ancestors) > 0 {
			names := make([]string, len(e.Proc.Ancestors))
			for i, an := range e.Proc.Ancestors {
				names[i] = an.Name
			}
			fields["proc.pname"] = names[0]
			fields["proc.aname"] = names
		}
		put("container.id", e.Container.ID, e.Container.ID == "")
		put("container.name", e.Container.Name, e.Container.Name == "")
		put("container.image.repository", e.Container.Image, e.Container.Image == "")
		put("k8s.ns.name", e.K8s.Namespace, e.K8s.Namespace == "")
		put("k8s.pod.name", e.K8s.Pod, e.K8s.Pod == "")
		put("k8s.pod.uid", e.K8s.PodUID, e.K8s.PodUID == "")
		put("vigil.workload", e.K8s.Workload, e.K8s.Workload == "")
		put("vigil.revision", e.K8s.Revision, e.K8s.Revision == "")
		put("fd.name", e.File.Path, e.File.Path == "")
		if e.Net.Dst.IsValid() {
			fields["fd.rip"] = e.Net.Dst.Addr().String()
			fields["fd.rport"] = e.Net.Dst.Port()
		}
	}
	for k, v := range a.Fields {
		fields[k] = v
	}
	fields["vigil.mode"] = a.Mode.String()
	fields["vigil.action"] = a.Action.String()
	fields["vigil.outcome"] = a.WouldHave()
	if a.Backend != "" {
		fields["vigil.backend"] = a.Backend
	}
	if a.Count > 1 {
		fields["vigil.count"] = a.Count
	}
	if d := a.Deploy; d != nil {
		fields["vigil.deploy.user"] = d.User
		fields["vigil.deploy.admitted_at"] = d.AdmittedAt
		fields["vigil.deploy.window_open"] = d.WindowOpen
		fields["vigil.deploy.changed"] = d.Changed
	}
	src := "syscall"
	if a.Source == "admission" {
		src = "k8s_audit"
	}
	tags := a.Tags
	if tags == nil {
		tags = []string{}
	}
	return SidekickPayload{
		UUID: newUUID(), Output: a.Message, Priority: a.Priority.String(), Rule: a.Rule,
		Time: a.Time.UTC(), OutputFields: fields, Source: src, Tags: tags, Hostname: hostname,
	}
}

func joinArgs(args []string) string {
	var b bytes.Buffer
	for i, s := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

func newUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Sidekick POSTs alerts to a Falcosidekick (or anything that speaks Falco's
// HTTP output).
type Sidekick struct {
	url      string
	client   *http.Client
	hostname string
	retries  int
}

// NewSidekick posts to url with the given per-request timeout and retries
// transient failures (network errors and 5xx) up to retries times.
func NewSidekick(url string, timeout time.Duration, retries int) *Sidekick {
	host, _ := os.Hostname()
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Sidekick{url: url, client: &http.Client{Timeout: timeout}, hostname: host, retries: retries}
}

// Name implements Sink.
func (s *Sidekick) Name() string { return "falcosidekick" }

// Write implements Sink.
func (s *Sidekick) Write(a *alert.Alert) error {
	body, err := json.Marshal(ToSidekick(a, s.hostname))
	if err != nil {
		return fmt.Errorf("marshal sidekick payload: %w", err)
	}
	var last error
	for attempt := 0; attempt <= s.retries; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("sidekick request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "vigil")
		resp, err := s.client.Do(req)
		if err != nil {
			last = fmt.Errorf("post %s: %w", s.url, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 500:
			last = fmt.Errorf("post %s: %s", s.url, resp.Status)
		default:
			return fmt.Errorf("post %s: %s", s.url, resp.Status)
		}
	}
	return last
}

// Close implements Sink.
func (s *Sidekick) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
