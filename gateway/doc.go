// Package gateway is the edgefn agent: it reads the agent config, loads the
// deployed functions, starts the triggers, routes every event to the
// functions it triggers through a bounded queue per function, runs them in
// the sandbox, commits their effects to the outbox, applies publishes and
// GPIO writes after the commit and only then acknowledges the source. It is
// the only package that wires the others together; it also serves the admin
// HTTP API and the metrics.
package gateway
