package outbox

import (
	"context"
	"database/sql"
)

// execWriter runs f on the writer connection between two group commits.
func (s *Store) execWriter(ctx context.Context, f func(context.Context, *sql.Conn) error) error {
	return s.do(ctx, &request{kind: opExec, exec: f})
}
