package main

import (
	"bytes"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

type pathResult struct {
	Path   path        `json:"path"`
	Runs   []runResult `json:"runs"`
	Errors []string    `json:"errors,omitempty"`
}

type report struct {
	Date          time.Time                         `json:"date"`
	Opts          options                           `json:"-"`
	Machine       map[string]string                 `json:"machine"`
	Versions      map[string]string                 `json:"versions"`
	MosquittoConf string                            `json:"mosquitto_conf"`
	Modes         []string                          `json:"modes"`
	Results       map[string]map[string]*pathResult `json:"results"`
	Notes         []string                          `json:"notes,omitempty"`
	LoadAvg       [2]string                         `json:"loadavg"`
}

func machine() map[string]string {
	m := map[string]string{"cores": fmt.Sprint(runtime.NumCPU()), "arch": runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if v, err := procStatusSelfMem(); err == nil {
		m["memory"] = v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	return m
}

func procStatusSelfMem() (string, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(v), &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20)), nil
		}
	}
	return "", fmt.Errorf("no MemTotal")
}

func firstLine(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(l)
}

func versions(edgefn string) map[string]string {
	v := map[string]string{"Go": runtime.Version(), "mosquitto": strings.TrimPrefix(firstLine("mosquitto", "-h"), "mosquitto version ")}
	v["edgefn"] = firstLine(edgefn, "version")
	if c := firstLine("git", "describe", "--tags", "--always", "--dirty"); c != "" {
		v["edgefn commit"] = c
	}
	if n := firstLine("node", "--version"); n != "" && !strings.Contains(n, "not found") {
		v["node"] = n
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/mochi-mqtt/server/v2":
				v["mochi-mqtt (floor)"] = d.Version
			case "github.com/eclipse/paho.mqtt.golang":
				v["paho.mqtt.golang (load, forwarder)"] = d.Version
			}
		}
	}
	return v
}

// metric is one column of the table and one chart.
type metric struct {
	key, title, unit string
	get              func(runResult) float64
	better           string // "lower" or "higher"
}

var metrics = []metric{
	{"cpu1k", "CPU per message at 1,000 msg/s", "µs", func(r runResult) float64 { return r.Lat.CPUPerMsg }, "lower"},
	{"cpu4k", "CPU per message at 4,000 msg/s", "µs", func(r runResult) float64 { return r.CPU.CPUPerMsg }, "lower"},
	{"p50", "latency p50 at 1,000 msg/s", "ms", func(r runResult) float64 { return r.Lat.P50ms }, "lower"},
	{"p99", "latency p99 at 1,000 msg/s", "ms", func(r runResult) float64 { return r.Lat.P99ms }, "lower"},
	{"sat", "saturation (unpaced)", "msg/s", func(r runResult) float64 { return r.Sat.Rate }, "higher"},
	{"rss", "peak RSS (sum of the gateway-side processes)", "MB", func(r runResult) float64 { return r.RSS.PeakMB }, "lower"},
}

// stat is the median and range of a metric over the runs.
type stat struct{ med, lo, hi float64 }

