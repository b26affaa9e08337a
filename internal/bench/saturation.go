package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"
)

// SaturationStep is one rate of one saturation run.
type SaturationStep struct {
	Rate   int           `json:"rate"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Non2xx int           `json:"non_2xx"`
	// OK is p99 below 500 ms and every answer a 2xx.
	OK bool `json:"ok"`
}

// SaturationRun is one climb through the rates, stopped at the first step
// that is not OK.
type SaturationRun struct {
	Steps []SaturationStep `json:"steps"`
	// Point is the highest rate before the first step that was not OK (0:
	// the first already failed; the last rate: none failed).
	Point int `json:"point"`
}

// SaturationResult is the saturation scenario's outcome: the saturation
// point is the highest rate ingest keeps its p99 under the source's 500 ms
// with no 503.
type SaturationResult struct {
	Duration    time.Duration   `json:"duration_ns"`
	Runs        []SaturationRun `json:"runs"`
	MedianPoint int             `json:"median_point"`
}

// saturationBudget is the p99 a rate must stay under: the source's deadline.
const saturationBudget = 500 * time.Millisecond

// runSaturation climbs through o.SaturationRates o.SaturationRuns times,
// each step on a fresh stack with telemetry off, after the warm-up.
func runSaturation(ctx context.Context, o Options, progress io.Writer) (SaturationResult, error) {
	res := SaturationResult{Duration: o.SaturationDuration}
	points := make([]int, 0, o.SaturationRuns)
	for i := range o.SaturationRuns {
		var run SaturationRun
		for _, rate := range o.SaturationRates {
			step, err := saturationStep(ctx, o, filepath.Join(o.WorkDir, fmt.Sprintf("saturation-%d-%d", i, rate)), rate)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(progress, "  run %d/%d, %d/s: p50 %.1f ms, p99 %.1f ms, non-2xx %d\n", i+1, o.SaturationRuns, rate,
				float64(step.P50)/float64(time.Millisecond), float64(step.P99)/float64(time.Millisecond), step.Non2xx)
			run.Steps = append(run.Steps, step)
			if !step.OK {
				break
			}
			run.Point = rate
		}
		res.Runs = append(res.Runs, run)
		points = append(points, run.Point)
	}
	slices.Sort(points)
	res.MedianPoint = points[len(points)/2]
	return res, nil
}

func saturationStep(ctx context.Context, o Options, dir string, rate int) (SaturationStep, error) {
	stack, stop, err := startStack(ctx, o, dir, 200, 0)
	if err != nil {
		return SaturationStep{}, err
	}
	defer stop()
	if o.IngestWarmup > 0 {
		if _, _, err := attack(ctx, stack, rate, o.IngestWarmup); err != nil {
			return SaturationStep{}, err
		}
	}
	m, _, err := attack(ctx, stack, rate, o.SaturationDuration)
	if err != nil {
		return SaturationStep{}, err
	}
	s := SaturationStep{Rate: rate, P50: m.Latencies.P50, P99: m.Latencies.P99, Non2xx: non2xx(m)}
	s.OK = s.P99 < saturationBudget && s.Non2xx == 0
	return s, nil
}
