package sourcemock

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits sub-buckets per power
// of two, so a bucket is at most 1/32 (3 %) of its values wide.
const subBits = 5

const subBuckets = 1 << subBits

// histogram counts latencies in microseconds in log-linear buckets (as HDR
// histograms do), so that percentiles cost a fixed size however long a run
// is. Values below 32 µs are exact.
type histogram struct {
	counts [(64 - subBits + 1) * subBuckets]int64
	n      int64
	max    time.Duration
}

// bucket is the index of v: values below subBuckets map to themselves; above,
// the top subBits+1 bits of v pick the bucket.
func bucket(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift*subBuckets + int(v>>shift)
}

// upper is the largest value in bucket i.
func upper(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	m := uint64(i%subBuckets + subBuckets)
	return (m+1)<<shift - 1
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d/time.Microsecond))]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the q-quantile (0 < q <= 1): the upper bound of the
// bucket holding it, never more than the maximum. Zero when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(time.Duration(upper(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}
