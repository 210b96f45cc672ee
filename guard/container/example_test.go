package container_test

import (
	"fmt"

	"github.com/vigilsec/vigil/guard/container"
)

func ExampleParsePath() {
	p := container.ParsePath("/kubepods.slice/kubepods-burstable.slice/" +
		"kubepods-burstable-pod8a3e5c0e_1b2d_4f6a_9c7e_0d1f2a3b4c5d.slice/" +
		"cri-containerd-4e5c1d9f0a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d.scope")
	fmt.Println(p.Runtime, p.ID[:12], p.PodUID, p.QoS)
	// Output: containerd 4e5c1d9f0a8b 8a3e5c0e-1b2d-4f6a-9c7e-0d1f2a3b4c5d burstable
}
