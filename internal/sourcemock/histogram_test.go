package sourcemock

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	// Every value lies in its bucket, and buckets are contiguous and at most
	// 1/32 of their values wide.
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 1000, 12345, 1 << 40, 1<<64 - 1} {
		i := bucket(v)
		lo := uint64(0)
		if i > 0 {
			lo = upper(i-1) + 1
		}
		if v < lo || v > upper(i) {
			t.Errorf("value %d in bucket %d = [%d, %d]", v, i, lo, upper(i))
		}
		if width := upper(i) - lo; v >= subBuckets && float64(width) > float64(lo)/subBuckets {
			t.Errorf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, upper(i), subBuckets)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h histogram
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("empty histogram p50 = %v, want 0", got)
	}
	// 1 ms, 2 ms, ..., 100 ms.
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	cases := []struct {
		name string
		q    float64
		want time.Duration
	}{
		{name: "p50", q: 0.50, want: 50 * time.Millisecond},
		{name: "p90", q: 0.90, want: 90 * time.Millisecond},
		{name: "p99", q: 0.99, want: 99 * time.Millisecond},
		{name: "max", q: 1, want: 100 * time.Millisecond},
	}
	for _, tc := range cases {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subBuckets) {
			t.Errorf("%s = %v, want %v to within 1/%d above", tc.name, got, tc.want, subBuckets)
		}
	}
	if h.max != 100*time.Millisecond {
		t.Errorf("max = %v, want 100ms", h.max)
	}
}
