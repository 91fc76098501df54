// Package mosquittotest starts Debian's mosquitto broker on a free loopback
// port for tests, with persistence in the test's temporary directory so a
// restart keeps sessions and queued messages, and stops it when the test ends.
package mosquittotest
