// Package triggers turns the outside world into edgefn Events: MQTT messages
// (an external broker through paho, or the embedded mochi-mqtt broker through
// its hooks), GPIO edges, and interval and cron timers. A trigger knows
// nothing of the sandbox or the outbox; it hands events to a Sink and
// acknowledges its source only when the Sink says the event is committed.
package triggers
