// Command mqttbench measures the MQTT hot path side by side: a QoS 1 JSON
// reading published by N device connections, handled by a function, and a
// QoS 1 derived message received by a subscriber that measures the
// end-to-end latency. It runs the same load against the embedded floor
// (mochi with an in-process republish hook), mosquitto with a do-nothing
// paho forwarder, Node-RED 4 (when node and npm exist) and edgefn embedded
// and external in both durabilities, reads the CPU time and RSS of every
// gateway-side process from /proc (the load tool excluded), and writes
// docs/benchmarks.md with SVG charts. `make bench` and `make bench-quick`
// run it; see docs/benchmarks.md for what each figure means.
package main
