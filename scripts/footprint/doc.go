// Command footprint measures the agent's footprint: binary sizes, time
// from start to "ready" with a warm compile cache, idle RSS with the
// example functions deployed, and RSS under a 1k msg/s QoS 1 MQTT load on
// the embedded broker. `make footprint` runs it and it prints a table.
package main
