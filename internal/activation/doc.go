// Package activation defines the signed statement that authorizes making
// a function's content active on an agent (a deploy or a rollback): its
// canonical bytes, its ed25519 signature and the JSON envelope that carries
// both. It knows nothing of HTTP or MQTT: the CLI signs, the agent verifies,
// and any transport carries the envelope.
//
// The idea is TUF/Uptane's, kept small: a statement names the function,
// the SHA-256 of its manifest and of its module, and a sequence number; an
// agent accepts a statement only from a trusted key and only if its
// sequence is higher than every one it accepted for that function before,
// so an old statement cannot be replayed to bring back old content.
package activation
