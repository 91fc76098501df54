package gateway

import (
	"math"
	"time"

	"github.com/edgefn/edgefn/gateway/console"
)

// history counts events per second over the last minute (for rates) and
// per minute over the last hour, with a coarse duration histogram per
// minute (for the p99 chart). It is fixed-size: about 20 KiB, whatever the
// load. The caller serializes access.
type history struct {
	secs [60]struct {
		at int64 // unix second
		n  int64
	}
	mins [histMinutes]histMinute
}

const (
	histMinutes = 60
	// Duration buckets grow by 2^(1/3) (26%) from 1 µs; 78 of them reach
	// past 60 s. A reported p99 is the upper bound of its bucket.
	histBuckets = 78
	rateWindow  = 10 // seconds averaged for a rate
)

type histMinute struct {
	at       int64 // unix minute
	n        int64
	failures int64
	buckets  [histBuckets]uint32
}

func durationBucket(d time.Duration) int {
	if d <= time.Microsecond {
		return 0
	}
	i := int(math.Ceil(3 * math.Log2(float64(d)/float64(time.Microsecond))))
	return min(i, histBuckets-1)
}

func bucketBound(i int) time.Duration {
	return time.Duration(float64(time.Microsecond) * math.Exp2(float64(i)/3))
}

// add counts one event at now that took d (0: not timed).
func (h *history) add(now time.Time, d time.Duration, failed bool) {
	sec := now.Unix()
	s := &h.secs[sec%int64(len(h.secs))]
	if s.at != sec {
		s.at, s.n = sec, 0
	}
	s.n++
	minute := sec / 60
	m := &h.mins[minute%histMinutes]
	if m.at != minute {
		*m = histMinute{at: minute}
	}
	m.n++
	if failed {
		m.failures++
	}
	if d > 0 {
		m.buckets[durationBucket(d)]++
	}
}

// rate is the events per second over the last rateWindow seconds.
func (h *history) rate(now time.Time) float64 {
	sec := now.Unix()
	var n int64
	for _, s := range h.secs {
		if s.at > sec-rateWindow && s.at <= sec {
			n += s.n
		}
	}
	return float64(n) / rateWindow
}

// lastHour returns one entry per minute, oldest first, ending with the
// current minute; minutes without events are zero.
func (h *history) lastHour(now time.Time) []console.Minute {
	cur := now.Unix() / 60
	out := make([]console.Minute, histMinutes)
	for i := range out {
		minute := cur - int64(histMinutes-1-i)
		out[i].Start = time.Unix(minute*60, 0)
		m := &h.mins[minute%histMinutes]
		if m.at != minute {
			continue
		}
		out[i].Events, out[i].Failures = m.n, m.failures
		out[i].P99 = m.quantile(0.99)
	}
	return out
}

func (m *histMinute) quantile(q float64) time.Duration {
	var total int64
	for _, c := range m.buckets {
		total += int64(c)
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, c := range m.buckets {
		seen += int64(c)
		if seen >= rank {
			return bucketBound(i)
		}
	}
	return bucketBound(histBuckets - 1)
}
