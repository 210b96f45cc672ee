package object

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/vigilsec/vigil/guard/profile"
)

const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations:
        vigil.dev/allowed-egress: "10.0.0.0/8, payments.example.com:443"
        vigil.dev/extra-executables: /usr/bin/curl
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      initContainers:
      - name: migrate
        image: registry.example.com/web:1.4
        command: [/app/migrate, --up]
        env: [{name: DATABASE_URL, value: "postgres://db.shop.svc:5432/web"}]
      containers:
      - name: app
        image: registry.example.com/web:1.4
        args: [--listen, ":8080"]
        ports: [{containerPort: 8080, name: http}, {containerPort: 9090, protocol: UDP}]
        env:
        - {name: REDIS_ADDR, value: "redis.shop.svc:6379"}
        - {name: KAFKA_BROKERS, value: "k1:9092,k2:9092"}
        - {name: LOG_LEVEL, value: debug}
        - {name: DATA_DIR, value: /var/lib/web}
        - {name: API, value: "https://api.example.com/v1"}
        livenessProbe: {exec: {command: [/bin/healthcheck, --live]}}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        lifecycle: {preStop: {exec: {command: [/bin/sh, -c, "sleep 5"]}}}
        securityContext:
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: cfg, mountPath: /etc/web, readOnly: true}
      volumes:
      - {name: tmp, emptyDir: {}}
      - {name: cfg, configMap: {name: web}}
`

func decodeYAML(t *testing.T, kind, y string) *Template {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := Decode(kind, js)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestExpectedFromDeployment(t *testing.T) {
	tm := decodeYAML(t, "Deployment", deployment)
	if tm.Workload != "Deployment/web" || tm.Revision == "" {
		t.Fatalf("workload %q revision %q", tm.Workload, tm.Revision)
	}
	now := time.Unix(1700000000, 0).UTC()
	got := tm.Expected("shop", now)
	if len(got) != 2 {
		t.Fatalf("%d profiles", len(got))
	}
	mig, app := got[0], got[1]
	if mig.Key != (profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "migrate", Revision: tm.Revision}) {
		t.Errorf("key %+v", mig.Key)
	}
	if !reflect.DeepEqual(mig.Executables, []string{"/app/migrate", "/usr/bin/curl"}) {
		t.Errorf("migrate executables %q", mig.Executables)
	}
	if !reflect.DeepEqual(mig.Commands, [][]string{{"/app/migrate", "--up"}}) {
		t.Errorf("migrate commands %q", mig.Commands)
	}
	if want := (profile.Egress{Host: "db.shop.svc", Port: 5432, From: "env:DATABASE_URL"}); mig.Egress[0] != want {
		t.Errorf("migrate egress %+v", mig.Egress)
	}
	if !reflect.DeepEqual(mig.WritablePaths, []string{"/"}) {
		t.Errorf("migrate writable %q", mig.WritablePaths)
	}

	if !reflect.DeepEqual(app.Executables, []string{ImageDefault, "/bin/healthcheck", "/bin/sh", "/usr/bin/curl"}) {
		t.Errorf("app executables %q", app.Executables)
	}
	wantCmds := [][]string{{ImageDefault, "--listen", ":8080"}, {"/bin/healthcheck", "--live"}, {"/bin/sh", "-c", "sleep 5"}}
	if !reflect.DeepEqual(app.Commands, wantCmds) {
		t.Errorf("app commands %q", app.Commands)
	}
	wantPorts := []profile.Port{{Port: 8080, Proto: "TCP", Name: "http"}, {Port: 9090, Proto: "UDP"}}
	if !reflect.DeepEqual(app.ListenPorts, wantPorts) {
		t.Errorf("ports %+v", app.ListenPorts)
	}
	wantEgress := []profile.Egress{
		{Host: "redis.shop.svc", Port: 6379, From: "env:REDIS_ADDR"},
		{Host: "k1", Port: 9092, From: "env:KAFKA_BROKERS"},
		{Host: "k2", Port: 9092, From: "env:KAFKA_BROKERS"},
		{Host: "api.example.com", Port: 443, From: "env:API"},
		{CIDR: "10.0.0.0/8", From: "annotation"},
		{Host: "payments.example.com", Port: 443, From: "annotation"},
	}
	if !reflect.DeepEqual(app.Egress, wantEgress) {
		t.Errorf("egress\n got %+v\nwant %+v", app.Egress, wantEgress)
	}
	if !reflect.DeepEqual(app.WritablePaths, []string{"/tmp"}) {
		t.Errorf("writable %q (read-only root, cfg read-only)", app.WritablePaths)
	}
	pv := app.Privilege
	if !pv.RunAsNonRoot || pv.RunAsUser == nil || *pv.RunAsUser != 1000 || !pv.ReadOnlyRootFilesystem ||
		pv.AllowPrivilegeEscalation == nil || *pv.AllowPrivilegeEscalation || !reflect.DeepEqual(pv.CapsDrop, []string{"ALL"}) ||
		!reflect.DeepEqual(pv.CapsAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("privilege %+v", pv)
	}
	if !app.AdmittedAt.Equal(now) || app.Image != "registry.example.com/web:1.4" {
		t.Errorf("image %q admitted %v", app.Image, app.AdmittedAt)
	}
}

func TestWorkloadAndRevision(t *testing.T) {
	dep := decodeYAML(t, "Deployment", deployment)
	for _, tc := range []struct {
		name, kind, y, workload, revision string
	}{
		{"pod of a deployment's replicaset", "Pod", `
