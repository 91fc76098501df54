package edgefn

import "time"

// Manifest describes one function: its module, what triggers it, its limits
// and its grants. It is read from function.yaml; see ParseManifest.
type Manifest struct {
	Name      string            `json:"name"`
	Wasm      string            `json:"wasm"`
	Triggers  []Trigger         `json:"triggers,omitempty"`
	Limits    Limits            `json:"limits,omitempty"`
	Allow     Grants            `json:"allow,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Isolation Isolation         `json:"isolation,omitempty"`
}

// Edge selects which GPIO transitions trigger a function.
type Edge string

// GPIO edges.
const (
	EdgeRising  Edge = "rising"
	EdgeFalling Edge = "falling"
	EdgeBoth    Edge = "both"
)

// Pull selects a GPIO input's pull resistor.
type Pull string

// GPIO pulls.
const (
	PullNone Pull = "none"
	PullUp   Pull = "up"
	PullDown Pull = "down"
)

// Trigger is one event source of a function; exactly one of MQTT, GPIO,
// Every and Cron is set.
type Trigger struct {
	// MQTT is a topic filter; QoS is the subscription QoS (0 or 1).
	MQTT string `json:"mqtt,omitempty"`
	QoS  byte   `json:"qos,omitempty"`
	// GPIO is a pin name; Edge, Pull and Debounce refine it.
	GPIO     string        `json:"gpio,omitempty"`
	Edge     Edge          `json:"edge,omitempty"`
	Pull     Pull          `json:"pull,omitempty"`
	Debounce time.Duration `json:"debounce,omitempty"`
	// Every fires at a fixed interval.
	Every time.Duration `json:"every,omitempty"`
	// Cron fires on a cron schedule (five fields, or a descriptor such as
	// "@hourly").
	Cron string `json:"cron,omitempty"`
}

// Kind returns the trigger's source kind.
func (t *Trigger) Kind() Source {
	switch {
	case t.MQTT != "":
		return SourceMQTT
	case t.GPIO != "":
		return SourceGPIO
	case t.Every != 0 || t.Cron != "":
		return SourceTimer
	}
	return ""
}
