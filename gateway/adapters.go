package gateway

import (
	"context"

	"github.com/edgefn/edgefn/sync/outbox"
)

// kvAdapter lets the sandbox read kv from the outbox.
type kvAdapter struct{ s *outbox.Store }

func (k kvAdapter) Get(ctx context.Context, function, key string) ([]byte, bool, error) {
	return k.s.KVGet(ctx, function, key)
}
