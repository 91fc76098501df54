// Package tlsclient is the one TLS client config of the agent's config
// files (the external broker, the cloud uplinks): which CA, client
// certificate and server name to use, checked and loaded the same way
// everywhere.
package tlsclient
