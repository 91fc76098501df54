package triggers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
)

// Meta keys of a file event.
const (
	// MetaFileName is the dropped file's name (no directory).
	MetaFileName = "file.name"
	// MetaFileSize is its size in bytes, in decimal.
	MetaFileSize = "file.size"
)

// The file trigger's ceilings.
const (
	// MaxFilesQueued bounds the names waiting in one directory's queue.
	// Past it names are not remembered: the files stay in the directory
	// and a rescan finds them once the queue has drained, so nothing is
	// lost and memory stays bounded however many files arrive.
	MaxFilesQueued = 1024
	// MaxFileWatches bounds the directories watched by one agent (each
	// holds an inotify instance; Linux allows 128 per user by default).
	MaxFileWatches = 64
	// maxFileNameLen is the longest name a file may have (NAME_MAX).
	maxFileNameLen = 255
)

// Backoff between attempts when a file's invocation could not be made
// durable (a full queue that did not drain, the outbox failing) or moving
// it failed.
var (
	fileRetryMin = 500 * time.Millisecond
	fileRetryMax = 30 * time.Second
)

// FileWatch is one watched directory and the function its files go to.
type FileWatch struct {
	// Dir is the directory: absolute, clean, symbolic links resolved.
	Dir string
	// Function receives the directory's files.
	Function string
	// Pattern is a glob on the file's name; empty: every file.
	Pattern string
	// MaxSize is the largest file handed to the function.
	MaxSize edgefn.Size
	// After says what becomes of a processed file.
	After edgefn.FileAfter
}

// FileWatchOf returns the watch of function's files trigger t, whose Files
// the caller resolved to an absolute directory.
func FileWatchOf(function string, t edgefn.Trigger) FileWatch {
	w := FileWatch{Dir: t.Files, Function: function, Pattern: t.Pattern, MaxSize: t.MaxSize, After: t.After}
	if w.MaxSize == 0 {
		w.MaxSize = edgefn.DefaultFileMaxSize
	}
	if w.After == "" {
		w.After = edgefn.FileAfterMove
	}
	return w
}

// check reports what is wrong with w, naming its directory.
func (w FileWatch) check() error {
	switch {
	case !strings.HasPrefix(w.Dir, "/") || path.Clean(w.Dir) != w.Dir:
		return fmt.Errorf("files %q: not an absolute, clean path", w.Dir)
	case w.Function == "":
		return fmt.Errorf("files %q: no function", w.Dir)
	case w.MaxSize < 1 || w.MaxSize > edgefn.MaxFileMaxSize:
		return fmt.Errorf("files %q: max_size %s out of range 1B to %s", w.Dir, w.MaxSize, edgefn.MaxFileMaxSize)
	case w.After != edgefn.FileAfterMove && w.After != edgefn.FileAfterDelete:
		return fmt.Errorf("files %q: after %q: use move or delete", w.Dir, w.After)
	}
	if err := edgefn.CheckFilePattern(w.Pattern); err != nil {
		return fmt.Errorf("files %q: pattern %q: %v", w.Dir, w.Pattern, err)
	}
	return nil
}

// accepts reports whether a directory entry named name is a file for w:
// not a dotfile (which also skips .done, .rejected and the usual
// ".name.part" of writers that rename when done), a valid name, matching
// the pattern.
func (w FileWatch) accepts(name string) bool {
	if name == "" || name[0] == '.' || len(name) > maxFileNameLen || strings.ContainsAny(name, "/\x00") {
		return false
	}
	if w.Pattern == "" {
		return true
	}
	ok, err := path.Match(w.Pattern, name)
	return ok && err == nil
}

// FileSink receives the files of file triggers. The gateway implements it.
type FileSink interface {
	// DeliverFile runs function for ev and returns once the invocation's
	// record is durable: failed is the invocation's own failure (it was
	// recorded), err says nothing durable happened (the file is tried
	// again later). It waits while the function's queue is full.
	DeliverFile(ctx context.Context, function string, ev edgefn.Event) (failed, err error)
	// RejectFile records, durably, a failure of function for ev without
	// running it (a file over max_size, or not a regular file).
	RejectFile(ctx context.Context, function string, ev edgefn.Event, why *edgefn.Failure) error
}

