// Package testutil holds the helpers the tests of every package share: run
// a long-lived part until the test stops it, poll a condition with a
// deadline instead of sleeping, keep the garbage collector busy, build the
// edgefn binary and run `edgefn agent` as a child process, run the test
// binary itself as a child for crash tests (StartChild), connect MQTT
// clients and publish with mosquitto_pub.
package testutil
