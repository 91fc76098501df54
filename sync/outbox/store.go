package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// connector opens SQLite connections without registering a driver name
// (sql.Register is process-wide state).
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.driver }

// walCheckpointPages is the writer's wal_autocheckpoint.
const walCheckpointPages = 4000

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("outbox: store is closed")

// ErrCorrupt is matched (errors.Is) by a *CorruptError.
var ErrCorrupt = errors.New("outbox database is corrupt")

// CorruptError says the database file is damaged or is not a SQLite
// database. The recovery path: MoveAside(Path) (the CLI's `edgefn outbox
// recover`), which keeps the old file next to the new one for inspection;
// the next Open starts an empty outbox. Pending records in the old file are
// not sent.
type CorruptError struct {
	Path   string
	Detail string
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("outbox database %s is corrupt (%s): stop the agent, move it aside with `edgefn outbox recover` "+
		"(outbox.MoveAside), which renames it to %s.corrupt-<time> and keeps it for inspection; the agent then starts with an empty outbox",
		e.Path, e.Detail, e.Path)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *CorruptError) Unwrap() error { return e.Err }

var sqliteHeader = []byte("SQLite format 3\x00")

// MoveAside renames the database at path and its -wal and -shm files to
// "<path>.corrupt-<UTC time>" (the WAL and shared-memory files keep their
// suffixes, so the moved database still opens with its WAL) and returns the
// new database path. The next Open of path starts a fresh outbox. The store
// must not be open.
//
// So that record ids stay unique for the cloud's deduplication, MoveAside
// leaves "<path>.seq-floor" behind: the highest seq it can still read from
// the old file, or the current time in microseconds if that is higher (the
// old file may be too damaged to tell). The fresh outbox's seqs start above
// it.
func MoveAside(path string) (string, error) {
	dst := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000")
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("outbox: move %s aside: %w", path, err)
	}
	for _, suf := range []string{"-wal", "-shm"} {
		if err := os.Rename(path+suf, dst+suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			return dst, fmt.Errorf("outbox: move %s aside: %w", path+suf, err)
		}
	}
	floor := max(readHighWater(dst), uint64(time.Now().UnixMicro()))
	if err := os.WriteFile(path+seqFloorSuffix, []byte(strconv.FormatUint(floor, 10)+"\n"), 0o600); err != nil {
		return dst, fmt.Errorf("outbox: write %s: %w", path+seqFloorSuffix, err)
	}
	return dst, nil
}

const seqFloorSuffix = ".seq-floor"

// readHighWater reads, best effort, the highest seq of a (maybe damaged)
// outbox file; 0 if it cannot.
func readHighWater(path string) uint64 {
	db := sql.OpenDB(connector{dsn: "file:" + path + "?mode=ro", driver: &sqlite3.SQLiteDriver{}})
	defer db.Close()
	var hw uint64
	for _, q := range []string{
		"SELECT max(value) FROM counters WHERE name = 'last_seq'",
		"SELECT max(seq) FROM records",
		"SELECT max(seq) FROM dead_letters",
	} {
		var v sql.NullInt64
		if err := db.QueryRow(q).Scan(&v); err == nil && v.Valid {
			hw = max(hw, uint64(v.Int64))
		}
	}
	return hw
}

// applySeqFloor starts seqs above the floor MoveAside left, then removes it.
func (s *Store) applySeqFloor(ctx context.Context) error {
	name := s.cfg.Path + seqFloorSuffix
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	floor, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 63)
	if err != nil {
		return fmt.Errorf("%s: %w (delete it if the outbox was not recovered)", name, err)
	}
	if floor > s.st.lastSeq {
		if _, err := s.wc.ExecContext(ctx, "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", counterLastSeq, int64(floor)); err != nil {
			return err
		}
		s.st.lastSeq = floor
		s.log.Info("outbox: seqs continue above the recovered database's", "floor", floor)
	}
	return os.Remove(name)
}