// FileWatchStats are one watched directory's watch, state and counters.
type FileWatchStats struct {
	FileWatch
	// Watching is true while the directory is watched; Error is the last
	// problem with the directory itself.
	Watching bool
	Error    string
	// Queued files wait (up to MaxFilesQueued); Processed succeeded;
	// Failed ran and failed, Rejected were refused before running (both
	// moved to .rejected); Retries are attempts that made nothing durable.
	Queued                               int
	Processed, Failed, Rejected, Retries uint64
}

// Files hands the files dropped in watched directories to functions.
// Create it with NewFiles, give it watches with Set (again on every
// redeploy) and run it with Run. Its methods are safe for concurrent use.
type Files struct {
	sink    FileSink
	log     *slog.Logger
	watches *keyed[*fileWatch] // by Dir
}

// NewFiles returns Files that deliver to sink. log may be nil.
func NewFiles(sink FileSink, log *slog.Logger) *Files {
	log = orDiscard(log)
	f := &Files{sink: sink, log: log}
	f.watches = newKeyed("files", "file watch", log,
		func(running, want *fileWatch) bool { return running.spec == want.spec }, f.start)
	return f
}

// Set replaces the watched directories: new ones start (their waiting
// files are processed), removed or changed ones stop once the file in
// progress is done. It checks every watch first and changes nothing if one
// is invalid, if two name the same directory or if there are more than
// MaxFileWatches.
func (f *Files) Set(ws []FileWatch) error {
	want := map[string]*fileWatch{}
	var errs []error
	for _, w := range ws {
		if err := w.check(); err != nil {
			errs = append(errs, err)
			continue
		}
		if o, dup := want[w.Dir]; dup {
			errs = append(errs, fmt.Errorf("files %q: watched by both %s and %s", w.Dir, o.spec.Function, w.Function))
			continue
		}
		want[w.Dir] = &fileWatch{spec: w}
	}
	if len(want) > MaxFileWatches {
		errs = append(errs, fmt.Errorf("files: %d directories, more than the %d an agent watches", len(want), MaxFileWatches))
	}
	return f.watches.set(want, errs)
}

// Run watches the directories until ctx ends, then waits for the files in
// progress and returns nil. It may be called once.
func (f *Files) Run(ctx context.Context) error { return f.watches.run(ctx) }

// Stats returns every watched directory's state, sorted by directory.
func (f *Files) Stats() []FileWatchStats {
	out := []FileWatchStats{}
	f.watches.each(func(w *fileWatch) { out = append(out, w.stats()) })
	slices.SortFunc(out, func(a, b FileWatchStats) int { return strings.Compare(a.Dir, b.Dir) })
	return out
}

// fileWatch is one running watch.
type fileWatch struct {
	spec FileWatch

	mu      sync.Mutex
	queue   []string
	queued  map[string]bool // name -> an event said it is complete
	rescan  bool            // names were not queued (full queue, lost events): read the directory again
	lastErr string
	wake    chan struct{}

	watching                             atomic.Bool
	processed, failed, rejected, retries atomic.Uint64
}

func (w *fileWatch) stats() FileWatchStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return FileWatchStats{FileWatch: w.spec, Watching: w.watching.Load(), Error: w.lastErr, Queued: len(w.queue),
		Processed: w.processed.Load(), Failed: w.failed.Load(), Rejected: w.rejected.Load(), Retries: w.retries.Load()}
}

func (w *fileWatch) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = ""
	if err != nil {
		w.lastErr = err.Error()
	}
}

// add queues name, closed after writing or moved in, if it is for this
// watch, or asks for a rescan when the queue is full.
func (w *fileWatch) add(name string) { w.queue1(name, true) }

