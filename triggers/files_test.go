package triggers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
)

// fileSink records the files handed to functions; result decides each
// delivery's outcome.
type fileSink struct {
	mu       sync.Mutex
	got      []edgefn.Event
	rejected []edgefn.Event
	whys     []*edgefn.Failure
	result   func(ev edgefn.Event) (failed, err error)
}

func (s *fileSink) DeliverFile(_ context.Context, function string, ev edgefn.Event) (error, error) {
	if function != "fn" {
		return nil, fmt.Errorf("function %q", function)
	}
	if s.result != nil {
		failed, err := s.result(ev)
		if err != nil {
			return nil, err
		}
		if failed != nil {
			return failed, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, ev)
	return nil, nil
}

func (s *fileSink) RejectFile(_ context.Context, _ string, ev edgefn.Event, why *edgefn.Failure) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, ev)
	s.whys = append(s.whys, why)
	return nil
}

// delivered returns the payload delivered for name, if any.
func (s *fileSink) delivered(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.got {
		if ev.Meta[MetaFileName] == name {
			return ev.Payload, true
		}
	}
	return nil, false
}

func (s *fileSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *fileSink) waitDelivered(t *testing.T, name string) []byte {
	t.Helper()
	var p []byte
	waitFor(t, name+" delivered", func() bool {
		var ok bool
		p, ok = s.delivered(name)
		return ok
	})
	return p
}

// runFiles watches a new temp dir with w's settings (Dir and Function
// filled in) after prepare has run in it.
func runFiles(t *testing.T, w FileWatch, sink *fileSink, prepare func(dir string)) (string, *Files) {
	t.Helper()
	checkLeaks(t)
	dir := t.TempDir()
	if prepare != nil {
		prepare(dir)
	}
	w.Dir, w.Function = dir, "fn"
	f := NewFiles(sink, nil)
	if err := f.Set([]FileWatch{FileWatchOf("fn", edgefn.Trigger{Files: dir, Pattern: w.Pattern, MaxSize: w.MaxSize, After: w.After})}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, f.Run)
	waitFor(t, "watching", func() bool { st := f.Stats(); return len(st) == 1 && st[0].Watching })
	return dir, f
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitGone(t *testing.T, path string) {
	t.Helper()
	waitFor(t, path+" gone", func() bool { _, err := os.Lstat(path); return errors.Is(err, os.ErrNotExist) })
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A file is handed over only once its writer closed it: a marker dropped
// after the first half was written is processed while the slow file is
// not, and the slow file arrives whole.
func TestFilesSlowWriter(t *testing.T) {
	sink := &fileSink{}
	dir, f := runFiles(t, FileWatch{}, sink, nil)
	w, err := os.Create(filepath.Join(dir, "slow.bin"))
	if err != nil {
		t.Fatal(err)
	}
	half := bytes.Repeat([]byte("a"), 64<<10)
	if _, err := w.Write(half); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "marker"), "m")
	sink.waitDelivered(t, "marker")
	if _, ok := sink.delivered("slow.bin"); ok {
		t.Fatal("slow.bin delivered while its writer still had it open")
	}
	if _, err := w.Write(half); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if p := sink.waitDelivered(t, "slow.bin"); len(p) != 2*len(half) {
		t.Errorf("slow.bin delivered with %d bytes, want %d", len(p), 2*len(half))
	}
	waitGone(t, filepath.Join(dir, "slow.bin"))
	if got := readFile(t, filepath.Join(dir, edgefn.FileDoneDir, "slow.bin")); len(got) != 2*len(half) {
		t.Errorf(".done/slow.bin has %d bytes", len(got))
	}
	ev := sink.got[len(sink.got)-1]
	if ev.Source != edgefn.SourceFile || ev.Subject != dir || ev.Meta[MetaFileSize] != fmt.Sprint(2*len(half)) {
		t.Errorf("event = %s %s %v", ev.Source, ev.Subject, ev.Meta)
	}
	if st := f.Stats()[0]; st.Processed != 2 || st.Queued != 0 || st.Error != "" {
		t.Errorf("stats = %+v", st)
	}
}

