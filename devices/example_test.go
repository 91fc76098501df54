package devices_test

import (
	"context"
	"fmt"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

// A button on a pulled-up pin of the simulated chip, pressed once.
func ExampleGPIO_Watch() {
	g, err := devices.Open(devices.Config{Backend: devices.BackendSimulated})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	ctx, cancel := context.WithCancel(context.Background())
	edges := make(chan string)
	done := make(chan error)
	go func() {
		done <- g.Watch(ctx, "GPIO17", edgefn.EdgeBoth, edgefn.PullUp, 0,
			func(e edgefn.Edge, high bool, at time.Time) { edges <- fmt.Sprint(e, " ", high) })
	}()
	for g.Pins()[17].Mode != devices.ModeWatched {
		time.Sleep(time.Millisecond)
	}
	if err := g.Pulse("GPIO17", time.Millisecond); err != nil {
		panic(err)
	}
	fmt.Println(<-edges)
	fmt.Println(<-edges)
	cancel()
	fmt.Println(<-done)
	// Output:
	// falling false
	// rising true
	// <nil>
}

// Outputs written by functions can be checked on the simulated chip.
func ExampleGPIO_Pins() {
	g, err := devices.Open(devices.Config{Backend: devices.BackendSimulated, Pins: []string{"LED", "FAN"}})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	_ = g.Write("FAN", true)
	for _, p := range g.Pins() {
		fmt.Printf("%s %q %v\n", p.Name, p.Mode, p.High)
	}
	// Output:
	// LED "" false
	// FAN "output" true
}
