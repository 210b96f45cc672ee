package event

import (
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func sampleAdmission() *Admission {
	return &Admission{
		Kind: "Deployment", Namespace: "shop", Name: "web", Operation: "CREATE",
		User: "alice", Groups: []string{"system:authenticated", "devs"}, DryRun: true, UID: "u-1",
		Workload: "Deployment/web", Revision: "5d4f8b9c7",
		Pod: AdmissionPod{
			HostNetwork: true, HostUsers: ptr(false), OS: "linux", ServiceAccount: "web",
			RunAsNonRoot: ptr(false), RunAsUser: ptr(int64(0)), RunAsGroup: ptr(int64(-3)),
			Seccomp: ptr(""), AppArmor: ptr("Localhost"), SELinux: &SELinux{},
			Sysctls:     []string{"net.ipv4.tcp_syncookies"},
			Annotations: []string{"a=b"}, Labels: []string{"app=web", "pod-template-hash=5d4f8b9c7"},
			Volumes: []AdmissionVolume{{Name: "data", Type: "emptyDir"}, {Name: "host", Type: "hostPath", HostPath: "/var/run"}},
			Containers: []AdmissionContainer{
				{Name: "init", Kind: ContainerInit, Image: "busybox", Command: []string{"sh", "-c", "true"}},
				{Name: "app", Kind: ContainerRegular, Image: "nginx@sha256:abc", Args: []string{"-g", ""},
					Ports: []string{"80/TCP"}, HostPorts: []string{"8080/TCP"}, ProbeHosts: []string{"evil"},
					ExecCommands: []string{"/bin/check"}, Privileged: ptr(false), AllowPrivilegeEscalation: ptr(true),
					CapsAdd: []string{"NET_ADMIN"}, CapsDrop: []string{"ALL"}, RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1000)),
					ReadOnlyRootFilesystem: ptr(true), ProcMount: ptr("Unmasked"), Seccomp: ptr("RuntimeDefault"),
					AppArmor: ptr("Unconfined"), SELinux: &SELinux{User: "u", Role: "r", Type: "t", Level: "s0"},
					WindowsHostProcess: ptr(false)},
				{Name: "debug", Kind: ContainerEphemeral},
			},
		},
	}
}

func TestAdmissionRoundTrip(t *testing.T) {
	for name, a := range map[string]*Admission{"full": sampleAdmission(), "empty": {}} {
		b, err := AppendAdmission([]byte("prefix"), a)
		if err != nil {
			t.Fatal(err)
		}
		kind, recs, n, err := Decode(b[6:])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if kind != KindAdmission || n != len(b)-6 {
			t.Fatalf("%s: kind %v, consumed %d of %d", name, kind, n, len(b)-6)
		}
		for i := 1; i < len(recs); i++ {
			p, c := recs[i-1], recs[i]
			if p.ID > c.ID || (p.ID == c.ID && p.Index >= c.Index) {
				t.Fatalf("%s: records out of order at %d: (%d,%d) then (%d,%d)", name, i, p.ID, p.Index, c.ID, c.Index)
			}
		}
		got, err := DecodeAdmission(recs)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("%s: round trip differs\n got %+v\nwant %+v", name, got, a)
		}
	}
}

