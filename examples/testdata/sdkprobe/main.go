//go:build wasip1

// Command sdkprobe is a test fixture of the Go SDK (sandbox/guest): the
// payload names what to do, and what every SDK call returned is emitted, one
// record per call, so the test can compare them with what the host did.
package main

import (
	"bytes"
	"errors"
	"strconv"

	"github.com/edgefn/edgefn/sandbox/guest"
)

func init() { guest.Handle(handle) }

func main() {}

func report(what string, err error) {
	s := what + ": ok"
	if err != nil {
		s = what + ": " + err.Error()
		switch {
		case errors.Is(err, guest.ErrDenied):
			s += " [denied]"
		case errors.Is(err, guest.ErrNotFound):
			s += " [not found]"
		case errors.Is(err, guest.ErrInvalid):
			s += " [invalid]"
		case errors.Is(err, guest.ErrUnavailable):
			s += " [unavailable]"
		case errors.Is(err, guest.ErrOverLimit):
			s += " [over limit]"
		}
	}
	_ = guest.Emit([]byte(s))
}

func handle(ev guest.Event) error {
	p := ev.Payload()
	switch {
	case string(p) == "panic":
		var m map[string]int
		//lint:ignore SA5000 the point: a nil map write panics
		m["x"]++
	case string(p) == "error":
		return errors.New("handler failed on purpose")
	case bytes.HasPrefix(p, []byte("echo")):
		return guest.Emit(p)
	case string(p) == "all":
		all(ev)
	}
	return nil
}

func all(ev guest.Event) {
	report("subject="+ev.Subject()+" source="+ev.Source()+" id="+ev.ID(), nil)
	long, err := ev.LookupMeta("long")
	report("meta long len="+strconv.Itoa(len(long)), err)
	_, err = ev.LookupMeta("nope")
	report("meta nope", err)

	value := bytes.Repeat([]byte("v"), 300)
	report("kv set", guest.KV.Set("k", value))
	got, err := guest.KV.Get("k")
	report("kv get len="+strconv.Itoa(len(got)), err)
	buf := make([]byte, 0, 8)
	buf, err = guest.KV.AppendGet(append(buf, "pre:"...), "k")
	report("kv appendget len="+strconv.Itoa(len(buf)), err)
	report("kv delete", guest.KV.Delete("k"))
	_, err = guest.KV.Get("k")
	report("kv get after delete", err)
	report("kv set empty key", guest.KV.Set("", nil))

	report("publish wildcard", guest.Publish("probe/+/x", []byte("m"), 0))
	report("publish denied", guest.Publish("elsewhere/x", []byte("m"), 0))
	report("publish", guest.Publish("probe/out", []byte("m"), 1))

	report("gpio write", guest.GPIO.Write("GPIO18", true))
	high, err := guest.GPIO.Read("GPIO17")
	report("gpio read GPIO17 high="+strconv.FormatBool(high), err)
	_, err = guest.GPIO.Read("GPIO5")
	report("gpio read GPIO5", err)
	report("gpio write denied", guest.GPIO.Write("GPIO17", true))

	guest.Logf(guest.LevelWarn, "logf %d %s", 42, "done")
	guest.Log(guest.LevelDebug, "log plain")
}