// A file written under a dotfile name and renamed in is handed over once;
// the dotfile never is; a name not matching the pattern stays where it is.
func TestFilesMovedInAndPattern(t *testing.T) {
	sink := &fileSink{}
	dir, _ := runFiles(t, FileWatch{Pattern: "*.jpg"}, sink, nil)
	writeFile(t, filepath.Join(dir, ".a.jpg.part"), "jpeg")
	writeFile(t, filepath.Join(dir, "notes.txt"), "text")
	if err := os.Rename(filepath.Join(dir, ".a.jpg.part"), filepath.Join(dir, "a.jpg")); err != nil {
		t.Fatal(err)
	}
	if p := sink.waitDelivered(t, "a.jpg"); string(p) != "jpeg" {
		t.Errorf("a.jpg payload %q", p)
	}
	writeFile(t, filepath.Join(dir, "b.jpg"), "b")
	sink.waitDelivered(t, "b.jpg")
	if n := sink.count(); n != 2 {
		t.Errorf("%d deliveries, want 2: %v", n, sink.got)
	}
	if readFile(t, filepath.Join(dir, "notes.txt")) != "text" {
		t.Error("notes.txt changed")
	}
}

// Files present before the watch starts are processed, however many:
// more than the queue holds are found by rescans.
func TestFilesWaitingAtStart(t *testing.T) {
	sink := &fileSink{}
	n := MaxFilesQueued + 100
	dir, f := runFiles(t, FileWatch{}, sink, func(dir string) {
		for i := range n {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%05d", i)), fmt.Sprint(i))
		}
	})
	waitFor(t, "every file processed", func() bool { return sink.count() == n })
	done, err := os.ReadDir(filepath.Join(dir, edgefn.FileDoneDir))
	if err != nil || len(done) != n {
		t.Fatalf(".done has %d files (%v), want %d", len(done), err, n)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 2 { // .done and .rejected
		t.Errorf("left in the directory: %v", left)
	}
	seen := map[string]bool{}
	for _, ev := range sink.got {
		if seen[ev.Meta[MetaFileName]] {
			t.Errorf("%s delivered twice", ev.Meta[MetaFileName])
		}
		seen[ev.Meta[MetaFileName]] = true
	}
	if st := f.Stats()[0]; st.Processed != uint64(n) {
		t.Errorf("stats = %+v", st)
	}
}

// A file still open for writing when the watch starts waits for its
// writer to close it.
func TestFilesBeingWrittenAtStart(t *testing.T) {
	sink := &fileSink{}
	var w *os.File
	runFiles(t, FileWatch{}, sink, func(dir string) {
		var err error
		if w, err = os.Create(filepath.Join(dir, "open.bin")); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteString("first half "); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "closed.bin"), "c")
	})
	sink.waitDelivered(t, "closed.bin")
	if _, ok := sink.delivered("open.bin"); ok {
		t.Fatal("open.bin delivered while its writer still had it open")
	}
	if _, err := w.WriteString("second half"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if p := sink.waitDelivered(t, "open.bin"); string(p) != "first half second half" {
		t.Errorf("open.bin payload %q", p)
	}
}

// A file over max_size is not handed over: a failure is recorded and it
// is moved to .rejected; one of exactly max_size is processed.
func TestFilesOversize(t *testing.T) {
	sink := &fileSink{}
	dir, f := runFiles(t, FileWatch{MaxSize: 10}, sink, nil)
	writeFile(t, filepath.Join(dir, "big"), "01234567890")
	writeFile(t, filepath.Join(dir, "fits"), "0123456789")
	sink.waitDelivered(t, "fits")
	waitFor(t, "big rejected", func() bool { _, err := os.Stat(filepath.Join(dir, edgefn.FileRejectedDir, "big")); return err == nil })
	if _, ok := sink.delivered("big"); ok {
		t.Error("big delivered")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.rejected) != 1 || sink.rejected[0].Meta[MetaFileName] != "big" || sink.rejected[0].Meta[MetaFileSize] != "11" ||
		sink.whys[0].Reason != edgefn.ReasonRejected || !strings.Contains(sink.whys[0].Message, "over the trigger's max_size 10B") {
		t.Errorf("rejected = %v %v", sink.rejected, sink.whys)
	}
	if st := f.Stats()[0]; st.Rejected != 1 || st.Processed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A file dropped again under a name already in .done gets a new name
// there: nothing is replaced, each file is kept once.
func TestFilesDoneCollision(t *testing.T) {
	sink := &fileSink{}
	dir, _ := runFiles(t, FileWatch{}, sink, func(dir string) {
		if err := os.Mkdir(filepath.Join(dir, edgefn.FileDoneDir), 0o750); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, edgefn.FileDoneDir, "img.jpg"), "old")
	})
	for _, content := range []string{"second", "third"} {
		writeFile(t, filepath.Join(dir, "img.jpg"), content)
		waitGone(t, filepath.Join(dir, "img.jpg"))
	}
	done, _ := os.ReadDir(filepath.Join(dir, edgefn.FileDoneDir))
	var names []string
	for _, e := range done {
		names = append(names, e.Name()+"="+readFile(t, filepath.Join(dir, edgefn.FileDoneDir, e.Name())))
	}
	if want := []string{"img.jpg=old", "img~1.jpg=second", "img~2.jpg=third"}; !slices.Equal(names, want) {
		t.Errorf(".done = %v, want %v", names, want)
	}
}