metadata:
  name: web-7d9f-abcde
  labels: {pod-template-hash: 7d9f}
  ownerReferences: [{kind: ReplicaSet, name: web-7d9f, controller: true, apiVersion: apps/v1, uid: x}]
spec: {containers: [{name: app, image: x}]}`, "Deployment/web", "7d9f"},
		{"bare pod", "Pod", `
metadata: {name: debug}
spec: {containers: [{name: app, image: x}]}`, "Pod/debug", ""},
		{"pod of a statefulset", "Pod", `
metadata:
  name: db-0
  ownerReferences: [{kind: StatefulSet, name: db, controller: true, apiVersion: apps/v1, uid: x}]
spec: {containers: [{name: app, image: x}]}`, "StatefulSet/db", ""},
		{"replicaset of a deployment", "ReplicaSet", `
metadata:
  name: web-7d9f
  labels: {pod-template-hash: 7d9f}
  ownerReferences: [{kind: Deployment, name: web, controller: true, apiVersion: apps/v1, uid: x}]
spec: {template: {metadata: {labels: {pod-template-hash: 7d9f}}, spec: {containers: [{name: app, image: x}]}}}`,
			"Deployment/web", "7d9f"},
		{"job of a cronjob", "Job", `
metadata:
  name: report-29000000
  ownerReferences: [{kind: CronJob, name: report, controller: true, apiVersion: batch/v1, uid: x}]
spec: {template: {spec: {containers: [{name: app, image: x}]}}}`, "CronJob/report", ""},
		{"cronjob", "CronJob", `
metadata: {name: report}
spec: {schedule: "* * * * *", jobTemplate: {spec: {template: {spec: {containers: [{name: app, image: x}]}}}}}`,
			"CronJob/report", ""},
		{"daemonset", "DaemonSet", `
metadata: {name: agent}
spec: {template: {spec: {containers: [{name: app, image: x}]}}}`, "DaemonSet/agent", ""},
		{"generateName pod", "Pod", `
metadata: {generateName: job-}
spec: {containers: [{name: app, image: x}]}`, "Pod/job-", ""},
	} {
		tm := decodeYAML(t, tc.kind, tc.y)
		if tm.Workload != tc.workload {
			t.Errorf("%s: workload %q, want %q", tc.name, tm.Workload, tc.workload)
		}
		if tc.revision != "" && tm.Revision != tc.revision {
			t.Errorf("%s: revision %q, want %q", tc.name, tm.Revision, tc.revision)
		}
		if tm.Revision == "" {
			t.Errorf("%s: no revision", tc.name)
		}
	}
	// The Deployment's revision is the hash of its template: stable, and
	// different when the template changes.
	again := decodeYAML(t, "Deployment", deployment)
	if again.Revision != dep.Revision {
		t.Errorf("revision not stable: %s vs %s", again.Revision, dep.Revision)
	}
	changed := decodeYAML(t, "Deployment", replace(deployment, "web:1.4", "web:1.5"))
	if changed.Revision == dep.Revision {
		t.Error("image change kept the revision")
	}
	if got := Changed(dep.Aspects(), changed.Aspects()); !reflect.DeepEqual(got, []string{"image"}) {
		t.Errorf("changed %v, want [image]", got)
	}
	envChange := decodeYAML(t, "Deployment", replace(deployment, "LOG_LEVEL, value: debug", "LOG_LEVEL, value: info"))
	if got := Changed(dep.Aspects(), envChange.Aspects()); !reflect.DeepEqual(got, []string{"env"}) {
		t.Errorf("changed %v, want [env]", got)
	}
	if got := Changed(dep.Aspects(), again.Aspects()); len(got) != 0 {
		t.Errorf("identical templates differ in %v", got)
	}
}

func replace(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	panic("no " + old)
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode("ConfigMap", []byte(`{}`)); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
	for _, k := range Kinds {
		if _, err := Decode(k, []byte(`{"spec": 7}`)); err == nil {
			t.Errorf("%s: bad spec accepted", k)
		}
	}
}

func TestEgressIgnoresPlainValues(t *testing.T) {
	for _, v := range []string{"debug", "/var/lib/x", "true", "8080", "a b", "key=value", "::"} {
		if e := parseEgressValue(v, "env:X"); len(e) != 0 {
			t.Errorf("%q became egress %+v", v, e)
		}
	}
}
