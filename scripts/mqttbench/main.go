package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefn/edgefn/scripts/internal/tool"
)

type options struct {
	out, charts, jsonOut string
	edgefn               string
	relayWasm, pubWasm   string
	reps, pinnedReps     int
	pubs                 int
	lat, cpu, sat        scenario
	warm                 int
	only                 string
	nodeRed              string
	noNodeRed            bool
	nodelay              bool
	maxQueued            int
	inflight             int
	noBrokerLimits       bool
	profile              string
	title                string
	keep                 bool
}

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "floor":
			err = floorMain(os.Args[2:])
		case "forward":
			err = forwardMain(os.Args[2:])
		case "conns":
			err = connsMain(os.Args[2:])
		default:
			err = benchMain(os.Args[1:])
		}
		tool.Exit("mqttbench", err)
		return
	}
	tool.Exit("mqttbench", benchMain(nil))
}

func benchMain(args []string) error {
	var o options
	fs := flag.NewFlagSet("mqttbench", flag.ExitOnError)
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "markdown report to write")
	fs.StringVar(&o.charts, "charts", "docs/benchmarks", "directory of the SVG charts (linked from -out)")
	fs.StringVar(&o.jsonOut, "json", "", "also write every measurement as JSON here")
	fs.StringVar(&o.edgefn, "edgefn", "bin/edgefn", "agent binary")
	fs.StringVar(&o.relayWasm, "relay", "gateway/testdata/relay.wasm", "emit+publish function (make wasm)")
	fs.StringVar(&o.pubWasm, "publish", "scripts/mqttbench/testdata/publish.wasm", "publish-only function (make wasm)")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every path (medians reported)")
	fs.IntVar(&o.pinnedReps, "pinned-reps", 1, "repetitions pinned to one core (taskset -c 0, GOMAXPROCS=1); 0: none")
	fs.IntVar(&o.pubs, "pubs", 4, "publisher (device) connections")
	fs.IntVar(&o.lat.Msgs, "lat-msgs", 5000, "messages of the latency scenario")
	fs.IntVar(&o.lat.Rate, "lat-rate", 1000, "rate of the latency scenario (msg/s)")
	fs.IntVar(&o.cpu.Msgs, "cpu-msgs", 20000, "messages of the CPU scenario")
	fs.IntVar(&o.cpu.Rate, "cpu-rate", 4000, "rate of the CPU scenario (msg/s)")
	fs.IntVar(&o.sat.Msgs, "sat-msgs", 20000, "messages of the unpaced (saturation) scenario")
	fs.IntVar(&o.warm, "warm", 500, "warm-up messages before the scenarios")
	fs.StringVar(&o.only, "only", "", "comma-separated path keys to run (default: all)")
	fs.StringVar(&o.nodeRed, "node-red", filepath.Join(os.TempDir(), "edgefn-bench-node-red4"), "npm prefix for Node-RED 4 (installed there when missing)")
	fs.BoolVar(&o.noNodeRed, "no-node-red", false, "skip Node-RED")
	fs.BoolVar(&o.nodelay, "mosquitto-nodelay", false, "mosquitto set_tcp_nodelay (its default: false)")
	fs.IntVar(&o.maxQueued, "mosquitto-max-queued", 100000, "mosquitto max_queued_messages (its default 1000 drops QoS 1 messages of a saturated subscriber)")
	fs.IntVar(&o.inflight, "mosquitto-max-inflight", 0, "mosquitto max_inflight_messages (-1: not set, its default 20; 0: no limit; with a limit mosquitto 2.0.11 sends queued messages out of order, which the order column would blame on the path)")
	fs.BoolVar(&o.noBrokerLimits, "no-broker-limits", false, "leave the embedded broker's per-client limits out of the agent config (agents before max_queued/max_inflight existed)")
	fs.StringVar(&o.profile, "profile", "", "directory for profiles of the agent: CPU during each edgefn path's CPU scenario, heap after its saturation scenario")
	fs.StringVar(&o.title, "title", "", "what kind of run this is (said under the title)")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (configs, data, the processes' output in log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.lat.Name, o.cpu.Name, o.sat.Name = "lat", "cpu", "sat"
	o.sat.Rate = 0
	self, dir, err := selfAndScratch("mqttbench")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "scratch directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	e := &env{dir: dir, self: self, nodelay: o.nodelay, maxQueued: o.maxQueued, inflight: o.inflight, brokerLimits: !o.noBrokerLimits, logs: logf}
	for _, p := range []*string{&o.edgefn, &o.relayWasm, &o.pubWasm} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
		if _, err := os.Stat(*p); err != nil {
			return fmt.Errorf("%w (run make build wasm)", err)
		}
	}
	e.edgefn, e.relayWasm, e.pubWasm = o.edgefn, o.relayWasm, o.pubWasm
	if _, err := exec.LookPath("mosquitto"); err != nil {
		return errors.New("mosquitto not found (scripts/install-deps.sh installs it)")
	}

	var sel []path
	for _, p := range paths() {
		if o.only == "" || strings.Contains(","+o.only+",", ","+p.Key+",") {
			sel = append(sel, p)
		}
	}
	rep := &report{Date: time.Now().UTC(), Opts: o, Machine: machine(), Versions: versions(o.edgefn), Results: map[string]map[string]*pathResult{}}
	rep.MosquittoConf = e.mosquittoConf("PORT")
	if !o.noNodeRed && has(sel, "nodered") {
		v, err := installNodeRed(o.nodeRed, logf)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("Node-RED row skipped: %v", err))
		} else {
			e.nodeRed = o.nodeRed
			rep.Versions["Node-RED"] = v
		}
	} else if has(sel, "nodered") {
		rep.Notes = append(rep.Notes, "Node-RED row skipped (-no-node-red)")
	}
	load0 := loadAvg()
	modes := []struct {
		name   string
		pinned bool
		reps   int
	}{{"all cores", false, o.reps}, {"one core", true, o.pinnedReps}}
	n := 0
	for _, m := range modes {
		if m.reps <= 0 {
			continue
		}
		e.pinned = m.pinned
		if m.pinned {
			// The load tool runs on the other core.
			if err := pinSelf(1); err != nil {
				return err
			}
		}
		res := map[string]*pathResult{}
		rep.Results[m.name] = res
		rep.Modes = append(rep.Modes, m.name)
		for r := 0; r < m.reps; r++ {
			for _, p := range sel {
				if p.Key == "nodered" && e.nodeRed == "" {
					continue
				}
				n++
				pr := res[p.Key]
				if pr == nil {
					pr = &pathResult{Path: p}
					res[p.Key] = pr
				}
				fmt.Fprintf(os.Stderr, "%s, run %d/%d: %s\n", m.name, r+1, m.reps, p.Label)
				rr, err := runPath(e, p, n, o)
				if err != nil {
					fmt.Fprintf(os.Stderr, "  failed: %v\n", err)
					pr.Errors = append(pr.Errors, err.Error())
					continue
				}
				fmt.Fprintf(os.Stderr, "  %s\n", rr.summary())
				pr.Runs = append(pr.Runs, rr)
			}
		}
		if m.pinned {
			if err := unpinSelf(); err != nil {
				return err
			}
		}
	}
	rep.LoadAvg = [2]string{load0, loadAvg()}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return rep.write(o.out, o.charts)
}

