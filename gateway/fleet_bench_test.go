package gateway

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/sync/fleet"
)

// fleetBenchRow is one rollout of the fleet benchmark.
type fleetBenchRow struct {
	gateways      int
	started       time.Duration // all gateways started and online
	idleMedian    int64         // agent VmRSS after start, idle, median
	idleMax       int64
	brokerIdle    int64 // mosquitto VmRSS with the fleet connected, idle
	module        string
	size, chunks  int
	converge, cli time.Duration // to the last gateway's status; what fleet deploy --watch measured
	traffic       fleettest.Snapshot
	afterMedian   int64 // agent VmRSS once the function is active, median
	brokerAfter   int64
	// After the rollouts, the broker restarts: the time until every
	// gateway published an online status again, and the bytes the broker
	// received since (reconnectTraffic.InBytes, WireIn).
	reconnect        time.Duration
	reconnectTraffic fleettest.Snapshot
}

// BenchmarkFleetConverge starts real agent processes on a real mosquitto
// (EDGEFN_FLEET_SIZES, default "20"; make bench-fleet runs 20,100,200),
// then rolls out a one-chunk module (echo.wasm, 110 bytes) and a C WASI
// command of 151 KiB (two 96 KiB chunks) to all of them with one fleet
// deploy each, and measures the time until every gateway reports it
// active, the broker's traffic and the agents' and the broker's memory.
// (A 3.3 MB Go module is not used: 20 agents compiling it at once on two
// cores hit the agent's 1-minute compile timeout, a limit of one machine
// hosting the fleet, not of the rollout.) EDGEFN_FLEET_REPORT names a file the
// markdown table is written to.
func BenchmarkFleetConverge(b *testing.B) {
	sizes := []int{20}
	if s := os.Getenv("EDGEFN_FLEET_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 1000 {
				b.Fatalf("EDGEFN_FLEET_SIZES: %q: want gateway counts from 1 to 1000, comma-separated", f)
			}
			sizes = append(sizes, n)
		}
	}
	var rows []fleetBenchRow
	for _, n := range sizes {
		b.Run(fmt.Sprintf("gateways=%d", n), func(b *testing.B) {
			for range b.N {
				rows = append(rows, fleetBenchRun(b, n)...)
			}
		})
	}
	if out := os.Getenv("EDGEFN_FLEET_REPORT"); out != "" && len(rows) > 0 {
		if err := os.WriteFile(out, []byte(fleetBenchTable(rows)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func fleetBenchRun(b *testing.B, n int) []fleetBenchRow {
	start := time.Now()
	broker, f := startFleet(b, n)
	started := time.Since(start)
	gws := f.Gateways()
	time.Sleep(5 * time.Second) // let start-up garbage go
	rss := func() (median, max int64) {
		var all []int64
		for _, g := range gws {
			r, err := g.RSS()
			if err != nil {
				b.Fatal(err)
			}
			all = append(all, r)
		}
		slices.Sort(all)
		return all[len(all)/2], all[len(all)-1]
	}
	brokerRSS := func() int64 {
		r, err := procstat.Status(broker.Pid(), "VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	idleMed, idleMax := rss()
	brokerIdle := brokerRSS()
	tr := fleettest.NewTraffic(b, f.Broker(), f.Watch)
	var rows []fleetBenchRow
	for _, m := range []struct{ name, path string }{
		{"echo", "testdata/echo.wasm"},
		{"cmd", "../sandbox/testdata/cmd.wasm"},
	} {
		manifest, sha := fleetManifestFile(b, m.name, m.path)
		st, err := os.Stat(m.path)
		if err != nil {
			b.Fatal(err)
		}
		before := tr.Snapshot()
		start := time.Now()
		res := f.Deploy(manifest, "site", "--watch", "20m")
		took := f.WaitRunning(20*time.Minute, start, m.name, sha, gws...)
		if len(res.Converged) != n {
			b.Errorf("%s: fleet deploy --watch converged %d of %d", m.name, len(res.Converged), n)
		}
		d := tr.Snapshot().Sub(before)
		med, _ := rss()
		chunks := int((st.Size() + 96*1024 - 1) / (96 * 1024))
		rows = append(rows, fleetBenchRow{gateways: n, started: started, idleMedian: idleMed, idleMax: idleMax, brokerIdle: brokerIdle,
			module: m.name, size: int(st.Size()), chunks: chunks, converge: took, cli: time.Duration(res.ElapsedMS * float64(time.Millisecond)),
			traffic: d, afterMedian: med, brokerAfter: brokerRSS()})
		b.ReportMetric(took.Seconds(), m.name+"-converge-s")
		b.ReportMetric(float64(d.Out.Bytes)/float64(n), m.name+"-delivered-B/gw")
		b.Logf("%d gateways, %s (%d bytes): converged in %v; broker %+v", n, m.name, st.Size(), took.Round(time.Millisecond), d)
	}
	b.ReportMetric(float64(idleMed)/(1<<20), "agent-idle-MiB")

	// A broker restart: every gateway reconnects, resubscribes and
	// republishes its status.
	restart := time.Now()
	broker.Restart()
	f.Watch.Wait(10*time.Minute, "every gateway online again after the broker restart", func(sts map[string]fleet.StatusDoc) bool {
		for _, g := range gws {
			if st := sts[g.ID]; !st.Online || !st.Updated.After(restart) {
				return false
			}
		}
		return true
	})
	back := time.Since(restart)
	// mosquitto's counters started again at zero: InBytes and WireIn are
	// since the restart. (The '#' subscriber reconnects after some
	// gateways already republished: its counts are not used here.)
	rt := tr.Snapshot()
	rows[len(rows)-1].reconnect, rows[len(rows)-1].reconnectTraffic = back, rt
	b.ReportMetric(back.Seconds(), "reconnect-s")
	b.Logf("%d gateways online again %v after a broker restart; broker since: %+v", n, back.Round(time.Millisecond), rt)
	return rows
}

func fleetBenchTable(rows []fleetBenchRow) string {
	mib := func(v int64) string { return fmt.Sprintf("%.1f", float64(v)/(1<<20)) }
	var w strings.Builder
	fmt.Fprintf(&w, "| gateways | module | converge (s) | fleet deploy --watch (s) | published msgs / bytes | delivered msgs / bytes | wire in / out bytes | retained msgs / bytes after | agent RSS idle median / max (MiB) | agent RSS after, median (MiB) | mosquitto RSS idle / after (MiB) | start all (s) |\n")
	fmt.Fprintf(&w, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		var pm, pb int64
		for _, c := range r.traffic.Published {
			pm += c.Messages
			pb += c.Bytes
		}
		fmt.Fprintf(&w, "| %d | %s (%d B, %d chunk(s)) | %.2f | %.2f | %d / %d | %d / %d | %d / %d | %d / %d | %s / %s | %s | %s / %s | %.1f |\n",
			r.gateways, r.module, r.size, r.chunks, r.converge.Seconds(), r.cli.Seconds(), pm, pb, r.traffic.Out.Messages, r.traffic.Out.Bytes,
			r.traffic.WireIn, r.traffic.WireOut, r.traffic.Retained, r.traffic.StoreBytes, mib(r.idleMedian), mib(r.idleMax), mib(r.afterMedian),
			mib(r.brokerIdle), mib(r.brokerAfter), r.started.Seconds())
	}
	fmt.Fprintf(&w, "\nBroker restart after the rollouts (mosquitto stopped and started; every gateway reconnects, resubscribes, republishes its status):\n\n")
	fmt.Fprintf(&w, "| gateways | all online again (s) | publish payload bytes in | wire bytes in (CONNECT, SUBSCRIBE, PUBLISH, PUBACK...) |\n|---|---|---|---|\n")
	for _, r := range rows {
		if r.reconnect == 0 {
			continue
		}
		fmt.Fprintf(&w, "| %d | %.2f | %d | %d |\n", r.gateways, r.reconnect.Seconds(), r.reconnectTraffic.InBytes, r.reconnectTraffic.WireIn)
	}
	fmt.Fprintf(&w, "\nPublished by class (messages / bytes incl. topic):\n\n")
	for _, r := range rows {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.traffic.Published)) {
			c := r.traffic.Published[k]
			parts = append(parts, fmt.Sprintf("%s %d / %d", k, c.Messages, c.Bytes))
		}
		fmt.Fprintf(&w, "- %d gateways, %s: %s\n", r.gateways, r.module, strings.Join(parts, "; "))
	}
	return w.String()
}
