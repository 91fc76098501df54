package devices

import (
	"errors"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// ErrNoChip: the periph backend found no GPIO pin on this host.
var ErrNoChip = errors.New("no GPIO pins found")

// periphChip is the periph backend: pins from periph's registry, filled
// by host.Init with the drivers that match this host.
type periphChip struct{}

func openPeriph() (periphChip, error) {
	if _, err := host.Init(); err != nil {
		return periphChip{}, fmt.Errorf("gpio backend periph: load host drivers: %w", err)
	}
	if len(gpioreg.All()) == 0 {
		return periphChip{}, fmt.Errorf("gpio backend periph: %w (no /dev/gpiochip* or known SoC; use backend simulated or none on this host)", ErrNoChip)
	}
	return periphChip{}, nil
}

func (periphChip) lookup(name string) (gpio.PinIO, string, bool) {
	p := gpioreg.ByName(name)
	if p == nil {
		p = gpioreg.ByName(strings.ToUpper(name))
	}
	if p == nil {
		return nil, "", false
	}
	if r, ok := p.(gpio.RealPin); ok {
		p = r.Real()
	}
	return p, p.Name(), true
}

func (periphChip) names() []string {
	var out []string
	for _, p := range gpioreg.All() {
		out = append(out, p.Name())
	}
	return out
}
