package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgefn/edgefn/internal/procstat"
	"golang.org/x/sys/unix"
)

// proc is one gateway-side process.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string // its standard output
}

// line returns the first output line containing s, if any.
func (p *proc) line(s string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.Contains(l, s) {
			return l, true
		}
	}
	return "", false
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// procs is the set of gateway-side processes of one path.
type procs []*proc

// cpu is the summed utime+stime of the processes.
func (ps procs) cpu() time.Duration {
	var t time.Duration
	for _, p := range ps {
		if d, err := procstat.CPU(p.pid()); err == nil {
			t += d
		}
	}
	return t
}

// rssSampler reads VmRSS of every process every step until stopped.
type rssSampler struct {
	ps   procs
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	sums []int64            // total of all processes, per sample
	per  map[string][]int64 // per process
}

func sampleRSS(ps procs, step time.Duration) *rssSampler {
	r := &rssSampler{ps: ps, stop: make(chan struct{}), per: map[string][]int64{}}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(step)
		defer t.Stop()
		for {
			var sum int64
			r.mu.Lock()
			for _, p := range ps {
				if v, err := procstat.Status(p.pid(), "VmRSS"); err == nil {
					sum += v
					r.per[p.name] = append(r.per[p.name], v)
				}
			}
			r.sums = append(r.sums, sum)
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

// rssResult is the resident memory of one repetition.
type rssResult struct {
	PeakMB   float64            `json:"peak_mb"`   // sum of the processes' VmHWM
	MedianMB float64            `json:"median_mb"` // median of the sampled sums
	Per      map[string]float64 `json:"per_peak_mb"`
}

// done stops sampling and returns peak (VmHWM) and median RSS.
func (r *rssSampler) done() rssResult {
	close(r.stop)
	r.wg.Wait()
	res := rssResult{Per: map[string]float64{}}
	for _, p := range r.ps {
		hwm, err := procstat.Status(p.pid(), "VmHWM")
		if err != nil {
			hwm = slices.Max(append(r.per[p.name], 0))
		}
		res.Per[p.name] = mb(hwm)
		res.PeakMB += mb(hwm)
	}
	if len(r.sums) > 0 {
		s := slices.Clone(r.sums)
		slices.Sort(s)
		res.MedianMB = mb(s[len(s)/2])
	}
	return res
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// pinSelf moves every thread of this process to cpu (new threads inherit
// the mask of the thread that creates them).
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return eachThread(func(tid int) error {
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to cpu %d: %w", tid, cpu, err)
		}
		return nil
	})
}

// unpinSelf lets every thread run on any cpu again.
func unpinSelf() error {
	var set unix.CPUSet
	for i := 0; i < 1024; i++ {
		set.Set(i)
	}
	return eachThread(func(tid int) error {
		_ = unix.SchedSetaffinity(tid, &set)
		return nil
	})
}

// eachThread calls f with the id of every thread of this process, up to
// the first error.
func eachThread(f func(tid int) error) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := f(tid); err != nil {
			return err
		}
	}
	return nil
}
