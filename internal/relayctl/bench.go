package relayctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
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
	fs.IntVar(&o.IngestRounds, "ingest-rounds", 3, "ingest scenario: rounds per mode, cycling through the no-op handler and telemetry off and on, each on a fresh stack")
	satRates := fs.String("saturation-rates", "2000,3000,4000,5000,6000,7000", "saturation scenario: rates (events/s) to climb through")
	fs.DurationVar(&o.SaturationDuration, "saturation-duration", 5*time.Second, "saturation scenario: how long each rate, after the warm-up")
	fs.IntVar(&o.SaturationRuns, "saturation-runs", 3, "saturation scenario: climbs (the median point is reported)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	blockProfile := fs.String("blockprofile", "", "write a blocking profile of the whole run to this file")
	mutexProfile := fs.String("mutexprofile", "", "write a mutex contention profile of the whole run to this file")
	fs.IntVar(&o.DrainEvents, "drain-events", 2000, "drain scenario: events in the burst")
	fs.Float64Var(&o.DrainLimit, "limit", 100, "drain and latency scenarios: the target's limit in events/s")
	fs.IntVar(&o.LatencyRate, "latency-rate", 50, "latency scenario: events/s (below the limit)")
	fs.DurationVar(&o.LatencyDuration, "latency-duration", 20*time.Second, "latency scenario: how long")
	fs.StringVar(&o.Engine, "engine", engines.Embedded, "engines to measure: embedded or gcp (the emulators)")
	gcpFlags(fs, &o.GCP)
	scenarios := fs.String("scenarios", "", "comma-separated subset of ingest,saturation,drain,latency (default all)")
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
	for _, r := range strings.Split(*satRates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			return fmt.Errorf("%w: --saturation-rates wants positive integers, got %q", errUsage, r)
		}
		o.SaturationRates = append(o.SaturationRates, v)
	}
	stopProfiles, err := startProfiles(*cpuProfile, *blockProfile, *mutexProfile)
	if err != nil {
		return err
	}
	defer func() {
		if perr := stopProfiles(); perr != nil {
			fmt.Fprintf(stderr, "profiles: %v\n", perr)
		}
	}()
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

// startProfiles starts the profiles whose file is named (empty: not
// taken); stop writes them.
func startProfiles(cpu, block, mutex string) (stop func() error, err error) {
	var cpuFile *os.File
	if cpu != "" {
		if cpuFile, err = os.Create(cpu); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			return nil, errors.Join(err, cpuFile.Close())
		}
	}
	if block != "" {
		runtime.SetBlockProfileRate(int(time.Microsecond))
	}
	if mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	return func() error {
		var errs []error
		if cpuFile != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpuFile.Close())
		}
		for _, p := range []struct{ name, file string }{{"block", block}, {"mutex", mutex}} {
			if p.file == "" {
				continue
			}
			f, err := os.Create(p.file)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, pprof.Lookup(p.name).WriteTo(f, 0), f.Close())
		}
		return errors.Join(errs...)
	}, nil
}
