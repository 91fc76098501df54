package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/strictyaml"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/triggers"
)

// resolveFiles checks m's file triggers against the agent and makes each
// Files the directory itself: absolute, symbolic links resolved. A
// relative path resolves next to the manifest, which the agent has only
// for the manifests of its functions dir (origin is then the manifest's
// path). The problems name the trigger, the directory and what is wrong.
func (g *Host) resolveFiles(m *edgefn.Manifest, origin string) []string {
	var probs []string
	others := g.otherFileDirs(m.Name)
	mine := map[string]int{}
	for i := range m.Triggers {
		t := &m.Triggers[i]
		if t.Kind() != edgefn.SourceFile {
			continue
		}
		field := fmt.Sprintf("triggers[%d].files", i)
		dir, err := g.fileDir(t.Files, origin)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %s: %v", field, strictyaml.Quote(t.Files), err))
			continue
		}
		switch j, dup := mine[dir]; {
		case dup:
			probs = append(probs, fmt.Sprintf("%s: %s: directory %s is already watched by triggers[%d]", field, strictyaml.Quote(t.Files), dir, j))
			continue
		case others[dir] != "":
			probs = append(probs, fmt.Sprintf("%s: %s: directory %s is already watched by function %q (one function per directory)", field, strictyaml.Quote(t.Files), dir, others[dir]))
			continue
		}
		mine[dir] = i
		t.Files = dir
	}
	if n := len(others) + len(mine); len(mine) > 0 && n > triggers.MaxFileWatches {
		probs = append(probs, fmt.Sprintf("triggers: %d directories watched with this function, more than the %d an agent watches", n, triggers.MaxFileWatches))
	}
	return probs
}

// otherFileDirs maps the directories the other active functions watch to
// their names.
func (g *Host) otherFileDirs(name string) map[string]string {
	out := map[string]string{}
	g.mu.RLock()
	defer g.mu.RUnlock()
	for n, d := range g.fns {
		v := d.cur.Load()
		if v == nil || n == name {
			continue
		}
		for _, t := range v.manifest.Triggers {
			if t.Kind() == edgefn.SourceFile {
				out[t.Files] = n
			}
		}
	}
	return out
}

// fileDir resolves a file trigger's directory and checks that the agent
// may and can use it: it exists, is a directory, lies within
// grants.max.files and outside the data dir, and the agent can create
// files in it (it creates .done and .rejected there).
func (g *Host) fileDir(p, origin string) (string, error) {
	if ext := filepath.Ext(origin); !filepath.IsAbs(origin) && (ext == ".yaml" || ext == ".yml") {
		// A functions_dir manifest named relative to the agent's
		// working directory.
		if abs, err := filepath.Abs(origin); err == nil {
			origin = abs
		}
	}
	if !filepath.IsAbs(p) {
		if !filepath.IsAbs(origin) {
			return "", errors.New("a relative path resolves next to the manifest, which the agent has only for the manifests of its functions_dir: write an absolute path")
		}
		p = filepath.Join(filepath.Dir(origin), p)
	}
	p = filepath.Clean(p)
	dir, err := filepath.EvalSymlinks(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("directory %s does not exist on the agent: create it, writable by the agent's user", p)
	case err != nil:
		return "", fmt.Errorf("directory %s: %v", p, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("directory %s: %v", p, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", p)
	}
	roots := g.cfg.Grants.Max.Files
	if len(roots) == 0 {
		return "", errors.New("file triggers may watch only directories within the agent config's grants.max.files, which lists none")
	}
	if !withinAny(dir, roots) {
		return "", fmt.Errorf("directory %s is not within the agent config's grants.max.files %v", dir, roots)
	}
	if data, err := filepath.EvalSymlinks(g.cfg.DataDir); err == nil && within(dir, data) {
		return "", fmt.Errorf("directory %s is inside the agent's data dir %s", dir, data)
	}
	for _, sub := range []string{edgefn.FileDoneDir, edgefn.FileRejectedDir} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("directory %s is not writable by the agent: %v", dir, unwrapPath(err))
		}
	}
	probe, err := os.CreateTemp(dir, ".edgefn-probe-*")
	if err != nil {
		return "", fmt.Errorf("directory %s is not writable by the agent: %v", dir, unwrapPath(err))
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return "", fmt.Errorf("directory %s: the agent cannot remove files from it: %v", dir, unwrapPath(err))
	}
	return dir, nil
}

// unwrapPath drops the path of a *PathError, which the message names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// withinAny reports whether dir is one of roots or inside one (roots'
// symbolic links resolved).
func withinAny(dir string, roots []string) bool {
	for _, r := range roots {
		if rr, err := filepath.EvalSymlinks(r); err == nil && within(dir, rr) {
			return true
		}
	}
	return false
}

func within(dir, root string) bool {
	return dir == root || strings.HasPrefix(dir, strings.TrimSuffix(root, "/")+"/")
}

// fileWatches returns the file triggers of the active functions, their
// directories resolved at activation.
func fileWatches(fns map[string]*edgefn.Manifest) []triggers.FileWatch {
	var out []triggers.FileWatch
	for name, m := range fns {
		for _, t := range m.Triggers {
			if t.Kind() == edgefn.SourceFile {
				out = append(out, triggers.FileWatchOf(name, t))
			}
		}
	}
	return out
}

// fileSink hands the file triggers' files to the functions.
type fileSink struct{ g *Host }

// DeliverFile runs function for ev, waiting for room in its queue, and
// returns once its record is durable.
func (s fileSink) DeliverFile(ctx context.Context, function string, ev edgefn.Event) (failed, err error) {
	ev.ID = s.g.NewEventID()
	res, err := s.g.invokeEvent(ctx, function, ev, true)
	if err != nil {
		return nil, err
	}
	return res.Sandbox.Err, nil
}

// RejectFile commits a failure record of function for ev without running
// it, counted as a drop with reason "rejected".
func (s fileSink) RejectFile(ctx context.Context, function string, ev edgefn.Event, why *edgefn.Failure) error {
	g := s.g
	g.mu.RLock()
	d := g.fns[function]
	g.mu.RUnlock()
	var v *version
	if d != nil {
		v = d.cur.Load()
	}
	if v == nil {
		return &NotFoundError{What: fmt.Sprintf("function %q", function)}
	}
	ev.ID = g.NewEventID()
	inv := &outbox.Invocation{Function: v.name, Version: v.meta.Version, EventID: ev.ID, Source: ev.Source, Subject: ev.Subject,
		Time: ev.Time, Err: why, MemoryCap: int64(v.limits.Memory)}
	ctx, cancel := context.WithTimeout(ctx, g.commitDeadline.d)
	defer cancel()
	if _, err := g.store.Commit(ctx, inv); err != nil {
		return err
	}
	d.stats.dropped(edgefn.ReasonRejected)
	return nil
}

func fileWatchesWire(ws []triggers.FileWatchStats) []api.FileWatch {
	var out []api.FileWatch
	for _, w := range ws {
		out = append(out, api.FileWatch{Dir: w.Dir, Function: w.Function, Pattern: w.Pattern, MaxSizeBytes: int64(w.MaxSize),
			After: string(w.After), Watching: w.Watching, Queued: w.Queued, Processed: w.Processed, Failed: w.Failed,
			Rejected: w.Rejected, Retries: w.Retries, Error: w.Error})
	}
	return out
}
