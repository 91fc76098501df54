package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/sandbox"
)

// The admin API, under /v1, authenticated with the bearer token:
//
//	POST   /v1/functions                 deploy (multipart: manifest, wasm, [activation])
//	GET    /v1/functions                 list
//	GET    /v1/functions/{name}          one function, with its versions
//	DELETE /v1/functions/{name}          drain, then remove
//	POST   /v1/functions/{name}/rollback [?to=N] (body: [signed statement])
//	POST   /v1/functions/{name}/invoke   run synchronously (body = payload)
//	GET    /v1/status
//	GET    /metrics                      Prometheus
//	GET    /healthz                      no auth
func (g *Host) handler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/functions", g.handleDeploy)
	mux.HandleFunc("GET /v1/functions", g.handleList)
	mux.HandleFunc("GET /v1/functions/{name}", g.handleGet)
	mux.HandleFunc("DELETE /v1/functions/{name}", g.handleRemove)
	mux.HandleFunc("POST /v1/functions/{name}/rollback", g.handleRollback)
	mux.HandleFunc("POST /v1/functions/{name}/invoke", g.handleInvoke)
	mux.HandleFunc("GET /v1/status", g.handleStatus)
	g.readRoutes(mux)
	for pattern, h := range g.extraRoutes {
		mux.HandleFunc(pattern, h)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{}))
	// Profiles for operators chasing CPU or memory on a device, behind the
	// token like everything else.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	authed := g.auth(token, checkNames(mux))
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	root.Handle("/", g.consoleHandler(token, authed))
	return root
}

