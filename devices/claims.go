package devices

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgefn/edgefn"
)

// Use is what a function does with a pin.
type Use string

// Pin uses a function can claim.
const (
	UseTrigger Use = "trigger" // a gpio trigger: the pin is a watched input
	UseRead    Use = "read"    // allow.gpio_read
	UseWrite   Use = "write"   // allow.gpio_write: the pin is an output
)

// Claim is one function's use of one pin.
type Claim struct {
	Pin      string
	Function string
	Use      Use
}

// ManifestClaims returns the pin uses of function name's manifest: its
// gpio triggers, allow.gpio_read and allow.gpio_write.
func ManifestClaims(name string, m *edgefn.Manifest) []Claim {
	var out []Claim
	for _, t := range m.Triggers {
		if t.Kind() == edgefn.SourceGPIO {
			out = append(out, Claim{Pin: t.GPIO, Function: name, Use: UseTrigger})
		}
	}
	for _, p := range m.Allow.GPIORead {
		out = append(out, Claim{Pin: p, Function: name, Use: UseRead})
	}
	for _, p := range m.Allow.GPIOWrite {
		out = append(out, Claim{Pin: p, Function: name, Use: UseWrite})
	}
	return out
}

// ClaimError is one problem CheckClaims found.
type ClaimError struct {
	Pin       string
	Functions []string // the functions involved, sorted
	Problem   string
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("gpio pin %q: %s (functions %s)", e.Pin, e.Problem, strings.Join(e.Functions, ", "))
}

// CheckClaims checks the pin uses of every deployed function together and
// returns every problem, each a *ClaimError, joined with errors.Join: a pin
// the backend does not have, a pin written by two functions, a pin both
// watched as a trigger and written. Reads combine with anything, and one
// function may claim a pin several times. Pin names compare
// case-insensitively (as the backend resolves them).
func (g *GPIO) CheckClaims(claims []Claim) error {
	type pinClaims struct {
		name              string
		all, write, watch []string
	}
	byPin := map[string]*pinClaims{}
	var order []string
	var bad []error
	for _, c := range claims {
		k := strings.ToUpper(c.Pin)
		if _, canon, ok := g.chip.lookup(c.Pin); ok {
			k = canon
		}
		pc := byPin[k]
		if pc == nil {
			pc = &pinClaims{name: c.Pin}
			byPin[k] = pc
			order = append(order, k)
		}
		pc.all = addName(pc.all, c.Function)
		switch c.Use {
		case UseWrite:
			pc.write = addName(pc.write, c.Function)
		case UseTrigger:
			pc.watch = addName(pc.watch, c.Function)
		case UseRead:
		default:
			bad = append(bad, &ClaimError{Pin: c.Pin, Functions: []string{c.Function},
				Problem: fmt.Sprintf("unknown use %q: use trigger, read or write", c.Use)})
		}
	}
	errs := bad
	for _, k := range order {
		pc := byPin[k]
		if !g.Has(pc.name) {
			errs = append(errs, &ClaimError{Pin: pc.name, Functions: pc.all,
				Problem: fmt.Sprintf("no such pin on this device (gpio backend %s)", g.backend)})
			continue
		}
		if len(pc.write) > 1 {
			errs = append(errs, &ClaimError{Pin: pc.name, Functions: pc.write,
				Problem: "claimed for output by more than one function"})
		}
		if len(pc.write) > 0 && len(pc.watch) > 0 {
			errs = append(errs, &ClaimError{Pin: pc.name, Functions: mergeNames(pc.write, pc.watch),
				Problem: "used both as a trigger input and as an output"})
		}
	}
	return errors.Join(errs...)
}

func addName(names []string, n string) []string {
	if i, found := slices.BinarySearch(names, n); !found {
		names = slices.Insert(names, i, n)
	}
	return names
}

func mergeNames(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		out = addName(out, n)
	}
	return out
}
