// Package edgefn holds the domain types every part of the edgefn agent speaks:
// events, the effects a function produces, outbox records, limits, grants and
// function manifests. It imports nothing else of edgefn; the sandbox, the
// triggers, the outbox and the uplinks import it, and the gateway wires them.
package edgefn
