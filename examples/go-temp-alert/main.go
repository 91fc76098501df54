//go:build wasip1

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/edgefn/edgefn/sandbox/guest"
)

// defaultThreshold applies when the manifest's env sets no THRESHOLD (a
// reactor reads env with guest.Env).
const defaultThreshold = 30.0

type reading struct {
	Sensor  string  `json:"sensor,omitempty"`
	Celsius float64 `json:"celsius"`
}

type enriched struct {
	Sensor    string  `json:"sensor"`
	Celsius   float64 `json:"celsius"`
	Max       float64 `json:"max"`
	Threshold float64 `json:"threshold"`
	Alert     bool    `json:"alert"`
	EventID   string  `json:"event_id"`
}

// The handler is registered in init: a reactor never runs main.
func init() { guest.Handle(handle) }

func main() {}

func handle(ev guest.Event) error {
	var r reading
	if err := json.Unmarshal(ev.Payload(), &r); err != nil {
		return fmt.Errorf("reading %q: %w", ev.Payload(), err)
	}
	if r.Sensor == "" { // from the topic: sensors/<sensor>/temperature
		parts := strings.Split(ev.Subject(), "/")
		r.Sensor = parts[min(1, len(parts)-1)]
	}
	threshold := defaultThreshold
	if v, ok := guest.Env("THRESHOLD"); ok {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("env THRESHOLD %q: %w", v, err)
		}
		threshold = t
	}
	out := enriched{Sensor: r.Sensor, Celsius: r.Celsius, Max: r.Celsius, Threshold: threshold,
		Alert: r.Celsius > threshold, EventID: ev.ID()}

	key := "max/" + r.Sensor
	if old, err := guest.KV.Get(key); err == nil {
		if m, err := strconv.ParseFloat(string(old), 64); err == nil && m > out.Max {
			out.Max = m
		}
	} else if !errors.Is(err, guest.ErrNotFound) {
		return err
	}
	if out.Max == r.Celsius {
		if err := guest.KV.Set(key, strconv.AppendFloat(nil, r.Celsius, 'g', -1, 64)); err != nil {
			return err
		}
	}

	rec, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := guest.Emit(rec); err != nil {
		return err
	}
	if out.Alert {
		guest.Logf(guest.LevelWarn, "%s at %.1f°C, over %.1f: fan on", r.Sensor, r.Celsius, threshold)
		return guest.Publish("actuators/fan/"+r.Sensor, []byte("on"), 1)
	}
	return nil
}
