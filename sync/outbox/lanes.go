package outbox

import (
	"context"
	"strings"

	"github.com/edgefn/edgefn"
)

// Head returns the highest seq assigned so far (0 when none): the drain
// point of an uplink's live lane.
func (s *Store) Head(context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen.lastSeq, nil
}

// PendingLane is Pending restricted to one of the two lanes around the
// drain point point. The backlog lane (live false) holds the records with
// seq <= point and every record of the strict functions; the live lane
// (live true) holds the records with seq > point of the other functions.
// Together they hold every pending record once.
func (s *Store) PendingLane(ctx context.Context, after uint64, max, maxBytes int, point uint64, strict []string, live bool) ([]edgefn.Record, error) {
	in := ""
	args := []any{int64(point)}
	if len(strict) > 0 {
		in = ` st.fn IN (SELECT id FROM names WHERE name IN (?` + strings.Repeat(",?", len(strict)-1) + `))`
		for _, f := range strict {
			args = append(args, f)
		}
	}
	var where string
	switch {
	case live && in == "":
		where = ` AND r.seq > ?`
	case live:
		where = ` AND r.seq > ? AND NOT` + in
	case in == "":
		where = ` AND r.seq <= ?`
	default:
		where = ` AND (r.seq <= ? OR` + in + `)`
	}
	return s.pending(ctx, where, args, after, max, maxBytes)
}
