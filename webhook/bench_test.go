package webhook

import (
	"fmt"
	"testing"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/object"
	"github.com/vigilsec/vigil/webhook/pss"
)

// benchPod is a realistic pod of a Deployment's ReplicaSet: three
// containers, probes, env, volumes, a restricted security context. Its
// revision is recorded after the first request, as in steady state.
var benchPod = req{kind: "Pod", ns: "prod", name: "", uid: "705ab4f5-6393-11e8-b7cc-42010a800002", object: `{
 "apiVersion":"v1","kind":"Pod",
 "metadata":{"generateName":"web-6b7c9d5f4-","namespace":"prod",
  "labels":{"app":"web","tier":"frontend","pod-template-hash":"6b7c9d5f4"},
  "annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9090"},
  "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-6b7c9d5f4","uid":"0b7f4d1e-1111-2222-3333-444455556666","controller":true,"blockOwnerDeletion":true}]},
 "spec":{
  "serviceAccountName":"web","automountServiceAccountToken":false,"restartPolicy":"Always","terminationGracePeriodSeconds":30,
  "dnsPolicy":"ClusterFirst","schedulerName":"default-scheduler",
  "securityContext":{"runAsNonRoot":true,"runAsUser":10001,"fsGroup":10001,"seccompProfile":{"type":"RuntimeDefault"}},
  "initContainers":[{"name":"migrate","image":"registry.example.com/web@sha256:4f2b8e7c1d9a3b6e5f4c2a1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
   "command":["/app/migrate","--up"],"env":[{"name":"DATABASE_URL","value":"postgres://db.prod.svc:5432/web"}],
   "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"memory":"128Mi"}},
   "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true}}],
  "containers":[
   {"name":"app","image":"registry.example.com/web@sha256:4f2b8e7c1d9a3b6e5f4c2a1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e",
    "command":["/app/web"],"args":["--listen=:8080","--metrics=:9090"],
    "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}],
    "env":[{"name":"DATABASE_URL","value":"postgres://db.prod.svc:5432/web"},{"name":"REDIS_ADDR","value":"redis.prod.svc:6379"},
     {"name":"LOG_LEVEL","value":"info"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
    "resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"cpu":"1","memory":"512Mi"}},
    "livenessProbe":{"httpGet":{"path":"/healthz","port":8080},"initialDelaySeconds":5,"periodSeconds":10},
    "readinessProbe":{"httpGet":{"path":"/ready","port":"http"},"periodSeconds":5},
    "lifecycle":{"preStop":{"exec":{"command":["/bin/sleep","5"]}}},
    "volumeMounts":[{"name":"tmp","mountPath":"/tmp"},{"name":"config","mountPath":"/etc/web","readOnly":true},
     {"name":"kube-api-access","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}],
    "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"readOnlyRootFilesystem":true},
    "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"},
   {"name":"envoy","image":"envoyproxy/envoy:v1.31.0","args":["-c","/etc/envoy/envoy.yaml"],
    "ports":[{"name":"proxy","containerPort":15001}],
    "resources":{"requests":{"cpu":"100m","memory":"128Mi"}},
    "volumeMounts":[{"name":"envoy","mountPath":"/etc/envoy","readOnly":true}],
    "securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]},"runAsUser":10101}}],
  "volumes":[{"name":"tmp","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}},{"name":"config","configMap":{"name":"web"}},
   {"name":"envoy","configMap":{"name":"envoy"}},
   {"name":"kube-api-access","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
    {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
    {"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}}],
  "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]
 }}`}

func BenchmarkReviewInProcess(b *testing.B) {
	ts := startServer(b, nil)
	body := benchPod.json()
	if code, resp, _, _, v := ts.Review(body); code != 200 || v != Allowed {
		b.Fatalf("%d %s %s", code, v, resp)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		ts.Review(body)
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkDecodeReview(b *testing.B) {
	body := benchPod.json()
	b.ReportAllocs()
	for b.Loop() {
		r, err := DecodeReview(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := object.Decode(r.Kind.Kind, r.Object.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFlattenAndCheck(b *testing.B) {
	r, _ := DecodeReview(benchPod.json())
	t, _ := object.Decode("Pod", r.Object.Raw)
	b.ReportAllocs()
	for b.Loop() {
		var a event.Admission
		t.Flatten(&a)
		if v := pss.Check(pss.Restricted, &a.Pod); len(v) != 0 {
			b.Fatal(fmt.Sprint(v))
		}
	}
}