// Store is the durable outbox. All writes go through one committer
// goroutine that batches them into group commits; reads use a separate pool
// of connections and see committed data only (WAL readers do not block the
// writer). A Store is safe for concurrent use.
type Store struct {
	cfg Config
	log *slog.Logger

	wdb *sql.DB // a pool of one connection, pinned as wc
	// wc is the writer connection, taken from wdb at Open and held until
	// Close: every write (the committer's batches, its maintenance, the
	// Close checkpoint) runs on it, so none waits for a pool hand-off.
	// Only the committer uses it once Open has returned; with a pool of
	// one, any other use of wdb would wait forever.
	wc    *sql.Conn
	rdb   *sql.DB // readers
	stmts stmts

	queue  chan *request
	stop   chan struct{}
	exited chan struct{}
	notify chan struct{}

	// CommitAsync answers: the committer collects a batch's requests in
	// thens and sends them to the completion goroutine (completer), which
	// closes completed when the committer has exited and all are answered.
	thens       []*request
	completions chan []*request
	completed   chan struct{}

	closeMu sync.RWMutex
	closed  bool

	// st is owned by the committer; mu guards the copy Stats reads.
	mu   sync.Mutex
	st   state
	seen state // snapshot for Stats

	names       map[string]int64    // committer only
	streams     map[streamKey]int64 // committer only
	liveStreams int                 // streams after the last pruning
	// deletedSinceGC: records were deleted since the last stream pruning,
	// so streams may have become unused.
	deletedSinceGC bool
	lastDropLog    time.Time // committer only

	// Deferred invocations (no record, no kv write) wait for the next
	// transaction; usage sums of committed invocations are written at most
	// once per DeferFlush (see Commit).
	defMu      sync.Mutex
	deferred   []*request
	usageDirty bool                   // usagePend is not empty (read by flushDeferred)
	kick       chan struct{}          // too many deferred: commit them now
	usagePend  map[usageKey]*usageAgg // committer only
	usageWrote time.Time              // committer only
}

// state is the in-memory accounting, loaded at open and updated after each
// successful commit.
type state struct {
	lastSeq    uint64
	depth      int64
	bytes      int64
	lastInv    int64
	invCount   int64 // rows in invocations (failures)
	usageCount int64 // successful invocations summed in usage_minutes
	lastLog    int64
	nextName   int64
	nextStream int64
	deadCount  int64
	commits    int64 // group commits since open
	drops      map[string]int64
	logCount   map[int64]int64 // per function id
	kv         map[int64]kvUsage
}

type kvUsage struct{ keys, bytes int64 }

