package triggers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgefn/edgefn"
)

// watchedDir is an open watched directory. Every file operation is
// relative to the directory's descriptor with a name read from the
// directory itself (no '/'), and none follows a symbolic link: a file
// cannot be reached outside the directory.
type watchedDir struct {
	path string
	dir  *os.File // O_DIRECTORY|O_NOFOLLOW

	mu     sync.Mutex
	notify *os.File // the inotify instance, non-blocking (the poller wakes Read on Close)
	// wd and parentWd are the watches of the directory and its parent
	// (-1: none).
	wd, parentWd int
}

// inotify masks: in the directory, a file closed after writing or moved
// in, the directory itself moved or deleted; in its parent, an entry
// deleted: IN_DELETE_SELF comes only once no descriptor holds the
// directory, and the agent holds one, so its removal is seen in the
// parent.
const (
	watchMask  = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW
	parentMask = unix.IN_DELETE | unix.IN_ONLYDIR
)

// openWatchedDir opens dir, creates its .done and .rejected directories
// and starts watching it: events that come before watch runs are kept by
// the kernel.
func openWatchedDir(dir string) (*watchedDir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	d := &watchedDir{path: dir, dir: os.NewFile(uintptr(fd), dir)}
	for _, sub := range []string{edgefn.FileDoneDir, edgefn.FileRejectedDir} {
		if err := unix.Mkdirat(fd, sub, 0o750); err != nil && !errors.Is(err, unix.EEXIST) {
			d.close()
			return nil, fmt.Errorf("create %s: %w", filepath.Join(dir, sub), err)
		}
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	d.notify = os.NewFile(uintptr(in), "inotify")
	if d.wd, err = unix.InotifyAddWatch(in, dir, watchMask); err != nil {
		d.close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	d.parentWd = -1
	if dir != "/" {
		if wd, err := unix.InotifyAddWatch(in, filepath.Dir(dir), parentMask); err == nil {
			d.parentWd = wd
		}
	}
	return d, nil
}

// stopWatch ends watch.
func (d *watchedDir) stopWatch() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.notify != nil {
		d.notify.Close()
		d.notify = nil
	}
}

func (d *watchedDir) close() {
	d.stopWatch()
	d.dir.Close()
}

// watch reads inotify events until ctx ends or stopWatch, calling add for
// each file closed after writing or moved in, and rescan when events were
// lost. It returns an error when the directory goes away.
func (d *watchedDir) watch(ctx context.Context, add func(string), rescan func()) error {
	d.mu.Lock()
	in := d.notify
	d.mu.Unlock()
	if in == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, d.stopWatch)
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := in.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read inotify events: %w", err)
		}
		gone := false
		parseInotify(buf[:n], func(wd int, mask uint32, name string) {
			switch {
			case mask&unix.IN_Q_OVERFLOW != 0:
				rescan()
			case wd == d.parentWd:
				gone = gone || name == filepath.Base(d.path) && d.unlinked()
			case wd != d.wd:
			case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0:
				gone = true
			case mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0 && name != "":
				add(name)
			}
		})
		if gone {
			return fmt.Errorf("%s was removed or moved away: files dropped there are no longer seen (redeploy once it exists again)", d.path)
		}
	}
}

// unlinked reports whether the directory was removed.
func (d *watchedDir) unlinked() bool {
	var st unix.Stat_t
	return unix.Fstat(int(d.dir.Fd()), &st) == nil && st.Nlink == 0
}

// parseInotify calls f for each event in buf (struct inotify_event
// records, each followed by its NUL-padded name). A record cut short ends
// the parse.
func parseInotify(buf []byte, f func(wd int, mask uint32, name string)) {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if int(ev.Len) > len(buf)-unix.SizeofInotifyEvent {
			return
		}
		name := string(buf[unix.SizeofInotifyEvent:end])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		f(int(ev.Wd), ev.Mask, name)
		buf = buf[end:]
	}
}

