// Package console is the agent's read-only web console, served at the root
// of the admin listener: an overview, the functions with their charts and
// live logs, and live MQTT traffic. Pages are rendered on the server with
// html/template and refreshed by one small embedded script; sign-in takes
// the admin token once and keeps a server-side session behind an HttpOnly,
// Secure, SameSite=Strict cookie. The console changes nothing: the admin
// API it sits beside keeps requiring the bearer token.
package console
