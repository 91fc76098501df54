// Package fleet rolls functions out to many gateways through the cloud
// MQTT broker they already reach, used as a desired-state store of
// retained messages. It holds the wire format (signed desired-state
// documents and chunked module blobs addressed by SHA-256), the topic
// layout, and the broker side of publishing and fetching them; the agent
// (Agent) and the CLI (edgefn fleet) are built on it.
//
// Two signatures protect a rollout, both ed25519 with the keys of
// admin.trusted_keys:
//
//   - the document: its canonical bytes start with DocumentHeader and name
//     their target topic and a sequence number, so a document cannot be
//     moved to another group or replayed after a newer one;
//   - each function entry carries the deploy statement of the
//     signed-activation scheme (internal/activation), which the gateway's
//     registry verifies and persists exactly as for edgefn deploy --key, so
//     its per-function sequence numbers hold across both paths.
//
// See docs/fleet.md for the model and the topic layout.
package fleet