func has(ps []path, key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

// runResult is one repetition of one path: the three scenarios on one
// freshly started gateway side.
type runResult struct {
	Lat loadResult `json:"lat"`
	CPU loadResult `json:"cpu"`
	Sat loadResult `json:"sat"`
	RSS rssResult  `json:"rss"`
}

func (r runResult) summary() string {
	return fmt.Sprintf("cpu/msg %.0f µs @%.0f/s, %.0f µs @%.0f/s; p50/p99 %.2f/%.2f ms; saturation %.0f msg/s; peak RSS %.1f MB; lost %d, reordered %d",
		r.Lat.CPUPerMsg, r.Lat.Rate, r.CPU.CPUPerMsg, r.CPU.Rate, r.Lat.P50ms, r.Lat.P99ms, r.Sat.Rate, r.RSS.PeakMB,
		r.Lat.Sent-r.Lat.Received+r.CPU.Sent-r.CPU.Received+r.Sat.Sent-r.Sat.Received, r.Lat.Reordered+r.CPU.Reordered+r.Sat.Reordered)
}

// runPath starts p, runs the warm-up and the three scenarios, stops it.
func runPath(e *env, p path, n int, o options) (runResult, error) {
	var rr runResult
	r, err := p.start(e, n)
	if err != nil {
		return rr, err
	}
	defer r.stop()
	rss := sampleRSS(r.ps, 100*time.Millisecond)
	defer func() {
		if rss != nil {
			rss.done()
		}
	}()
	prefix := fmt.Sprintf("b%d", n)
	s, err := newSink(r.broker, prefix+"-sub", o.pubs)
	if err != nil {
		return rr, err
	}
	defer s.close()
	pubs, err := newPublishers(r.broker, prefix, o.pubs)
	if err != nil {
		return rr, err
	}
	defer pubs.close()
	base := 0
	if err := warmup(pubs, s, base, o.warm); err != nil {
		return rr, err
	}
	base += 1 << 20
	rr.Lat = run(pubs, s, o.lat, base, r.ps.cpu)
	base += 1 << 20
	var prof chan error
	if o.profile != "" && r.agent != nil {
		prof = profileAgent(r, o.profile, fmt.Sprintf("%s-%d.cpu.pprof", p.Key, n), "profile", time.Duration(o.cpu.Msgs/max(1, o.cpu.Rate))*time.Second)
	}
	rr.CPU = run(pubs, s, o.cpu, base, r.ps.cpu)
	if prof != nil {
		if err := <-prof; err != nil {
			fmt.Fprintf(os.Stderr, "  profile: %v\n", err)
		}
	}
	base += 1 << 20
	rr.Sat = run(pubs, s, o.sat, base, r.ps.cpu)
	if o.profile != "" && r.agent != nil {
		if err := <-profileAgent(r, o.profile, fmt.Sprintf("%s-%d.heap.pprof", p.Key, n), "heap", 0); err != nil {
			fmt.Fprintf(os.Stderr, "  heap profile: %v\n", err)
		}
	}
	rr.RSS = rss.done()
	rss = nil
	return rr, nil
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// installNodeRed installs node-red@4 under prefix with npm unless it is
// there, and returns its version.
func installNodeRed(prefix string, logs io.Writer) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not installed")
	}
	pkg := filepath.Join(prefix, "node_modules", "node-red", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			return "", errors.New("npm is not installed")
		}
		fmt.Fprintf(os.Stderr, "installing node-red@4 into %s\n", prefix)
		cmd := exec.Command("npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "node-red@4")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := os.MkdirAll(prefix, 0o755); err != nil {
			return "", err
		}
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("npm install node-red@4: %w", err)
		}
	}
	b, err := os.ReadFile(pkg)
	if err != nil {
		return "", err
	}
	var v struct{ Version string }
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	return v.Version, nil
}

// selfAndScratch returns this program's path (it runs itself as the
// forwarder and the floor) and a new scratch directory named prefix*.
func selfAndScratch(prefix string) (self, dir string, err error) {
	if self, err = os.Executable(); err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", prefix)
	return self, dir, err
}
