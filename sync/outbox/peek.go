package outbox

import (
	"context"

	"github.com/edgefn/edgefn"
)

// PendingOf is Pending for the records of one function (all functions
// when function is ""), from the oldest: what edgefn outbox peek shows.
func (s *Store) PendingOf(ctx context.Context, function string, max, maxBytes int) ([]edgefn.Record, error) {
	if function == "" {
		return s.Pending(ctx, 0, max, maxBytes)
	}
	return s.pending(ctx, " AND f.name = ?", []any{function}, 0, max, maxBytes)
}