// Presence is part of the model: an explicit false/0/"" must survive, an
// unset field must stay unset.
func TestAdmissionPresence(t *testing.T) {
	b, _ := AppendAdmission(nil, sampleAdmission())
	_, recs, _, _ := Decode(b)
	seen := map[string]any{}
	for _, r := range recs {
		f, _ := FieldByID(r.ID)
		if r.Index == 0 {
			seen[f.Name] = RecordValue(r)
		}
	}
	for name, want := range map[string]any{
		"pod.run_as_non_root": false, "pod.run_as_user": int64(0), "pod.seccomp": "", "pod.host_users": false,
		"pod.selinux_set": true,
	} {
		if got, ok := seen[name]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, ok := seen["pod.host_pid"]; ok {
		t.Error("pod.host_pid false was encoded")
	}
}

func TestDecodeAdmissionRejectsBadIndexes(t *testing.T) {
	one := AppendStr(nil, FieldCtrName, 3, "x")
	recs := []Record{{ID: FieldCtrName, Index: 3, Value: one[RecordHdrSize:]}}
	if _, err := DecodeAdmission(recs); err == nil || !strings.Contains(err.Error(), "container index") {
		t.Fatalf("container index beyond count: %v", err)
	}
	recs = []Record{{ID: FieldPodHostNetwork, Index: 2, Value: []byte{1}}}
	if _, err := DecodeAdmission(recs); err == nil {
		t.Fatal("pod field with index accepted")
	}
	recs = []Record{{ID: FieldPodHostNetwork, Value: []byte{1, 2}}}
	if _, err := DecodeAdmission(recs); err == nil {
		t.Fatal("bad bool accepted")
	}
}

func TestAdmissionFieldsRegistered(t *testing.T) {
	for _, f := range admissionFields {
		if f.ID < 1000 || f.ID > 1999 {
			t.Errorf("%s: id %d outside the admission range", f.Name, f.ID)
		}
		if g, ok := FieldByID(f.ID); !ok || g.Name != f.Name {
			t.Errorf("%s not in the registry", f.Name)
		}
	}
	// Every container field the encoder writes is registered, in id order.
	for i, cf := range containerFields {
		if _, ok := FieldByID(cf.id); !ok {
			t.Errorf("container field %d unregistered", cf.id)
		}
		if i > 0 && containerFields[i-1].id >= cf.id {
			t.Errorf("container fields out of order at %d", cf.id)
		}
	}
	// Kernel events never carry admission records.
	if b := AppendEvent(nil, &Event{Kind: KindExec}); len(b) != HeaderSize+RecordHdrSize+8 {
		t.Errorf("AppendEvent wrote admission fields: %x", b)
	}
}

// FuzzAppendAdmission builds admissions from arbitrary strings and checks the
// encoder's output always decodes back to the same object.
func FuzzAppendAdmission(f *testing.F) {
	f.Add("Pod", "ns", "c1", "img", "a\x00b", int64(0), true, uint8(3))
	f.Add("", "", "", "", "", int64(-1), false, uint8(0))
	f.Add(strings.Repeat("x", 70000), "ns", "c", "i", "arg", int64(1<<40), true, uint8(255))
	f.Fuzz(func(t *testing.T, kind, ns, ctr, image, arg string, uid int64, flag bool, n uint8) {
		a := &Admission{Kind: kind, Namespace: ns, Groups: []string{arg}, DryRun: flag}
		a.Pod.RunAsUser = &uid
		a.Pod.HostUsers = &flag
		for i := 0; i < int(n%8); i++ {
			a.Pod.Containers = append(a.Pod.Containers, AdmissionContainer{Name: ctr, Image: image, Args: []string{arg, ""}, RunAsNonRoot: &flag})
			a.Pod.Volumes = append(a.Pod.Volumes, AdmissionVolume{Name: ctr, Type: arg})
		}
		b, err := AppendAdmission(nil, a)
		if err != nil {
			return
		}
		kd, recs, _, err := Decode(b)
		if err != nil || kd != KindAdmission {
			t.Fatalf("undecodable: %v", err)
		}
		got, err := DecodeAdmission(recs)
		if err != nil {
			t.Fatal(err)
		}
		// Items of string lists are cut at 65535 bytes by design.
		if len(arg) <= maxStrListItem && !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip differs\n got %+v\nwant %+v", got, a)
		}
	})
}

// FuzzDecodeAdmission feeds arbitrary wire bytes to the guest-side decoder.
func FuzzDecodeAdmission(f *testing.F) {
	b, _ := AppendAdmission(nil, sampleAdmission())
	f.Add(b)
	f.Add([]byte{8, 0, 0, 0, 100, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, recs, _, err := Decode(b)
		if err != nil {
			return
		}
		_, _ = DecodeAdmission(recs)
	})
}

func BenchmarkAppendAdmission(b *testing.B) {
	a := sampleAdmission()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendAdmission(buf[:0], a)
	}
}
