// Package api is the wire contract of the agent's admin API: the request
// and response types of every route under /v1 (docs/api.md) and a typed
// client. The agent's handlers answer with these types, the CLI decodes
// them and prints them (--json prints them as they are), and the tests
// speak them through the client.
//
// Conventions, the same on every route:
//   - durations are milliseconds, numbers, in fields named *_ms;
//   - times are RFC 3339 strings;
//   - sizes are bytes, numbers;
//   - bytes that may not be text (payloads) are a Data: "payload" when
//     they are UTF-8, "payload_b64" otherwise;
//   - an empty list or map inside an object is left out; an answer that
//     is itself a list is [] when empty;
//   - an error is an Error: {"error": "...", "code": N}, N being the HTTP
//     status (the CLI prints the same object under --json, N being its
//     exit status).
package api