func (st state) clone() state {
	c := st
	c.drops = cloneMap(st.drops)
	c.logCount = cloneMap(st.logCount)
	c.kv = cloneMap(st.kv)
	return c
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Open opens (creating it if needed) the outbox at cfg.Path: it checks the
// data dir is writable, checks the file header and runs PRAGMA quick_check
// (a damaged file gives a *CorruptError naming the file and the recovery
// path), migrates the schema, loads the counters and starts the committer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkDir(cfg.Path); err != nil {
		return nil, err
	}
	if err := checkHeader(cfg.Path); err != nil {
		return nil, err
	}
	// SQLite would create the database under the umask (0644 by default);
	// its -wal and -shm files take the database's mode.
	if f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("outbox %s: create: %w", cfg.Path, err)
	}
	syncMode := "FULL"
	if cfg.Durability == DurabilityNormal {
		syncMode = "NORMAL"
	}
	// Pragmas run on every new writer connection, in this order: page_size
	// and auto_vacuum take effect only while the file is still empty, before
	// WAL mode writes the header. auto_vacuum is off: with it every commit
	// that allocates or frees pages also rewrites a pointer-map page (a
	// twentieth of the bytes written per record); reclaim uses VACUUM
	// instead, when little is left to copy. The automatic checkpoint runs
	// every walCheckpointPages pages instead of SQLite's 1000: when the
	// uplink keeps up, records are deleted soon after they are written and
	// their pages reused, so a longer WAL holds several versions of the
	// same pages and the checkpoint copies each only once (8 MiB of WAL at
	// 2 KiB pages). journal_size_limit cuts the WAL back to that size
	// after a checkpoint instead of letting it grow forever or truncating
	// it to zero each time (re-growing costs file-system metadata writes).
	pragmas := []string{
		fmt.Sprintf("PRAGMA page_size = %d", cfg.PageSize),
		"PRAGMA auto_vacuum = NONE",
		"PRAGMA journal_mode = WAL",
		"PRAGMA synchronous = " + syncMode,
		fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walCheckpointPages),
		fmt.Sprintf("PRAGMA journal_size_limit = %d", walCheckpointPages*max(cfg.PageSize, 4096)),
		"PRAGMA temp_store = MEMORY",
	}
	wdb := sql.OpenDB(connector{dsn: "file:" + cfg.Path + "?_busy_timeout=10000&_txlock=immediate", driver: &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			for _, p := range pragmas {
				if _, err := c.Exec(p, nil); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return nil
		},
	}})
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	var wc *sql.Conn
	fail := func(err error) (*Store, error) {
		if wc != nil {
			_ = wc.Close()
		}
		_ = wdb.Close()
		return nil, err
	}
	if err := wdb.PingContext(ctx); err != nil {
		return fail(classify(cfg.Path, "open", err))
	}
	if !cfg.SkipQuickCheck {
		if err := quickCheck(ctx, wdb, cfg.Path); err != nil {
			return fail(err)
		}
	}
	if err := migrate(ctx, wdb, cfg.Path); err != nil {
		return fail(classify(cfg.Path, "migrate", err))
	}
	wc, err := wdb.Conn(ctx)
	if err != nil {
		return fail(classify(cfg.Path, "open", err))
	}
	rdb := sql.OpenDB(connector{dsn: "file:" + cfg.Path + "?_busy_timeout=10000&_query_only=true", driver: &sqlite3.SQLiteDriver{}})
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	s := &Store{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "outbox", "path", cfg.Path),
		wdb:    wdb,
		wc:     wc,
		rdb:    rdb,
		queue:  make(chan *request, 4096),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
		notify: make(chan struct{}, 1),
		names:  map[string]int64{},

		completions: make(chan []*request, 64),
		completed:   make(chan struct{}),
	}
	if err := s.load(ctx); err != nil {
		_ = rdb.Close()
		return fail(classify(cfg.Path, "load", err))
	}
	if err := s.applySeqFloor(ctx); err != nil {
		_ = rdb.Close()
		return fail(fmt.Errorf("outbox %s: seq floor: %w", cfg.Path, err))
	}
	if err := s.stmts.prepare(ctx, wc); err != nil {
		_ = s.stmts.close()
		_ = rdb.Close()
		return fail(classify(cfg.Path, "prepare", err))
	}
	s.seen = s.st.clone()
	go s.run()
	go s.completer()
	return s, nil
}

// checkDir makes sure the data dir exists and can hold new files (the WAL
// and shared-memory files are created next to the database).
func checkDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("outbox %s: data dir %s: %w", path, dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("outbox %s: data dir %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, ".outbox-probe-*")
	if err != nil {
		return fmt.Errorf("outbox %s: data dir %s is not writable (%w): the outbox creates its database, -wal and -shm files there; fix the permissions or the mount, or choose another data_dir", path, dir, err)
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("outbox %s: is a directory, not a database file", path)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("outbox %s: database file is not writable: %w", path, err)
		}
		_ = f.Close()
	}
	return nil
}

// checkHeader rejects a non-empty file that does not start with the SQLite
// magic string, before SQLite gets a chance to misread it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, buf)
	if n == 0 && (err == io.EOF) {
		return nil // an empty file is an empty database
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("outbox %s: read header: %w", path, err)
	}
	if !bytes.Equal(buf[:n], sqliteHeader) {
		return &CorruptError{Path: path, Detail: "not a SQLite database: bad header"}
	}
	return nil
}

func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return classify(path, "quick_check", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return classify(path, "quick_check", err)
		}
		if line != "ok" && len(problems) < 3 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return classify(path, "quick_check", err)
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Detail: fmt.Sprintf("quick_check: %q", problems)}
	}
	return nil
}