// scan calls add for every entry of the directory, reading it in batches.
func (d *watchedDir) scan(add func(string)) error {
	fd, err := unix.Openat(int(d.dir.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.path, err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			add(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", d.path, err)
		}
	}
}

// openFile is a file of the directory open for reading.
type openFile struct {
	name string
	f    *os.File
	size int64
	dev  uint64
	ino  uint64
}

// open opens name for reading without following a symbolic link or
// blocking on a FIFO. errGone: it is no longer there; errNotRegular: a
// link, FIFO, device or directory; errBeingWritten (only when probe is
// set): some process still has it open for writing (its close will queue
// it again). The probe is for files found by reading the directory: right
// after IN_CLOSE_WRITE the kernel may still count the closed descriptor
// as a writer (it notifies before it drops the write access), so a file
// an event reported complete is not probed.
func (d *watchedDir) open(name string, probe bool) (*openFile, error) {
	fd, err := unix.Openat(int(d.dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, errGone
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("%w: a symbolic link (not followed)", errNotRegular)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return nil, fmt.Errorf("%w: %v", errNotReadable, err)
	case err != nil:
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%w (mode %o)", errNotRegular, st.Mode&unix.S_IFMT)
	}
	if probe && openForWriting(fd) {
		unix.Close(fd)
		return nil, errBeingWritten
	}
	return &openFile{name: name, f: os.NewFile(uintptr(fd), name), size: st.Size, dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// openForWriting reports whether a process has the file open for writing:
// a read lease cannot be taken then. Where a lease cannot be taken at all
// (a file of another user without CAP_LEASE, a file system without
// leases) it answers false: inotify's close-after-write is then what says
// a file is complete, and a file being written when the agent starts may
// be read before its writer is done.
func openForWriting(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	if err == nil {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false
	}
	return errors.Is(err, unix.EAGAIN)
}

// read reads the whole file, refusing one that has grown past max.
func (o *openFile) read(max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(o.f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("grew past the trigger's max_size %s while being read", edgefn.Size(max))
	}
	return data, nil
}

func (o *openFile) close() { o.f.Close() }

// finish moves o's file to the subdirectory to, or deletes it when to is
// "" — if its name still names the file that was read (a new file moved
// in under the same name meanwhile is left for its own event).
func (d *watchedDir) finish(o *openFile, to string) error {
	var st unix.Stat_t
	err := unix.Fstatat(int(d.dir.Fd()), o.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil // moved or deleted by someone else
	}
	if err != nil {
		return err
	}
	if uint64(st.Dev) != o.dev || uint64(st.Ino) != o.ino {
		return nil
	}
	if to == "" {
		if err := unix.Unlinkat(int(d.dir.Fd()), o.name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
		return nil
	}
	err = d.moveName(o.name, to)
	if errors.Is(err, errGone) {
		return nil
	}
	return err
}

// moveName moves name into the subdirectory sub, never replacing a file
// there: a taken name becomes "stem~1.ext", "stem~2.ext"…
func (d *watchedDir) moveName(name, sub string) error {
	dfd := int(d.dir.Fd())
	subfd, err := unix.Openat(dfd, sub, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(dfd, sub, 0o750); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
		subfd, err = unix.Openat(dfd, sub, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(d.path, sub), err)
	}
	defer unix.Close(subfd)
	for i := range maxCollisions {
		to := collisionName(name, i)
		err := renameNoReplace(dfd, name, subfd, to)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.ENOENT):
			return errGone
		case !errors.Is(err, unix.EEXIST):
			return fmt.Errorf("move %s to %s: %w", name, sub, err)
		}
	}
	return fmt.Errorf("move %s to %s: %d names taken", name, sub, maxCollisions)
}

// renameNoReplace renames without replacing an existing target: renameat2
// RENAME_NOREPLACE, or link and unlink where the file system does not
// support it.
func renameNoReplace(fromDir int, from string, toDir int, to string) error {
	err := unix.Renameat2(fromDir, from, toDir, to, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	if err := unix.Linkat(fromDir, from, toDir, to, 0); err != nil {
		return err
	}
	return unix.Unlinkat(fromDir, from, 0)
}
