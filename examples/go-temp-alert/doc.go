//go:build wasip1

// Command go-temp-alert is an edgefn reactor written with the Go SDK (sandbox/guest): it
// enriches a temperature reading, keeps each sensor's running maximum in kv, and publishes
// to actuators/fan/<sensor> when the reading is above the threshold.
package main
