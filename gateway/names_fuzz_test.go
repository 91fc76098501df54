//go:build linux

package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
)

// fsWatch reports, through inotify, every open, read, create, write or
// delete of the watched directories and the files directly in them.
type fsWatch struct {
	fd    int
	paths map[int]string
}

func newFSWatch(t testing.TB, dirs ...string) *fsWatch {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	w := &fsWatch{fd: fd, paths: map[int]string{}}
	const mask = syscall.IN_OPEN | syscall.IN_ACCESS | syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_DELETE |
		syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_ATTRIB
	for _, d := range dirs {
		wd, err := syscall.InotifyAddWatch(fd, d, mask)
		if err != nil {
			t.Fatalf("inotify %s: %v", d, err)
		}
		w.paths[wd] = d
	}
	return w
}

// events drains what happened since the last call, as paths; keep filters
// the names reported for entries of a watched directory.
func (w *fsWatch) events(t testing.TB, keep func(dir, name string) bool) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(w.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			dir := w.paths[int(ev.Wd)]
			if keep(dir, name) {
				out = append(out, fmt.Sprintf("%s %#x", filepath.Join(dir, name), ev.Mask))
			}
		}
	}
}

// FuzzAdminRouteNames sends random names through every {name} admin route
// of a real handler whose data dir sits in a temp dir next to planted
// functions (the registry's layout, reachable with ".." from the functions
// dir). Whatever the name: a name edgefn.ValidName refuses is a 400, no
// function other than the deployed one appears, and inotify sees no file
// or directory outside the functions dir opened, read or written.
func FuzzAdminRouteNames(f *testing.F) {
	root := f.TempDir()
	dataDir := filepath.Join(root, "a", "data")
	g := newTestGateway(f, func(c *Config) { c.DataDir = dataDir })
	deploy(f, g, "name: echo\nwasm: x.wasm\n", "echo.wasm")
	wasm := testutil.Testdata(f, "echo.wasm")
	decoys := []string{
		filepath.Join(root, "a", "x", "evil"),     // functions/../../x/evil
		filepath.Join(dataDir, "x", "evil"),       // functions/../x/evil
		filepath.Join(dataDir, "evil"),            // functions/../evil
		filepath.Join(root, "evil"),               // functions/../../../evil
		filepath.Join(root, "a", "data", "evil2"), // functions/../evil2
	}
	watched := []string{root, filepath.Join(root, "a"), dataDir}
	for _, d := range decoys {
		m := []byte(fmt.Sprintf("name: %s\nwasm: x.wasm\n", filepath.Base(d)))
		vdir := filepath.Join(d, "1")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			f.Fatal(err)
		}
		mj := fmt.Sprintf(`{"name":%q,"version":1,"hash":%q}`, filepath.Base(d), contentHash(m, wasm))
		for name, b := range map[string][]byte{"function.yaml": m, "module.wasm": wasm, "meta.json": []byte(mj), "../active": []byte("1\n")} {
			if err := os.WriteFile(filepath.Join(vdir, name), b, 0o644); err != nil {
				f.Fatal(err)
			}
		}
		watched = append(watched, filepath.Dir(d), d, vdir)
	}
	w := newFSWatch(f, watched...)
	// Entries of the data dir that are the agent's own (the outbox, the
	// compile cache, the functions dir itself) are not outside.
	outside := func(dir, name string) bool {
		if dir == dataDir {
			return name == "x" || name == "evil" || name == "evil2" || name == ""
		}
		return true
	}
	h := g.handler("tok-0123456789abcdef")
	routes := []struct{ method, suffix string }{
		{"GET", ""}, {"DELETE", ""}, {"POST", "/rollback?to=1"}, {"POST", "/rollback"}, {"POST", "/invoke"}, {"GET", "/logs"},
	}
	for _, s := range []string{"..%2F..%2Fx%2Fevil", "../../x/evil", "..%2Fevil", "..%2F..%2F..%2Fevil", "echo", "..", ".",
		"%2e%2e%2fevil2", "a%00", "%", "%zz", "ECHO", "echo%2F..%2F..%2Fevil", "..\\evil", ""} {
		for i := range routes {
			f.Add(uint8(i), s, false)
			f.Add(uint8(i), s, true)
		}
	}
	w.events(f, outside)
	f.Fuzz(func(t *testing.T, route uint8, seg string, escape bool) {
		rt := routes[int(route)%len(routes)]
		if escape {
			seg = url.PathEscape(seg)
		}
		u, err := url.ParseRequestURI("/v1/functions/" + seg + rt.suffix)
		if err != nil {
			return // net/http refuses such a request line before any handler
		}
		req := httptest.NewRequest(rt.method, "/", strings.NewReader("{}"))
		req.URL, req.RequestURI = u, u.RequestURI()
		req.Header.Set("Authorization", "Bearer tok-0123456789abcdef")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		first, _, _ := strings.Cut(strings.TrimPrefix(u.EscapedPath(), "/v1/functions/"), "/")
		name, err := url.PathUnescape(first)
		if !strings.HasPrefix(u.EscapedPath(), "/v1/functions/") {
			name, err = "", errors.New("not a {name} route")
		}
		if (err != nil || !edgefn.ValidName(name)) && rec.Code < 300 {
			t.Errorf("%s %s: %d for invalid name %q: %s", rt.method, u, rec.Code, name, rec.Body)
		}
		// ServeMux answers a path with "." or ".." segments or "//" with a
		// redirect to the cleaned path before any route.
		redirected := rec.Code >= 300 && rec.Code < 400
		if err == nil && !edgefn.ValidName(name) && rec.Code != http.StatusBadRequest && !redirected {
			t.Errorf("%s %s: %d for invalid name %q, want 400: %s", rt.method, u, rec.Code, name, rec.Body)
		}
		for _, fi := range g.functions() {
			if fi.Name != "echo" {
				t.Errorf("%s %s: function %q appeared", rt.method, u, fi.Name)
			}
		}
		if evs := w.events(t, outside); len(evs) > 0 {
			t.Errorf("%s %s: touched outside the functions dir: %v", rt.method, u, evs)
		}
	})
}
