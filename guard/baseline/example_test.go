package baseline_test

import (
	"fmt"
	"time"

	"github.com/vigilsec/vigil/guard/baseline"
	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/profile"
)

// A guard feeds enriched events in and gets alerts out; Tick drives
// learning and time-based findings.
func ExampleDetector() {
	start := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	d, err := baseline.New(baseline.Config{MinLearn: 10 * time.Minute, StableAfter: 5 * time.Minute}, nil, nil)
	if err != nil {
		panic(err)
	}
	defer d.Close()
	k := profile.Key{Namespace: "shop", Workload: "Deployment/web", Container: "nginx", Revision: "7d9f"}
	d.Seed(profile.Expected{Key: k, Executables: []string{"/usr/sbin/nginx"}, AdmittedAt: start.Add(-30 * 24 * time.Hour)})

	exec := func(t time.Time, exe string) *event.Event {
		return &event.Event{Kind: event.KindExec, Time: t,
			Proc:      event.Process{Exe: exe, Ancestors: []event.Ancestor{{Name: "containerd-shim"}}},
			Container: event.Container{ID: "c0ffee"},
			K8s:       event.K8s{Namespace: k.Namespace, Workload: k.Workload, ContainerName: k.Container, Revision: k.Revision}}
	}
	for m := 0; m < 20; m++ {
		t := start.Add(time.Duration(m) * time.Minute)
		d.Observe(exec(t, "/usr/sbin/nginx"))
		d.Tick(t)
	}
	fmt.Println(d.Profiles()[0].State)
	for _, a := range d.Observe(exec(start.Add(time.Hour), "/usr/bin/nc")) {
		fmt.Println(a.Rule, a.Priority, a.Fields["baseline.behavior"])
	}
	// Output:
	// ready
	// baseline.new_exec Notice exec:/usr/bin/nc
}
