// Package mosquitto runs Debian's mosquitto broker for tests: on a free
// loopback port, with a config generated in the test's temporary directory,
// optionally with TLS and persistence, stopped and restarted on demand and
// killed when the test ends.
package mosquitto
