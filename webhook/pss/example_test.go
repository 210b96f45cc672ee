package pss_test

import (
	"fmt"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/webhook/pss"
)

func ExampleCheck() {
	no := false
	pod := &event.AdmissionPod{
		HostNetwork: true,
		Containers: []event.AdmissionContainer{
			{Name: "app", Kind: event.ContainerRegular, AllowPrivilegeEscalation: &no, CapsDrop: []string{"ALL"}},
		},
	}
	for _, v := range pss.Check(pss.Baseline, pod) {
		fmt.Println(v.Check+":", v)
	}
	fmt.Println(len(pss.Check(pss.Restricted, pod)), "restricted violations")
	// Output:
	// hostNamespaces: host namespaces (hostNetwork=true)
	// 3 restricted violations
}
