package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	s := New()
	desc := prometheus.NewDesc("vigil_test_drops_total", "drops", []string{"cpu"}, nil)
	drops := []float64{3, 5}
	if err := s.CollectFunc([]*prometheus.Desc{desc}, func(ch chan<- prometheus.Metric) {
		for i, v := range drops {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, string(rune('0'+i)))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("readyz before ready: %d %q", code, body)
	}
	s.SetReady(func() error { return nil })
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	s.SetReady(func() error { return errors.New("sensor detached") })
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "sensor detached") {
		t.Fatalf("readyz %d %q", code, body)
	}
	drops[1] = 9
	_, body := get(t, base+"/metrics")
	for _, want := range []string{`vigil_test_drops_total{cpu="0"} 3`, `vigil_test_drops_total{cpu="1"} 9`, "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