// auth refuses requests without the bearer token with 401, and logs them
// without the presented secret.
func (g *Host) auth(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		presented, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !tokenOK(presented, token) {
			why := "no token"
			if h != "" {
				why = "wrong token"
			}
			g.log.Warn("admin API: unauthenticated request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgefn"`)
			writeError(w, http.StatusUnauthorized, errors.New("unauthorized: pass the agent's API token (edgefn login)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkNames refuses with 400 a request under /v1/functions/ whose {name}
// segment is not a valid function name: one check in front of every {name}
// route, so no handler ever builds a path from such a name. The segment is
// unescaped the way ServeMux does it, so "..%2F..%2Fx" is seen as "../../x".
func checkNames(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/functions/"); ok {
			seg, _, _ := strings.Cut(rest, "/")
			name, err := url.PathUnescape(seg)
			if err != nil {
				name = seg
			}
			if err := checkName(name); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	body := api.Error{Error: err.Error(), Code: status}
	var de *DeployError
	if errors.As(err, &de) {
		body.Problems = de.Problems
		body.Error = fmt.Sprintf("deploy %q refused", de.Function)
	}
	writeJSON(w, status, body)
}

func statusOf(err error) int {
	var nf *NotFoundError
	var de *DeployError
	var f *edgefn.Failure
	var ne *NameError
	switch {
	case errors.As(err, &ne):
		return http.StatusBadRequest
	case errors.As(err, new(*ActivationError)):
		return http.StatusForbidden
	case errors.As(err, &nf):
		return http.StatusNotFound
	case errors.As(err, &de):
		return http.StatusUnprocessableEntity
	case errors.As(err, &f) && (f.Reason == edgefn.ReasonQueueFull || f.Reason == edgefn.ReasonOutboxFull):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// decodeSigned reads a signed activation statement (JSON); an empty input
// is no statement.
func decodeSigned(rd io.Reader) (*activation.Signed, error) {
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("activation statement: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var sg activation.Signed
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sg); err != nil {
		return nil, fmt.Errorf("activation statement: not the JSON of a signed statement: %w", err)
	}
	return &sg, nil
}

func readPart(form *multipart.Form, name string) ([]byte, error) {
	fhs := form.File[name]
	if len(fhs) == 0 {
		if v := form.Value[name]; len(v) > 0 {
			return []byte(v[0]), nil
		}
		return nil, fmt.Errorf("missing part %q", name)
	}
	f, err := fhs[0].Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (g *Host) handleDeploy(w http.ResponseWriter, r *http.Request) {
	max := int64(g.cfg.Admin.MaxUpload)
	r.Body = http.MaxBytesReader(w, r.Body, max)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("upload over the agent's limit of %s (admin.max_upload)", edgefn.Size(max)))
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("upload truncated or malformed, nothing was changed: %w", err))
		return
	}
	defer r.MultipartForm.RemoveAll()
	manifest, err := readPart(r.MultipartForm, "manifest")
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	wasm, err := readPart(r.MultipartForm, "wasm")
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// The client sends the sizes and hashes it meant to send; a body cut
	// short in a way multipart did not notice is still refused.
	if want := r.MultipartForm.Value["wasm_sha256"]; len(want) > 0 {
		sum := sha256.Sum256(wasm)
		if hex.EncodeToString(sum[:]) != want[0] {
			writeError(w, http.StatusBadRequest, errors.New("upload truncated or corrupted: module hash does not match, nothing was changed"))
			return
		}
	}
	var sg *activation.Signed
	if v := r.MultipartForm.Value["activation"]; len(v) > 0 {
		if sg, err = decodeSigned(strings.NewReader(v[0])); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	file := "function.yaml"
	if v := r.MultipartForm.Value["file"]; len(v) > 0 && v[0] != "" {
		file = v[0]
	}
	meta, err := g.Deploy(r.Context(), file, manifest, wasm, "api", sg)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, meta.wire())
}

// FunctionInfo describes a deployed function in the agent (its wire form
// is api.Function).
type FunctionInfo struct {
	Name     string
	Version  int
	Hash     string
	Deployed time.Time
	Triggers []string
	Limits   edgefn.Limits
	State    string
	Stats    FunctionStats
	loaded   bool
}

// wire is fi as the API answers it.
func (fi FunctionInfo) wire() api.Function {
	f := api.Function{Name: fi.Name, Version: fi.Version, Hash: fi.Hash, Deployed: fi.Deployed, State: fi.State, Triggers: fi.Triggers}
	if fi.loaded {
		f.Limits, f.Stats = api.LimitsOf(fi.Limits), fi.Stats.wire()
	}
	return f
}

func triggerStrings(m *edgefn.Manifest) []string {
	var out []string
	for _, t := range m.Triggers {
		switch t.Kind() {
		case edgefn.SourceMQTT:
			out = append(out, fmt.Sprintf("mqtt:%s (qos %d)", t.MQTT, t.QoS))
		case edgefn.SourceGPIO:
			out = append(out, fmt.Sprintf("gpio:%s %s", t.GPIO, t.Edge))
		case edgefn.SourceTimer:
			out = append(out, timerKey(t))
		case edgefn.SourceFile:
			s := "files:" + t.Files
			if t.Pattern != "" {
				s += " (" + t.Pattern + ")"
			}
			out = append(out, s)
		}
	}
	return out
}

func (g *Host) functionInfo(d *deployed) FunctionInfo {
	v := d.cur.Load()
	fi := FunctionInfo{Name: d.name, State: "removing", loaded: true}
	if v != nil {
		fi.Version, fi.Hash, fi.Deployed = v.meta.Version, v.meta.Hash, v.meta.Deployed
		fi.Triggers, fi.Limits = triggerStrings(v.manifest), v.limits
		fi.State = "idle"
		if d.q.currentWorkers() > 0 {
			fi.State = "warm"
		}
	}
	fi.Stats = d.stats.snapshot()
	fi.Stats.QueueDepth = d.q.depth()
	fi.Stats.Dropped = d.q.dropped.Load()
	return fi
}

func (g *Host) functions() []FunctionInfo {
	g.mu.RLock()
	ds := make([]*deployed, 0, len(g.fns))
	for _, d := range g.fns {
		ds = append(ds, d)
	}
	g.mu.RUnlock()
	out := make([]FunctionInfo, 0, len(ds))
	for _, d := range ds {
		out = append(out, g.functionInfo(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *Host) handleList(w http.ResponseWriter, _ *http.Request) {
	fns := g.functions()
	// Functions stored but not loaded (refused at start: no valid signed
	// statement, or a load error) are listed so that ls shows them.
	loaded := make(map[string]bool, len(fns))
	for _, fi := range fns {
		loaded[fi.Name] = true
	}
	names, _ := g.reg.names()
	for _, name := range names {
		if !loaded[name] {
			act, _ := g.reg.active(name)
			fi := FunctionInfo{Name: name, Version: act, State: "not loaded"}
			if m, err := g.reg.meta(name, act); err == nil {
				fi.Hash, fi.Deployed = m.Hash, m.Deployed
			}
			fns = append(fns, fi)
		}
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	out := make([]api.Function, len(fns))
	for i, fi := range fns {
		out[i] = fi.wire()
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Host) handleGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	g.mu.RLock()
	d := g.fns[name]
	g.mu.RUnlock()
	var fi FunctionInfo
	if d != nil {
		fi = g.functionInfo(d)
	} else if act, _ := g.reg.active(name); act > 0 {
		// Stored but not loaded (at start, without a valid signed
		// statement): shown so that it can be rolled back or removed.
		fi = FunctionInfo{Name: name, Version: act, State: "not loaded"}
	} else {
		writeError(w, http.StatusNotFound, &NotFoundError{What: fmt.Sprintf("function %q", name)})
		return
	}
	out := fi.wire()
	vs, _ := g.reg.versions(name)
	for _, v := range vs {
		if sv, err := g.reg.load(name, v); err == nil {
			mh, wh := sha256.Sum256(sv.Manifest), sha256.Sum256(sv.Wasm)
			out.Versions = append(out.Versions, api.Version{Version: v, Active: v == fi.Version, Hash: sv.Meta.Hash,
				ManifestSHA256: hex.EncodeToString(mh[:]), ModuleSHA256: hex.EncodeToString(wh[:]),
				Deployed: sv.Meta.Deployed, Signer: sv.Meta.Signer, Origin: sv.Meta.Origin})
		}
	}
	out.Sequence, _ = g.lastSequence(name)
	writeJSON(w, http.StatusOK, out)
}

func (g *Host) handleRemove(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(g.cfg.ShutdownGrace))
	defer cancel()
	if err := g.Remove(ctx, r.PathValue("name")); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, api.Removed{Removed: r.PathValue("name")})
}

func (g *Host) handleRollback(w http.ResponseWriter, r *http.Request) {
	to := 0
	if s := r.URL.Query().Get("to"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("to=%q: want a version number", s))
			return
		}
		to = n
	}
	// The body, if any, is the signed rollback statement (JSON).
	sg, err := decodeSigned(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	meta, err := g.Rollback(r.Context(), r.PathValue("name"), to, sg)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, meta.wire())
}

func (g *Host) handleInvoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(g.cfg.Admin.MaxUpload)))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, err)
		return
	}
	meta := map[string]string{}
	for k, v := range r.URL.Query() {
		meta[k] = v[0]
	}
	// The event may pose as another trigger's: X-Edgefn-Source (mqtt, gpio,
	// timer, http) and X-Edgefn-Subject (the topic, pin or spec).
	source, subject := edgefn.SourceHTTP, name
	if s := r.Header.Get("X-Edgefn-Source"); s != "" {
		if source = edgefn.Source(s); !source.Valid() {
			writeError(w, http.StatusBadRequest, fmt.Errorf("source %q: want mqtt, gpio, timer or http", s))
			return
		}
	}
	if s := r.Header.Get("X-Edgefn-Subject"); s != "" {
		subject = s
	}
	res, err := g.InvokeAs(r.Context(), name, source, subject, body, meta)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	ids := make([]string, len(res.Seqs))
	for i, seq := range res.Seqs {
		ids[i] = edgefn.RecordID(g.cfg.GatewayID, seq)
	}
	writeJSON(w, http.StatusOK, Invocation(res.Function, res.Version, res.Sandbox, ids))
}

// Invocation is what an invocation did, on the wire: the answer of invoke
// and what edgefn run prints. ids are the emitted records' ids, in emit
// order (none when nothing was committed).
func Invocation(function string, version int, res *sandbox.Result, ids []string) api.Invocation {
	out := api.Invocation{Function: function, Version: version, Outcome: "ok", DurationMS: api.Millis(res.Duration),
		Cold: res.Cold, MemoryBytes: res.MemoryBytes, ExitCode: res.ExitCode, LogsDropped: res.LogsDropped}
	if res.Err != nil {
		out.Outcome = string(reasonOf(res.Err))
		if f := res.Failure(); f != nil {
			out.Message = f.Detail()
		} else {
			out.Message = res.Err.Error()
		}
	}
	i := 0
	for _, e := range res.Effects {
		switch e.Kind {
		case edgefn.EffectEmit:
			rec := api.Record{Data: api.TextData(e.Payload)}
			if i < len(ids) {
				rec.ID = ids[i]
			}
			i++
			out.Records = append(out.Records, rec)
		case edgefn.EffectPublish:
			out.Published = append(out.Published, api.Published{Topic: e.Topic, QoS: e.QoS, Data: api.TextData(e.Payload)})
		case edgefn.EffectKVSet:
			out.KV = append(out.KV, api.KVWrite{Op: "set", Key: e.Key, Data: api.TextData(e.Payload)})
		case edgefn.EffectKVDelete:
			out.KV = append(out.KV, api.KVWrite{Op: "delete", Key: e.Key})
		case edgefn.EffectGPIOWrite:
			out.GPIO = append(out.GPIO, api.GPIOWrite{Pin: e.Pin, High: e.High})
		}
	}
	for _, l := range res.Logs {
		out.Logs = append(out.Logs, api.LogLine{Time: l.Time, Level: l.Level.String(), Message: l.Message})
	}
	return out
}

func (g *Host) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, g.Status(r.Context()))
}

// wire is the version as deploy and rollback answer it.
func (m versionMeta) wire() api.Version {
	return api.Version{Name: m.Name, Version: m.Version, Active: true, Hash: m.Hash, Deployed: m.Deployed, Signer: m.Signer, Origin: m.Origin}
}
