package webhook

import (
	"encoding/json"
	"testing"

	gojson "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

func benchCodec(b *testing.B, u func([]byte, any) error) {
	body := benchPod.json()
	b.ReportAllocs()
	for b.Loop() {
		var r admissionv1.AdmissionReview
		if err := u(body, &r); err != nil {
			b.Fatal(err)
		}
		var p corev1.Pod
		if err := u(r.Request.Object.Raw, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecStd(b *testing.B)   { benchCodec(b, json.Unmarshal) }
func BenchmarkCodecGoccy(b *testing.B) { benchCodec(b, gojson.Unmarshal) }
func BenchmarkCodecJsoniter(b *testing.B) {
	benchCodec(b, jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal)
}
