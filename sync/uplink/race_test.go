//go:build race

package uplink_test

// raceEnabled: the test binary runs under the race detector.
const raceEnabled = true
