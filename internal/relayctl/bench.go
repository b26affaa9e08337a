package relayctl

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"eventrelay/internal/bench"
	"eventrelay/internal/engines"
	"eventrelay/internal/logging"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	out := fs.String("out", "bench-results", "directory for the JSON report")
	var o bench.Options
	fs.IntVar(&o.IngestRate, "ingest-rate", 1000, "ingest scenario: events/s")
	fs.DurationVar(&o.IngestDuration, "ingest-duration", 30*time.Second, "ingest scenario: how long")
	fs.DurationVar(&o.IngestWarmup, "ingest-warmup", 2*time.Second, "ingest scenario: load sent first and not measured (0: none)")
	ratios := fs.String("sample-ratios", "0.1,1", "ingest scenario: trace sample ratios to run with tracing and metrics on (it also runs with both off)")
	fs.IntVar(&o.IngestRounds, "ingest-rounds", 5, "ingest scenario: rounds per mode, alternating telemetry off and on, each on a fresh stack")
	fs.IntVar(&o.DrainEvents, "drain-events", 2000, "drain scenario: events in the burst")
	fs.Float64Var(&o.DrainLimit, "limit", 100, "drain and latency scenarios: the target's limit in events/s")
	fs.IntVar(&o.LatencyRate, "latency-rate", 50, "latency scenario: events/s (below the limit)")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", 20*time.Second, "latency scenario: how long")
	fs.StringVar(&o.Engine, "engine", engines.Embedded, "engines to measure: embedded or gcp (the emulators)")
	gcpFlags(fs, &o.GCP)
	scenarios := fs.String("scenarios", "", "comma-separated subset of ingest,drain,latency (default all)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional(pos); err != nil {
		return err
	}
	if *scenarios != "" {
		o.Scenarios = strings.Split(*scenarios, ",")
	}
	for _, r := range strings.Split(*ratios, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || !(v > 0 && v <= 1) {
			return fmt.Errorf("%w: --sample-ratios wants ratios in (0, 1], got %q", errUsage, r)
		}
		o.SampleRatios = append(o.SampleRatios, v)
	}
	// The stack's own logs would drown the table: keep only errors.
	ctx = logging.WithLogger(ctx, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	r, err := bench.Run(ctx, o, stderr)
	if err != nil {
		return err
	}
	if err := bench.Print(stdout, r); err != nil {
		return err
	}
	path, err := bench.WriteJSON(*out, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report written to %s\n", path)
	return nil
}
