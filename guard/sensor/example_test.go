package sensor_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"

	"github.com/vigilsec/vigil/guard/event"
	"github.com/vigilsec/vigil/guard/sensor"
)

// Start the sensors with the default prefilter, print every event until
// interrupted, then print the drop counters. Needs root.
func Example() {
	s, err := sensor.New(sensor.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stop()
	err = s.Run(ctx, func(e *event.Event) {
		fmt.Printf("%s pid=%d %s %s\n", e.Kind, e.Proc.PID, e.Proc.Exe, e.File.Path)
	})
	if err != nil {
		log.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("dropped %d (per CPU %v), decode errors %d\n", st.Dropped, st.DroppedPerCPU, st.DecodeErrors)
}
