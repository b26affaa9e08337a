package bench

import (
	"strings"
	"testing"
	"time"
)

// TestPrint_noopAndSaturation checks that the table sets ingest beside the
// no-op handler (medians of the rounds and their ratio) and gives each
// saturation climb and the median point.
func TestPrint_noopAndSaturation(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r := Report{
		IngestModes: []IngestResult{{
			Handler: "ingest", Telemetry: "off", Rate: 1000, Duration: 30 * time.Second, Requests: 30000,
			RoundP50s: []time.Duration{2 * ms, 3 * ms, 1 * ms}, MedianRoundP50: 2 * ms,
			RoundP99s: []time.Duration{20 * ms, 30 * ms, 10 * ms}, MedianRoundP99: 20 * ms,
		}},
		Noop: &IngestResult{Handler: "noop", Rate: 1000, Duration: 30 * time.Second, Requests: 30000,
			MedianRoundP50: ms / 4, MedianRoundP99: 4 * ms},
		Saturation: &SaturationResult{Duration: 5 * time.Second, MedianPoint: 3000, Runs: []SaturationRun{
			{Point: 3000, Steps: []SaturationStep{{Rate: 2000, P99: 50 * ms, OK: true}, {Rate: 3000, P99: 90 * ms, OK: true}, {Rate: 4000, P99: 700 * ms, Non2xx: 12}}},
		}},
	}
	var b strings.Builder
	if err := Print(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2.00 ms / 20.00 ms (x8.0 / x5.0)",
		"2000/s 50 ms, 3000/s 90 ms, 4000/s 700 ms 12 non-2xx -> 3000/s",
		"median of 1 runs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{name: "none", in: nil, want: 0},
		{name: "odd", in: []time.Duration{9, 1, 5}, want: 5},
		{name: "even takes the upper", in: []time.Duration{4, 1, 3, 2}, want: 3},
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("%s: median(%v) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
}