// after: delete removes processed files; a failed invocation's file is
// kept in .rejected whatever after says.
func TestFilesDeleteAndFailure(t *testing.T) {
	sink := &fileSink{result: func(ev edgefn.Event) (error, error) {
		if ev.Meta[MetaFileName] == "bad" {
			return edgefn.Fail(edgefn.ReasonExit, "returned 1"), nil
		}
		return nil, nil
	}}
	dir, f := runFiles(t, FileWatch{After: edgefn.FileAfterDelete}, sink, nil)
	writeFile(t, filepath.Join(dir, "bad"), "b")
	writeFile(t, filepath.Join(dir, "good"), "g")
	sink.waitDelivered(t, "good")
	waitGone(t, filepath.Join(dir, "good"))
	waitGone(t, filepath.Join(dir, "bad"))
	if readFile(t, filepath.Join(dir, edgefn.FileRejectedDir, "bad")) != "b" {
		t.Error("bad not in .rejected")
	}
	if done, _ := os.ReadDir(filepath.Join(dir, edgefn.FileDoneDir)); len(done) != 0 {
		t.Errorf(".done = %v with after: delete", done)
	}
	if st := f.Stats()[0]; st.Failed != 1 || st.Processed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A delivery that made nothing durable leaves the file where it is and is
// tried again.
func TestFilesRetry(t *testing.T) {
	lo, hi := fileRetryMin, fileRetryMax
	defer func() { fileRetryMin, fileRetryMax = lo, hi }()
	fileRetryMin, fileRetryMax = 1, 1
	var mu sync.Mutex
	attempts := 0
	sink := &fileSink{result: func(edgefn.Event) (error, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts < 3 {
			return nil, errors.New("outbox unavailable")
		}
		return nil, nil
	}}
	dir, f := runFiles(t, FileWatch{}, sink, nil)
	writeFile(t, filepath.Join(dir, "x"), "x")
	sink.waitDelivered(t, "x")
	waitGone(t, filepath.Join(dir, "x"))
	if st := f.Stats()[0]; st.Retries != 2 || st.Processed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// A symbolic link is never followed, in or out of the directory: it is
// rejected (moved to .rejected as a link) and the file it points to is
// neither read nor touched; FIFOs are rejected without blocking.
func TestFilesNoSymlinkFollowing(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, "secret")
	sink := &fileSink{}
	dir, _ := runFiles(t, FileWatch{}, sink, func(dir string) {
		if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	waitFor(t, "fifo rejected", func() bool {
		_, err := os.Lstat(filepath.Join(dir, edgefn.FileRejectedDir, "fifo"))
		return err == nil
	})
	waitFor(t, "link rejected", func() bool {
		_, err := os.Lstat(filepath.Join(dir, edgefn.FileRejectedDir, "link"))
		return err == nil
	})
	if fi, err := os.Lstat(filepath.Join(dir, edgefn.FileRejectedDir, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf(".rejected/link: %v %v", fi, err)
	}
	if readFile(t, outside) != "secret" {
		t.Error("the link's target changed")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	var whys []string
	for _, w := range sink.whys {
		whys = append(whys, w.Message)
	}
	slices.Sort(whys)
	if len(sink.got) != 0 || len(whys) != 2 || !strings.Contains(whys[0], "file fifo: not a regular file") || !strings.Contains(whys[1], "file link: not a regular file: a symbolic link") {
		t.Errorf("got %v, rejected %v %v", sink.got, sink.rejected, sink.whys)
	}
}

// A watched directory that goes away stops its watch, and the status
// says so.
func TestFilesDirRemoved(t *testing.T) {
	dir, f := runFiles(t, FileWatch{}, &fileSink{}, nil)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watch stopped", func() bool {
		st := f.Stats()[0]
		return !st.Watching && strings.Contains(st.Error, "was removed or moved away")
	})
}

// Invalid watches are refused at once, naming the directory.
func TestFilesSetInvalid(t *testing.T) {
	f := NewFiles(&fileSink{}, nil)
	err := f.Set([]FileWatch{
		{Dir: "relative", Function: "fn", MaxSize: 1, After: edgefn.FileAfterMove},
		{Dir: "/a", Function: "fn", MaxSize: edgefn.MaxFileMaxSize + 1, After: edgefn.FileAfterMove},
		{Dir: "/b", Function: "fn", MaxSize: 1, After: edgefn.FileAfterMove, Pattern: "["},
		{Dir: "/c", Function: "x", MaxSize: 1, After: edgefn.FileAfterMove},
		{Dir: "/c", Function: "y", MaxSize: 1, After: edgefn.FileAfterMove},
	})
	for _, w := range []string{`files "relative": not an absolute`, `files "/a": max_size`, `files "/b": pattern "["`, `files "/c": watched by both x and y`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\ndoes not contain %q", err, w)
		}
	}
	if len(f.Stats()) != 0 {
		t.Error("an invalid set changed the watches")
	}
}

func TestCollisionName(t *testing.T) {
	long := strings.Repeat("x", 250) + ".jpeg"
	for _, tc := range []struct {
		name string
		i    int
		want string
	}{
		{"img.jpg", 0, "img.jpg"},
		{"img.jpg", 1, "img~1.jpg"},
		{"archive.tar.gz", 12, "archive.tar~12.gz"},
		{"noext", 3, "noext~3"},
		{long, 7, strings.Repeat("x", 248) + "~7.jpeg"},
	} {
		if got := collisionName(tc.name, tc.i); got != tc.want {
			t.Errorf("collisionName(%q, %d) = %q, want %q", tc.name, tc.i, got, tc.want)
		}
	}
}

// Names come from whoever can write the directory: whatever they are, the
// names a file is moved to stay one path element within NAME_MAX, and
// differ from each other.
func FuzzCollisionName(f *testing.F) {
	f.Add("img.jpg", 1)
	f.Add(strings.Repeat("é", 127)+".x", 999)
	f.Add(".", 2)
	f.Fuzz(func(t *testing.T, name string, i int) {
		w := FileWatch{}
		if !w.accepts(name) || i < 0 || i >= maxCollisions {
			return
		}
		got := collisionName(name, i)
		if len(got) > maxFileNameLen || strings.ContainsAny(got, "/\x00") || got == "" || got == "." || got == ".." {
			t.Fatalf("collisionName(%q, %d) = %q", name, i, got)
		}
		if i > 0 && (got == name || got == collisionName(name, i-1)) {
			t.Fatalf("collisionName(%q, %d) = %q repeats", name, i, got)
		}
	})
}

// BenchmarkFilesDrop measures one small file's way through the trigger:
// written and closed in the directory, seen, read, handed to the sink,
// moved to .done.
func BenchmarkFilesDrop(b *testing.B) {
	dir := b.TempDir()
	sink := &countSink{done: make(chan struct{}, 1)}
	f := NewFiles(sink, nil)
	if err := f.Set([]FileWatch{FileWatchOf("fn", edgefn.Trigger{Files: dir})}); err != nil {
		b.Fatal(err)
	}
	testutil.Run(b, f.Run)
	testutil.Eventually(b, testTimeout, "watching", func() bool { return f.Stats()[0].Watching })
	payload := bytes.Repeat([]byte("x"), 1024)
	b.ResetTimer()
	for i := range b.N {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), payload, 0o644); err != nil {
			b.Fatal(err)
		}
		<-sink.done
	}
	b.StopTimer()
	testutil.Eventually(b, testTimeout, "all moved", func() bool { return f.Stats()[0].Processed == uint64(b.N) })
}

// countSink signals each delivery.
type countSink struct{ done chan struct{} }

func (s *countSink) DeliverFile(context.Context, string, edgefn.Event) (error, error) {
	s.done <- struct{}{}
	return nil, nil
}

func (s *countSink) RejectFile(context.Context, string, edgefn.Event, *edgefn.Failure) error {
	return nil
}
