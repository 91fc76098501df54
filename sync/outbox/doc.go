// Package outbox is edgefn's durable store: one SQLite database (WAL mode) in
// the data dir that group-commits the effects of many invocations (emitted
// records, invocation records, logs and per-function key-value writes) in one
// transaction, tells each caller when its invocation is durable, enforces the
// outbox budgets without ever dropping silently, and feeds the uplinks
// through Pending/Confirm/DeadLetter.
package outbox
