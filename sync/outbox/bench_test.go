package outbox

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

// ioCounters reads this process's write_bytes (bytes sent to the block
// layer, page granular) and wchar (bytes passed to write calls) from
// /proc/self/io.
func ioCounters(b *testing.B) (writeBytes, wchar int64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "write_bytes":
			writeBytes = n
		case "wchar":
			wchar = n
		}
	}
	return writeBytes, wchar
}

// cpuTime is the user plus system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// checkpoint copies the WAL into the database file, so the bytes a
// checkpoint will write are counted for the records that caused them. It
// retries while the background checkpointer holds the checkpoint lock.
func checkpoint(b testing.TB, s *Store) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var busy, log, done int
		if err := s.execWriter(context.Background(), func(ctx context.Context, db *sql.Conn) error {
			return db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
		}); err != nil {
			b.Fatal(err)
		}
		if busy == 0 && log == done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("checkpoint: busy %d, %d of %d frames", busy, done, log)
		}
		time.Sleep(time.Millisecond)
	}
}

// benchCommit commits invocations of perInv 100-byte records from many
// goroutines (one if serial: each commit then carries one invocation, and
// CPU per record is the cost of one transaction) and reports records/s and
// the bytes written per record.
func benchCommit(b *testing.B, cfg Config, perInv int, uplink, serial bool) {
	cfg.Path = filepath.Join(b.TempDir(), "outbox.db")
	cfg.Logger = testLogger(b)
	s := openStore(b, cfg)
	payload := bytes.Repeat([]byte("x"), 100)
	mk := func(perInv int) *Invocation {
		inv := &Invocation{Function: "bench", Version: 1, EventID: "0123456789abcdefghij", Source: edgefn.SourceMQTT,
			Subject: "sensors/room1/temperature", Time: time.Now(), Duration: time.Millisecond, MemoryBytes: 1 << 20, MemoryCap: 16 << 20}
		for range perInv {
			inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectEmit, Payload: payload})
		}
		return inv
	}
	ctx := context.Background()
	if cfg.MaxBytes > 0 && cfg.OnFull == DropOldest {
		// Fill to the budget first so every measured commit also drops.
		for stats(b, s).Drops[DropMaxBytes] == 0 {
			if _, err := s.Commit(ctx, mk(100)); err != nil {
				b.Fatal(err)
			}
		}
	}
	checkpoint(b, s)
	stop := make(chan struct{})
	upDone := make(chan struct{})
	if uplink {
		// A perfect uplink: confirms records as soon as they are pending.
		go func() {
			defer close(upDone)
			var after uint64
			for {
				select {
				case <-stop:
					return
				case <-s.Notify():
				}
				recs, err := s.Pending(ctx, after, 4096, 1<<22)
				if err != nil || len(recs) == 0 {
					continue
				}
				seqs := make([]uint64, len(recs))
				for i, r := range recs {
					seqs[i] = r.Seq
				}
				after = seqs[len(seqs)-1]
				if err := s.Confirm(ctx, seqs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	} else {
		close(upDone)
	}
	commits0 := stats(b, s).Commits
	w0, c0 := ioCounters(b)
	cpu0 := cpuTime(b)
	var invs atomic.Int64
	b.SetParallelism(128)
	b.ResetTimer()
	start := time.Now()
	commit := func(more func() bool) {
		for more() {
			if _, err := s.Commit(ctx, mk(perInv)); err != nil {
				b.Error(err)
				return
			}
			invs.Add(1)
		}
	}
	if serial {
		n := 0
		commit(func() bool { n++; return n <= b.N })
	} else {
		b.RunParallel(func(pb *testing.PB) { commit(pb.Next) })
	}
	elapsed := time.Since(start)
	checkpoint(b, s)
	cpu1 := cpuTime(b)
	b.StopTimer()
	close(stop)
	<-upDone
	w1, c1 := ioCounters(b)
	recs := float64(invs.Load()) * float64(perInv)
	b.ReportMetric(recs/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(w1-w0)/recs, "bytes_written/record")
	b.ReportMetric(float64(c1-c0)/recs, "wchar/record")
	b.ReportMetric(recs/float64(stats(b, s).Commits-commits0), "records/commit")
	// CPU time of the whole process (committer, the committing goroutines,
	// the uplink if any, GC) per record: unlike records/s it does not depend
	// on how much of the shared machine the run got.
	b.ReportMetric(float64(cpu1-cpu0)/recs, "cpu_ns/record")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkCommit(b *testing.B) {
	for _, d := range []Durability{DurabilityFull, DurabilityNormal} {
		b.Run(string(d)+"/1rec", func(b *testing.B) { benchCommit(b, Config{Durability: d}, 1, false, false) })
		if d == DurabilityNormal {
			b.Run(string(d)+"/1rec-nowait", func(b *testing.B) { benchCommit(b, Config{Durability: d, FlushInterval: -1}, 1, false, false) })
		}
		b.Run(string(d)+"/1rec-serial", func(b *testing.B) { benchCommit(b, Config{Durability: d, FlushInterval: -1}, 1, false, true) })
		b.Run(string(d)+"/10rec", func(b *testing.B) { benchCommit(b, Config{Durability: d}, 10, false, false) })
		b.Run(string(d)+"/1rec-uplink", func(b *testing.B) { benchCommit(b, Config{Durability: d}, 1, true, false) })
	}
}

func BenchmarkDropOldest(b *testing.B) {
	for _, d := range []Durability{DurabilityFull, DurabilityNormal} {
		b.Run(string(d), func(b *testing.B) {
			benchCommit(b, Config{Durability: d, MaxBytes: 4 * edgefn.MiB, OnFull: DropOldest}, 1, false, false)
		})
	}
}

// BenchmarkCommitPaced: the MQTT path's shape at moderate rates, where
// group commit has to gather on purpose: 4 devices, each committing one
// record at rate/4 per second and waiting for its commit (as a QoS 1
// message waits for its PUBACK) before the next. Reports records per
// commit, CPU per record and the commit latency (p50/p99).
func BenchmarkCommitPaced(b *testing.B) {
	for _, d := range []Durability{DurabilityNormal, DurabilityFull} {
		for _, rate := range []int{1000, 4000} {
			b.Run(fmt.Sprintf("%s/%d", d, rate), func(b *testing.B) {
				s := openStore(b, Config{Path: filepath.Join(b.TempDir(), "outbox.db"), Logger: testLogger(b), Durability: d})
				payload := bytes.Repeat([]byte("x"), 100)
				const devices = 4
				per := max(b.N/devices, 1)
				lat := make([][]time.Duration, devices)
				commits0, cpu0 := stats(b, s).Commits, cpuTime(b)
				b.ResetTimer()
				var wg sync.WaitGroup
				for dev := range devices {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// Devices out of phase: one commit every 1/rate overall.
						time.Sleep(time.Duration(dev) * time.Second / time.Duration(rate))
						tick := time.NewTicker(devices * time.Second / time.Duration(rate))
						defer tick.Stop()
						for range per {
							<-tick.C
							start := time.Now()
							inv := &Invocation{Function: "bench", Version: 1, EventID: "0123456789abcdefghij", Source: edgefn.SourceMQTT,
								Subject: "sensors/room1/temperature", Time: start, Effects: []edgefn.Effect{{Kind: edgefn.EffectEmit, Payload: payload}}}
							if _, err := s.Commit(context.Background(), inv); err != nil {
								b.Error(err)
								return
							}
							lat[dev] = append(lat[dev], time.Since(start))
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				n := float64(per * devices)
				all := slices.Concat(lat...)
				slices.Sort(all)
				b.ReportMetric(n/float64(stats(b, s).Commits-commits0), "records/commit")
				b.ReportMetric(float64(cpuTime(b)-cpu0)/n, "cpu_ns/record")
				b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