func statOf(runs []runResult, get func(runResult) float64) (stat, bool) {
	if len(runs) == 0 {
		return stat{}, false
	}
	var v []float64
	for _, r := range runs {
		v = append(v, get(r))
	}
	slices.Sort(v)
	return stat{med: v[len(v)/2], lo: v[0], hi: v[len(v)-1]}, true
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (s stat) String() string {
	if s.lo == s.hi {
		return num(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.med), num(s.lo), num(s.hi))
}

func (rep *report) write(out, charts string) error {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Benchmarks: the MQTT hot path side by side\n\n")
	w("Written by `make bench` (`go run ./scripts/mqttbench`, see its flags) on %s UTC. Do not edit by hand: rerun it.", rep.Date.Format("2006-01-02 15:04"))
	if rep.Opts.title != "" {
		w(" %s", rep.Opts.title)
	}
	w("\n\n")
	w("The load: %d device connections publish a ~110-byte JSON reading at QoS 1 on `sensors/devN/temperature`; the path under test turns each into a QoS 1 message on `%s`, which one subscriber receives and times against the send time in the payload (end-to-end latency). Scenarios, each on the same freshly started gateway side after %d warm-up messages: **%d messages at %d/s** (latency and CPU at 1k), **%d at %d/s** (CPU at 4k), **%d unpaced** (each device keeps 32 publishes in flight; saturation = derived messages per second from the first publish to the last derived message). ",
		rep.Opts.pubs, outTopic, rep.Opts.warm, rep.Opts.lat.Msgs, rep.Opts.lat.Rate, rep.Opts.cpu.Msgs, rep.Opts.cpu.Rate, rep.Opts.sat.Msgs)
	w("CPU is utime+stime from /proc/PID/stat of every gateway-side process (brokers, forwarder, Node-RED, agent; the load tool excluded) over the scenario, divided by the messages received. Peak RSS is the sum of the processes' VmHWM over the whole run; median RSS is the median of VmRSS sums sampled every 100 ms. Each figure is the median of %d runs (range in parentheses); the paths are interleaved run by run so a change in the machine's load spreads over all of them.\n\n", rep.Opts.reps)
	w("The paths:\n\n")
	w("- **embedded floor**: mochi-mqtt with the options edgefn's embedded broker uses (inline client, defaults otherwise) and an `OnPublish` hook that republishes in-process (`mqttbench floor`). No durability.\n")
	w("- **mosquitto + forwarder**: a paho client that republishes every message it receives, fire-and-forget, auto-ack (`mqttbench forward`). No durability.\n")
	w("- **Node-RED 4**: mqtt in (QoS 1, string payload) → function node (`msg.topic = '%s'; return msg;`) → mqtt out (QoS 1), against the same mosquitto. No durability.\n", outTopic)
	w("- **edgefn**: `edgefn agent` with one function on `sensors/+/temperature` (QoS 1, default limits: concurrency 2): *emit+publish* (`gateway/testdata/relay.wat`) commits a record to the outbox and publishes the reading; *publish only* (`scripts/mqttbench/testdata/publish.wat`) publishes it. The device's PUBACK follows the commit. Embedded: its own broker, with `max_queued: 8192, max_inflight: 65535` per client (mochi's own defaults, as the floor has; edgefn's defaults of 256 and 64 drop derived messages for the saturated subscriber); external: mosquitto beside it. Durability `normal` (WAL, synchronous=NORMAL) or `full` (fsync per commit).\n\n")
	w("mosquitto's configuration (every path through mosquitto):\n\n```\n%s```\n\n", rep.MosquittoConf)
	w("`max_queued_messages` is raised so mosquitto does not drop QoS 1 messages for the saturated subscriber; `max_inflight_messages 0` (no limit) because with its default of 20 mosquitto 2.0.11 delivers queued messages to the subscriber out of order, which the reordered column would then charge to the path under test. `set_tcp_nodelay` is mosquitto's default (Nagle on): it shows in the latency of every mosquitto path.\n\n")
	w("Lost = published (and acknowledged by the broker) but no derived message within 10 s of the last progress; on an overloaded machine that includes messages a broker dropped for the slow subscriber.\n\n")
	w("One core: every gateway-side process under `taskset -c 0` with `GOMAXPROCS=1` (the stand-in for a small board), the load tool pinned to the other core.\n\n")

	for _, mode := range rep.Modes {
		res := rep.Results[mode]
		nrep := rep.Opts.reps
		if mode == "one core" {
			nrep = rep.Opts.pinnedReps
		}
		w("## %s (%d run%s per path)\n\n", capitalize(mode), nrep, plural(nrep))
		w("| path | CPU/msg @1k (µs) | CPU/msg @4k (µs) | p50 / p99 @1k (ms) | saturation (msg/s) | peak RSS (MB) | median RSS (MB) | lost / dup / reordered |\n")
		w("|---|---|---|---|---|---|---|---|\n")
		for _, p := range paths() {
			pr := res[p.Key]
			if pr == nil {
				continue
			}
			if len(pr.Runs) == 0 {
				w("| %s | failed: %s |||||||\n", p.Label, html.EscapeString(strings.Join(pr.Errors, "; ")))
				continue
			}
			c1, _ := statOf(pr.Runs, metrics[0].get)
			c4, _ := statOf(pr.Runs, metrics[1].get)
			p50, _ := statOf(pr.Runs, metrics[2].get)
			p99, _ := statOf(pr.Runs, metrics[3].get)
			sat, _ := statOf(pr.Runs, metrics[4].get)
			rss, _ := statOf(pr.Runs, metrics[5].get)
			mrss, _ := statOf(pr.Runs, func(r runResult) float64 { return r.RSS.MedianMB })
			lost, dup, reord := 0, 0, 0
			for _, r := range pr.Runs {
				for _, l := range []loadResult{r.Lat, r.CPU, r.Sat} {
					lost += l.Sent - l.Received
					dup += l.Dups
					reord += l.Reordered
				}
			}
			w("| %s | %s | %s | %s / %s | %s | %s%s | %s | %d / %d / %d |\n", p.Label, c1, c4, num(p50.med), num(p99.med), sat, rss, perProc(pr.Runs), mrss, lost, dup, reord)
			if len(pr.Errors) > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s, %s: %d run(s) failed: %s", mode, p.Label, len(pr.Errors), strings.Join(pr.Errors, "; ")))
			}
		}
		w("\n")
		rep.ratios(&b, res)
	}

	w("## Charts\n\n")
	if err := os.MkdirAll(charts, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), charts)
	if err != nil {
		rel = charts
	}
	for _, m := range metrics {
		svg := rep.chart(m)
		name := m.key + ".svg"
		if err := os.WriteFile(filepath.Join(charts, name), svg, 0o644); err != nil {
			return err
		}
		w("![%s](%s)\n\n", m.title, filepath.ToSlash(filepath.Join(rel, name)))
	}

	w("## Machine and versions\n\n")
	w("| | |\n|---|---|\n")
	for _, k := range sortedKeys(rep.Machine) {
		w("| %s | %s |\n", k, rep.Machine[k])
	}
	for _, k := range sortedKeys(rep.Versions) {
		w("| %s | %s |\n", k, rep.Versions[k])
	}
	w("| load average (1, 5, 15 min) at start / end | %s / %s |\n\n", rep.LoadAvg[0], rep.LoadAvg[1])
	if len(rep.Notes) > 0 {
		w("## Notes\n\n")
		for _, n := range rep.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// perProc lists the peak RSS of each process when there are several.
func perProc(runs []runResult) string {
	if len(runs) == 0 || len(runs[0].RSS.Per) < 2 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(runs[0].RSS.Per) {
		s, _ := statOf(runs, func(r runResult) float64 { return r.RSS.Per[k] })
		parts = append(parts, fmt.Sprintf("%s %s", k, num(s.med)))
	}
	return " (" + strings.Join(parts, " + ") + ")"
}

// ratios compares the edgefn paths with their reference and the issue's
// targets.
func (rep *report) ratios(b *bytes.Buffer, res map[string]*pathResult) {
	ref := func(key string) (pathResult, bool) {
		pr := res[key]
		if pr == nil || len(pr.Runs) == 0 {
			return pathResult{}, false
		}
		return *pr, true
	}
	floor, okF := ref("floor")
	mosq, okM := ref("mosquitto")
	if !okF && !okM {
		return
	}
	fmt.Fprintf(b, "Ratios of medians (edgefn ÷ reference: the embedded floor for embedded paths, mosquitto + forwarder for external ones):\n\n")
	fmt.Fprintf(b, "| path | CPU/msg @1k | CPU/msg @4k | saturation | p99 @1k |\n|---|---|---|---|---|\n")
	for _, p := range paths() {
		if !strings.HasPrefix(p.Key, "edgefn-") {
			continue
		}
		pr, ok := ref(p.Key)
		if !ok {
			continue
		}
		base, okB := floor, okF
		if strings.Contains(p.Key, "external") {
			base, okB = mosq, okM
		}
		if !okB {
			continue
		}
		ratio := func(m metric) string {
			a, _ := statOf(pr.Runs, m.get)
			c, _ := statOf(base.Runs, m.get)
			if c.med == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f×", a.med/c.med)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", p.Label, ratio(metrics[0]), ratio(metrics[1]), ratio(metrics[4]), ratio(metrics[3]))
	}
	fmt.Fprintf(b, "\n")
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// chart draws one metric as horizontal bars, one group per path and one bar
// per mode (median), with a line over the range of the runs.
func (rep *report) chart(m metric) []byte {
	type bar struct {
		mode string
		s    stat
	}
	type row struct {
		label string
		bars  []bar
	}
	var rows []row
	maxV := 0.0
	for _, p := range paths() {
		var r row
		r.label = p.Label
		for _, mode := range rep.Modes {
			pr := rep.Results[mode][p.Key]
			if pr == nil {
				continue
			}
			if s, ok := statOf(pr.Runs, m.get); ok {
				r.bars = append(r.bars, bar{mode, s})
				maxV = max(maxV, s.hi)
			}
		}
		if len(r.bars) > 0 {
			rows = append(rows, r)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	colors := []string{"#4e79a7", "#f28e2b"}
	const labelW, plotW, barH, gap, top = 400, 420, 12, 10, 48
	rowH := len(rep.Modes)*barH + gap
	height := top + len(rows)*rowH + 30
	width := labelW + plotW + 90
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">%s (%s, %s is better)</text>`+"\n", html.EscapeString(m.title), m.unit, m.better)
	for i, mode := range rep.Modes {
		x := 10 + i*260
		fmt.Fprintf(&b, `<rect x="%d" y="28" width="12" height="12" fill="%s"/><text x="%d" y="38">%s (median, line: range)</text>`+"\n", x, colors[i%len(colors)], x+16, mode)
	}
	for i, r := range rows {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, y+len(r.bars)*barH/2+4, html.EscapeString(r.label))
		for j, br := range r.bars {
			ci := slices.Index(rep.Modes, br.mode)
			by := y + j*barH
			wpx := float64(plotW) * br.s.med / maxV
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, by, wpx, barH-2, colors[ci%len(colors)])
			lo, hi := float64(labelW)+float64(plotW)*br.s.lo/maxV, float64(labelW)+float64(plotW)*br.s.hi/maxV
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", lo, hi, by+(barH-2)/2, by+(barH-2)/2)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10">%s</text>`+"\n", max(wpx, hi-float64(labelW))+float64(labelW)+4, by+barH-3, num(br.s.med))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#888"/>`+"\n", labelW, labelW, top-4, height-30)
	fmt.Fprintf(&b, "</svg>\n")
	return b.Bytes()
}