// found queues name, seen by reading the directory: it may still be open
// for writing, which is checked before it is read.
func (w *fileWatch) found(name string) { w.queue1(name, false) }

func (w *fileWatch) queue1(name string, complete bool) {
	if !w.spec.accepts(name) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.queued[name]; ok {
		w.queued[name] = c || complete
		return
	}
	if len(w.queue) >= MaxFilesQueued {
		w.rescan = true
	} else {
		w.queue = append(w.queue, name)
		w.queued[name] = complete
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// needRescan asks for the directory to be read again once the queue
// drains (lost inotify events).
func (w *fileWatch) needRescan() {
	w.mu.Lock()
	w.rescan = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next returns the next queued name and whether an event said it is
// complete, or "" with rescan true when the queue is empty and the
// directory must be read again.
func (w *fileWatch) next() (name string, complete, rescan bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 {
		name = w.queue[0]
		w.queue = w.queue[1:]
		complete = w.queued[name]
		delete(w.queued, name)
		return name, complete, false
	}
	rescan, w.rescan = w.rescan, false
	return "", false, rescan
}

// start runs w's watcher and worker goroutines; the worker finishes the
// file in progress before the returned channel is closed, so a changed
// watch on the same directory starts only after.
func (f *Files) start(ctx, _ context.Context, w *fileWatch, run func(func())) <-chan struct{} {
	released := make(chan struct{})
	w.queued = map[string]bool{}
	w.wake = make(chan struct{}, 1)
	log := f.log.With("dir", w.spec.Dir, "function", w.spec.Function)
	run(func() {
		defer close(released)
		d, err := openWatchedDir(w.spec.Dir)
		if err != nil {
			w.setErr(err)
			log.Error("file trigger: cannot watch the directory", "err", err)
			return
		}
		defer d.close()
		w.watching.Store(true)
		defer w.watching.Store(false)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.watch(ctx, w.add, w.needRescan); err != nil && ctx.Err() == nil {
				w.watching.Store(false)
				w.setErr(err)
				log.Error("file trigger: watch ended", "err", err)
			}
		}()
		w.needRescan() // the files present at start
		f.work(ctx, d, w, log)
		d.stopWatch()
		wg.Wait()
	})
	return released
}

// work processes queued files one at a time until ctx ends.
func (f *Files) work(ctx context.Context, d *watchedDir, w *fileWatch, log *slog.Logger) {
	backoff := fileRetryMin
	for ctx.Err() == nil {
		name, complete, rescan := w.next()
		switch {
		case rescan:
			if err := d.scan(w.found); err != nil {
				w.setErr(err)
				log.Warn("file trigger: cannot read the directory", "err", err)
			}
			continue
		case name == "":
			select {
			case <-w.wake:
			case <-ctx.Done():
			}
			continue
		}
		if f.process(ctx, d, w, name, complete, log) {
			backoff = fileRetryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Not durable: keep the file, try again after a pause.
		w.retries.Add(1)
		w.queue1(name, complete)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, fileRetryMax)
	}
}

// process hands one file to the function, then moves or deletes it. It
// returns false when the file must be tried again (nothing durable, or it
// could not be moved). complete says an event reported the file closed
// after writing or moved in; otherwise a file still open for writing is
// left for its writer's close.
func (f *Files) process(ctx context.Context, d *watchedDir, w *fileWatch, name string, complete bool, log *slog.Logger) bool {
	fl, err := d.open(name, !complete)
	switch {
	case errors.Is(err, errGone), errors.Is(err, errBeingWritten):
		return true // gone, or its writer's close will queue it again
	case errors.Is(err, errNotRegular), errors.Is(err, errNotReadable):
		return f.reject(ctx, d, w, name, 0, edgefn.Fail(edgefn.ReasonRejected, "file %s: %v", name, err), log)
	case err != nil: // out of descriptors, I/O error: try again later
		log.Warn("file trigger: cannot open a file, tried again later", "file", name, "err", err)
		return false
	}
	defer fl.close()
	if fl.size > int64(w.spec.MaxSize) {
		return f.reject(ctx, d, w, name, fl.size, edgefn.Fail(edgefn.ReasonRejected, "file %s: %d bytes, over the trigger's max_size %s", name, fl.size, w.spec.MaxSize), log)
	}
	data, err := fl.read(int64(w.spec.MaxSize))
	if err != nil {
		log.Warn("file trigger: cannot read a file", "file", name, "err", err)
		return f.reject(ctx, d, w, name, fl.size, edgefn.Fail(edgefn.ReasonRejected, "file %s: %v", name, err), log)
	}
	ev := FileEvent(w.spec.Dir, name, int64(len(data)))
	ev.Payload = data
	failed, err := f.sink.DeliverFile(ctx, w.spec.Function, ev)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("file trigger: delivery failed, the file stays and is tried again", "file", name, "err", err)
		}
		return false
	}
	to, why := edgefn.FileDoneDir, "done"
	if failed != nil {
		w.failed.Add(1)
		to, why = edgefn.FileRejectedDir, "failed"
	} else {
		w.processed.Add(1)
	}
	if failed == nil && w.spec.After == edgefn.FileAfterDelete {
		to = ""
	}
	if err := d.finish(fl, to); err != nil {
		w.setErr(fmt.Errorf("cannot move processed file %s: %w", name, err))
		log.Error("file trigger: cannot move the processed file; it will be processed again", "file", name, "to", to, "err", err)
		return false
	}
	log.Debug("file processed", "file", name, "result", why)
	return true
}

