// Package fleettest runs a fleet of real edgefn agent processes against a
// real cloud broker, for the fleet tests and the fleet benchmark: it writes
// each gateway's config, starts, stops and kills the processes, follows
// their retained status documents on the broker, runs the fleet CLI and
// counts the traffic through the broker.
//
// The binary is built once by the caller (the gateway package's
// agentBinary, make build) and shared by every gateway; each gateway runs
// the embedded event broker on a free loopback port, so the cloud broker
// carries fleet traffic only.
package fleettest
