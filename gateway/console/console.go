package console

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Defaults of Config.
const (
	DefaultSessionTTL  = 12 * time.Hour
	DefaultMaxSessions = 32
	DefaultRefresh     = 2 * time.Second
	OverviewRefresh    = 5 * time.Second
)

// CookieName is the session cookie. The __Host- prefix makes the browser
// refuse it unless it is Secure, for path / and without a Domain.
const CookieName = "__Host-edgefn_session"

// Config is what New needs.
type Config struct {
	// CheckToken reports whether a presented admin token is the right one
	// (in constant time). Required.
	CheckToken func(presented string) bool
	// Source gives the data of the pages. Required.
	Source Source
	// LogEvents streams a function's log lines as server-sent events; the
	// request carries the function as path value "name".
	LogEvents http.Handler
	// TrafficEvents streams MQTT messages as server-sent events (query
	// filter= and n=); nil shows the traffic page as unavailable.
	TrafficEvents http.Handler
	// Next serves every path the console does not: the admin API, which
	// does its own authentication.
	Next http.Handler
	// SessionTTL bounds a sign-in (DefaultSessionTTL); MaxSessions bounds
	// the sessions kept (DefaultMaxSessions).
	SessionTTL  time.Duration
	MaxSessions int
	// Refresh is how often pages update their figures (DefaultRefresh);
	// the overview waits at least OverviewRefresh, since reading the
	// outbox's backlog per function scans its records.
	Refresh time.Duration
	Logger  *slog.Logger
}

// Console serves the web console. Create it with New.
type Console struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	now      func() time.Time
}

// New checks cfg and parses the templates.
func New(cfg Config) (*Console, error) {
	if cfg.CheckToken == nil || cfg.Source == nil || cfg.Next == nil {
		return nil, errors.New("console: CheckToken, Source and Next are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions), pages: map[string]*template.Template{}, now: time.Now}
	for _, p := range []string{"signin", "overview", "functions", "function", "traffic"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		c.pages[p] = t
	}
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /signin", c.signinPage)
	mux.Handle("POST /signin", http.NewCrossOriginProtection().Handler(http.HandlerFunc(c.signin)))
	mux.Handle("POST /signout", http.NewCrossOriginProtection().Handler(http.HandlerFunc(c.signout)))
	mux.Handle("GET /{$}", c.page(c.overview))
	mux.Handle("GET /functions", c.page(c.functions))
	mux.Handle("GET /functions/{name}", c.page(c.function))
	mux.Handle("GET /traffic", c.page(c.traffic))
	if cfg.LogEvents != nil {
		mux.Handle("GET /functions/{name}/log", c.data(cfg.LogEvents))
	}
	if cfg.TrafficEvents != nil {
		mux.Handle("GET /traffic/events", c.data(cfg.TrafficEvents))
	}
	mux.Handle("/", cfg.Next)
	c.mux = mux
	return c, nil
}

// ServeHTTP serves the console's paths and hands the others to Next.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mux.ServeHTTP(w, r)
}

// secure sets the headers of every console response: no script but the
// console's own file, no framing, no sniffing, no caching, no referrer.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// signedIn reports whether r carries the admin token as a bearer token or
// a live session cookie.
func (c *Console) signedIn(r *http.Request) bool {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return c.cfg.CheckToken(tok)
	}
	ck, err := r.Cookie(CookieName)
	return err == nil && c.sessions.valid(ck.Value, c.now())
}

// page wraps a page: signed out, the browser is sent to the sign-in form,
// which brings it back here.
func (c *Console) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		if !c.signedIn(r) {
			if r.URL.Query().Get("live") != "" {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r)
	})
}

// data wraps a data endpoint (an event stream): signed out is 401.
func (c *Console) data(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		if !c.signedIn(r) {
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// localPath keeps a next= target on this site: a path, not a URL that
// leaves it ("//host", "/\host", "https:...").
func localPath(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") || strings.HasPrefix(s, "/signin") {
		return "/"
	}
	return s
}

type signinData struct {
	Next     string
	Wrong    bool
	Insecure bool
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	secure(w)
	c.render(w, r, http.StatusOK, "signin", "Sign in", signinData{Next: localPath(r.URL.Query().Get("next")), Insecure: r.TLS == nil && !loopback(r.Host)})
}

func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	secure(w)
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	next := localPath(r.PostFormValue("next"))
	if !c.cfg.CheckToken(r.PostFormValue("token")) {
		c.log.Warn("console: sign-in refused: wrong token", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "signin", "Sign in", signinData{Next: next, Wrong: true, Insecure: r.TLS == nil && !loopback(r.Host)})
		return
	}
	id := c.sessions.create(c.now())
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", MaxAge: int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	c.log.Info("console: signed in", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	secure(w)
	if ck, err := r.Cookie(CookieName); err == nil {
		c.sessions.end(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func loopback(host string) bool {
	h := host
	if i := strings.LastIndex(h, ":"); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.Trim(h, "[]")
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

// view is what every page template gets.
type view struct {
	Title   string
	Page    string
	Refresh int64 // milliseconds
	Data    any
}

// render writes page name; with ?live=1 only its "live" block, which the
// script swaps in place.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	tmpl := "layout.html"
	if r.URL.Query().Get("live") != "" {
		tmpl = "live"
	}
	refresh := c.cfg.Refresh
	if name == "overview" {
		refresh = max(refresh, OverviewRefresh)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, tmpl, view{Title: title, Page: name, Refresh: refresh.Milliseconds(), Data: data}); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "console: render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "overview", "Overview", c.cfg.Source.Overview(r.Context()))
}

func (c *Console) functions(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "functions", "Functions", c.cfg.Source.Functions(r.Context()))
}

type functionData struct {
	FunctionDetail
	Chart chart
}

func (c *Console) function(w http.ResponseWriter, r *http.Request) {
	fd, ok := c.cfg.Source.Function(r.Context(), r.PathValue("name"))
	if !ok {
		c.render(w, r, http.StatusNotFound, "function", "No such function", nil)
		return
	}
	c.render(w, r, http.StatusOK, "function", fd.Name, functionData{FunctionDetail: fd, Chart: newChart(fd.Hour)})
}

type trafficData struct {
	Filter    string
	Available bool
}

func (c *Console) traffic(w http.ResponseWriter, r *http.Request) {
	f := r.URL.Query().Get("filter")
	if f == "" {
		f = "#"
	}
	c.render(w, r, http.StatusOK, "traffic", "Traffic", trafficData{Filter: f, Available: c.cfg.TrafficEvents != nil})
}