// reject records why as a failure of the watch's function, then moves the
// file to .rejected.
func (f *Files) reject(ctx context.Context, d *watchedDir, w *fileWatch, name string, size int64, why *edgefn.Failure, log *slog.Logger) bool {
	if err := f.sink.RejectFile(ctx, w.spec.Function, FileEvent(w.spec.Dir, name, size), why); err != nil {
		if ctx.Err() == nil {
			log.Warn("file trigger: cannot record a rejected file, tried again later", "file", name, "err", err)
		}
		return false
	}
	w.rejected.Add(1)
	log.Warn("file rejected", "file", name, "why", why.Message)
	if err := d.moveName(name, edgefn.FileRejectedDir); err != nil && !errors.Is(err, errGone) {
		log.Error("file trigger: cannot move a rejected file", "file", name, "err", err)
		return false
	}
	return true
}

// maxCollisions bounds the names tried in .done or .rejected before
// giving up on a file (it stays and is tried again).
const maxCollisions = 1000

// collisionName is name for i == 0, else name with "~i" before its
// extension; it stays within NAME_MAX.
func collisionName(name string, i int) string {
	if i == 0 {
		return name
	}
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	suffix := "~" + strconv.Itoa(i)
	if over := len(stem) + len(suffix) + len(ext) - maxFileNameLen; over > 0 {
		if over > len(stem) {
			return name[:maxFileNameLen-len(suffix)] + suffix
		}
		stem = stem[:len(stem)-over]
	}
	return stem + suffix + ext
}

// FileEvent is the event of a file named name, of size bytes, dropped in
// dir (without its payload): what a file trigger hands over, and what
// `edgefn run --file` imitates.
func FileEvent(dir, name string, size int64) edgefn.Event {
	return edgefn.Event{
		Source:  edgefn.SourceFile,
		Subject: dir,
		Time:    time.Now(),
		Meta:    map[string]string{MetaFileName: name, MetaFileSize: strconv.FormatInt(size, 10)},
	}
}

// Errors of watchedDir.open.
var (
	errGone         = errors.New("no longer in the directory")
	errBeingWritten = errors.New("still open for writing")
	errNotRegular   = errors.New("not a regular file")
	errNotReadable  = errors.New("not readable by the agent")
)
