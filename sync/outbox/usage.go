package outbox

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"time"
)

// Successful invocations are not stored one row each: they are summed per
// function and per minute of event time into usage_minutes (count, cold
// starts, total duration, GB-seconds, maximum and a duration histogram).
// Failed and refused invocations keep a row each in invocations, with their
// reason and message. Usage merges both.
//
// The histogram has exact buckets below 16 µs and then 8 buckets per power
// of two, so a bucket spans at most 1/8 of its lower bound; a percentile
// read from it is the bucket's midpoint (clamped to the exact maximum),
// within ±6.25% of the true value.

// histSub is the number of buckets per power of two.
const histSub = 8

// histBucket returns the bucket of a duration in microseconds.
func histBucket(us int64) int {
	if us < 2*histSub {
		return int(max(us, 0))
	}
	e := bits.Len64(uint64(us)) - 1 // 2^e <= us < 2^(e+1), e >= 4
	sub := int(uint64(us)>>(e-3)) & (histSub - 1)
	return 2*histSub + (e-4)*histSub + sub
}

// histMid returns the midpoint of a bucket in microseconds.
func histMid(b int) int64 {
	if b < 2*histSub {
		return int64(b)
	}
	e := (b-2*histSub)/histSub + 4
	sub := int64((b - 2*histSub) % histSub)
	width := int64(1) << (e - 3)
	lo := int64(1)<<e + sub*width
	return lo + width/2
}

// usageAgg is one (function, minute) row of usage_minutes.
type usageAgg struct {
	count, cold, durUS, maxUS int64
	gbs                       float64
	hist                      map[int]int64
}

func (a *usageAgg) add(d time.Duration, memCap int64, cold bool) {
	us := d.Microseconds()
	a.count++
	if cold {
		a.cold++
	}
	a.durUS += us
	a.maxUS = max(a.maxUS, us)
	a.gbs += float64(memCap) / (1 << 30) * d.Seconds()
	if a.hist == nil {
		a.hist = map[int]int64{}
	}
	a.hist[histBucket(us)]++
}

func (a *usageAgg) merge(o *usageAgg) {
	a.count += o.count
	a.cold += o.cold
	a.durUS += o.durUS
	a.maxUS = max(a.maxUS, o.maxUS)
	a.gbs += o.gbs
	if a.hist == nil {
		a.hist = map[int]int64{}
	}
	for b, n := range o.hist {
		a.hist[b] += n
	}
}

// mergeUsage adds the sums of from to *into (made when nil).
func mergeUsage(into *map[usageKey]*usageAgg, from map[usageKey]*usageAgg) {
	for k, a := range from {
		if *into == nil {
			*into = map[usageKey]*usageAgg{}
		}
		t := (*into)[k]
		if t == nil {
			t = &usageAgg{}
			(*into)[k] = t
		}
		t.merge(a)
	}
}

// encodeHist stores the non-empty buckets as uvarint (bucket, count) pairs
// in bucket order.
func encodeHist(h map[int]int64) []byte {
	buf := make([]byte, 0, 4*len(h))
	for b := range 2*histSub + 60*histSub {
		if n := h[b]; n > 0 {
			buf = binary.AppendUvarint(buf, uint64(b))
			buf = binary.AppendUvarint(buf, uint64(n))
		}
	}
	return buf
}

var errBadHist = errors.New("malformed duration histogram")

func decodeHist(buf []byte) (map[int]int64, error) {
	h := map[int]int64{}
	for len(buf) > 0 {
		b, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil, errBadHist
		}
		buf = buf[n:]
		c, n := binary.Uvarint(buf)
		if n <= 0 {
			return nil, errBadHist
		}
		buf = buf[n:]
		h[int(b)] += int64(c)
	}
	return h, nil
}