// classify turns SQLite errors at open into errors a person can act on.
func classify(path, doing string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrNotADB, sqlite3.ErrCorrupt:
			return &CorruptError{Path: path, Detail: doing + ": " + se.Error(), Err: err}
		case sqlite3.ErrReadonly, sqlite3.ErrCantOpen, sqlite3.ErrPerm:
			return fmt.Errorf("outbox %s: %s: cannot open the database for writing (read-only file or data dir?): %w", path, doing, err)
		case sqlite3.ErrFull:
			return fmt.Errorf("outbox %s: %s: disk full: free space on the data dir's file system: %w", path, doing, err)
		}
	}
	return fmt.Errorf("outbox %s: %s: %w", path, doing, err)
}

// load fills the in-memory accounting from the database.
func (s *Store) load(ctx context.Context) error {
	db := s.wc
	st := state{drops: map[string]int64{}, logCount: map[int64]int64{}, kv: map[int64]kvUsage{}}
	var hwm, maxRec, maxDead sql.NullInt64
	rows, err := db.QueryContext(ctx, "SELECT name, value FROM counters")
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return err
		}
		if name == counterLastSeq {
			hwm = sql.NullInt64{Int64: v, Valid: true}
		} else {
			st.drops[name] = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT max(seq), count(*), coalesce(sum(length(payload)), 0) FROM records").Scan(&maxRec, &st.depth, &st.bytes); err != nil {
		return err
	}
	st.bytes += st.depth * RecordOverhead
	if err := db.QueryRowContext(ctx, "SELECT max(seq), count(*) FROM dead_letters").Scan(&maxDead, &st.deadCount); err != nil {
		return err
	}
	st.lastSeq = uint64(max(hwm.Int64, maxRec.Int64, maxDead.Int64))
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(id), 0), count(*) FROM invocations").Scan(&st.lastInv, &st.invCount); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT coalesce(sum(count), 0) FROM usage_minutes").Scan(&st.usageCount); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM logs").Scan(&st.lastLog); err != nil {
		return err
	}
	if err := scanAll(ctx, db, "SELECT fn, count(*) FROM logs GROUP BY fn", func(r *sql.Rows) error {
		var fn, n int64
		err := r.Scan(&fn, &n)
		st.logCount[fn] = n
		return err
	}); err != nil {
		return err
	}
	if err := scanAll(ctx, db, "SELECT fn, count(*), coalesce(sum(length(key) + length(value)), 0) FROM kv GROUP BY fn", func(r *sql.Rows) error {
		var fn int64
		var u kvUsage
		err := r.Scan(&fn, &u.keys, &u.bytes)
		st.kv[fn] = u
		return err
	}); err != nil {
		return err
	}
	if err := scanAll(ctx, db, "SELECT id, name FROM names", func(r *sql.Rows) error {
		var id int64
		var name string
		err := r.Scan(&id, &name)
		s.names[name] = id
		st.nextName = max(st.nextName, id)
		return err
	}); err != nil {
		return err
	}
	s.st = st
	return s.loadStreams(ctx)
}

// loadStreams (re)reads the streams table into memory.
func (s *Store) loadStreams(ctx context.Context) error {
	streams := map[streamKey]int64{}
	err := scanAll(ctx, s.wc, "SELECT id, fn, version, source, subject FROM streams", func(r *sql.Rows) error {
		var id int64
		var k streamKey
		err := r.Scan(&id, &k.fn, &k.version, &k.source, &k.subject)
		streams[k] = id
		s.st.nextStream = max(s.st.nextStream, id)
		return err
	})
	if err != nil {
		return err
	}
	s.streams, s.liveStreams = streams, len(streams)
	return nil
}

func scanAll(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, f func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Close stops taking commits, commits everything already queued, truncates
// the WAL and closes the database. Commits queued after Close get ErrClosed.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	close(s.stop)
	<-s.exited
	<-s.completed
	var errs []error
	if _, err := s.wc.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		errs = append(errs, fmt.Errorf("outbox %s: final checkpoint: %w", s.cfg.Path, err))
	}
	errs = append(errs, s.stmts.close(), s.wc.Close(), s.rdb.Close(), s.wdb.Close())
	return errors.Join(errs...)
}

// Notify returns a channel that receives a value (capacity 1, non-blocking
// send) after each commit that added records.
func (s *Store) Notify() <-chan struct{} { return s.notify }

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
