// Package sse writes server-sent events (text/event-stream) for the admin
// API and the console: JSON data, an id a reconnecting EventSource sends
// back as Last-Event-ID, heartbeats, and a write deadline pushed forward
// before every write so a server-wide WriteTimeout does not cut a stream.
package sse
