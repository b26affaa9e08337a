package relayctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/devstack"
	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/opspage"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/telemetry"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", stderr)
	defaults, err := loadServiceDefaults(ctx)
	if err != nil {
		return err
	}
	var o devstack.Options
	fs.StringVar(&o.DataDir, "data", DefaultDataDir, "directory for the durable queue, status store, target record and dev key")
	fs.Float64Var(&o.TargetRate, "target-rate", defaults.Queue.MaxDispatchesPerSecond, "the target's rate limit in events/s (the queue dispatches at this rate)")
	fs.IntVar(&o.TargetBurst, "target-burst", 5, "the target's token-bucket burst")
	fs.StringVar(&o.TargetMode, "target-mode", string(defaults.Target.RateLimitMode), "how the target signals its limit: http (429 + Retry-After) or graphql (RATE_LIMITED error)")
	fs.Float64Var(&o.SourceRate, "source-rate", 20, "sourcemock's rate in events/s; 0 runs no source")
	fs.IntVar(&o.SourceCount, "source-count", 0, "stop the source after this many events (0 = until Ctrl-C)")
	fs.StringVar(&o.IngestAddr, "ingest-addr", "127.0.0.1:"+defaults.Ingest.Port, "ingest listen address")
	fs.StringVar(&o.TargetAddr, "target-addr", "127.0.0.1:"+defaults.Target.Port, "targetmock listen address")
	fs.StringVar(&o.TargetURL, "target-url", "", "call this external target's GraphQL URL instead of starting targetmock (--target-rate still sets the queue's rate)")
	fs.StringVar(&o.DispatcherAddr, "dispatcher-addr", "127.0.0.1:0", "dispatcher listen address (port 0 picks a free port)")
	opsAddr := fs.String("ops-addr", "127.0.0.1:8090", "live ops page listen address (port 0 picks a free port; empty disables it)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus /metrics on this address of its own (empty: on the ops page's listener)")
	fs.StringVar(&o.Brand, "brand", defaults.Dispatcher.Brand, "brand added to every event")
	fs.DurationVar(&o.Reconcile.Grace, "reconcile-grace", defaults.Reconcile.Grace, "how long a record must be left alone before the reconciler re-enqueues it when its task is gone from the queue")
	fs.DurationVar(&o.Reconcile.Interval, "reconcile-interval", defaults.Reconcile.Interval, "time between two reconciler runs")
	fs.StringVar(&o.Engine, "engine", engines.Embedded, "queue and status engines: embedded (SQLite in --data) or gcp (Cloud Tasks + Firestore, i.e. their emulators)")
	gcpFlags(fs, &o.GCP)
	queueShardsFlag(fs, &o.QueueShards)
	logLevel := fs.String("log-level", "info", "level of the JSON log written to DATA/relayctl.log (warnings also go to stderr)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional(pos); err != nil {
		return err
	}
	if o.TargetRate <= 0 {
		return fmt.Errorf("%w: --target-rate must be > 0", errUsage)
	}
	if o.SourceRate < 0 {
		return fmt.Errorf("%w: --source-rate must be >= 0", errUsage)
	}
	if o.Reconcile.Grace <= 0 || o.Reconcile.Interval <= 0 {
		return fmt.Errorf("%w: --reconcile-grace and --reconcile-interval must be > 0", errUsage)
	}
	if o.TargetURL != "" {
		if u, err := url.Parse(o.TargetURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: --target-url must be an absolute http(s) URL, got %q", errUsage, o.TargetURL)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	logPath := filepath.Join(o.DataDir, "relayctl.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	fileLog := logging.New(logFile, logging.Options{Level: *logLevel})
	termLog := logging.New(stderr, logging.Options{Level: "warn", Text: true})
	logger := slog.New(slog.NewMultiHandler(fileLog.Handler(), termLog.Handler()))
	ctx = logging.WithLogger(ctx, logger)

	var stack *devstack.Stack
	// The telemetry configuration the services read (TRACE_SAMPLE_RATIO,
	// OTEL_EXPORTER_OTLP_*): each component's spans carry its production
	// service name, go to the ops page (the spans of recent traces kept in
	// memory, so it shows an event's path without a tracing backend) and,
	// with OTEL_EXPORTER_OTLP_ENDPOINT set, to that collector.
	// The process's own name (OTEL_SERVICE_NAME, default relayctl-dev)
	// is that of its own spans and of every component's metrics (one meter
	// provider: docs/lld/devstack.md).
	var tcfg telemetry.Config
	env := telemetry.WithServiceName(envconfig.OsLookuper(), telemetry.ServiceRelayctlDev)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &tcfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read telemetry config: %w", err)
	}
	spans := telemetry.NewRecorder(5000)
	pipeline, err := telemetry.NewPipeline(ctx, tcfg, spans)
	if err != nil {
		return err
	}
	defer pipeline.Shutdown(context.WithoutCancel(ctx))
	tracers := map[string]trace.TracerProvider{}
	for _, name := range []string{tcfg.ServiceName, telemetry.ServiceIngest, telemetry.ServiceDispatcher, telemetry.ServiceTargetmock} {
		if tracers[name], err = pipeline.TracerProvider(name); err != nil {
			return err
		}
	}
	otel.SetTracerProvider(tracers[tcfg.ServiceName])
	otel.SetTextMapPropagator(telemetry.Propagator())
	o.TracerProviderFor = func(service string) trace.TracerProvider { return tracers[service] }
	// Metrics in Prometheus form, scraped from /metrics, and by OTLP too
	// with an endpoint (as in GCP: docs/adr/0009-otlp-export.md).
	meters, metrics, err := telemetry.NewPrometheus(tcfg.ServiceName, pipeline.MetricReader())
	if err != nil {
		return err
	}
	defer meters.Shutdown(context.WithoutCancel(ctx))
	o.MeterProvider = meters

	stack, err = devstack.Start(ctx, o)
	if err != nil {
		return err
	}
	opsMetrics := metrics
	if *metricsAddr != "" {
		opsMetrics = nil
	}
	opsURL, opsDone, err := startOpsPage(ctx, *opsAddr, stack, o.TargetRate, spans, opsMetrics)
	if err != nil {
		return errors.Join(err, stack.Stop())
	}
	metricsURL := opsURL
	metricsDone := func() error { return nil }
	if *metricsAddr != "" {
		if metricsURL, metricsDone, err = serveWithStack(ctx, *metricsAddr, stack, metricsMux(metrics, nil)); err != nil {
			return errors.Join(fmt.Errorf("metrics: %w", err), stack.Stop(), opsDone())
		}
	}
	fmt.Fprintf(stdout, "eventrelay local stack (%s engine), data in %s, log in %s\n", o.Engine, o.DataDir, logPath)
	fmt.Fprintf(stdout, "  ingest      %s/events   (token: relayctl token --data %s)\n", stack.IngestURL, o.DataDir)
	fmt.Fprintf(stdout, "  dispatcher  %s\n", stack.DispatcherURL)
	if opsURL != "" {
		fmt.Fprintf(stdout, "  ops page    %s/\n", opsURL)
	}
	if metricsURL != "" {
		fmt.Fprintf(stdout, "  metrics     %s/metrics\n", metricsURL)
	}
	if o.TargetURL != "" {
		fmt.Fprintf(stdout, "  target      %s  (external; queue rate %.4g/s)\n", o.TargetURL, o.TargetRate)
	} else {
		fmt.Fprintf(stdout, "  targetmock  %s/graphql  limit %.4g/s burst %d\n", stack.TargetURL, o.TargetRate, o.TargetBurst)
	}
	if o.SourceRate > 0 {
		fmt.Fprintf(stdout, "  sourcemock  %.4g events/s\n", o.SourceRate)
	}
	fmt.Fprintln(stdout, "Ctrl-C stops; run again with the same --data to resume.")

	progress(ctx, stack, o.TargetRate, stdout)
	err = errors.Join(stack.Stop(), opsDone(), metricsDone())
	if stack.Sender != nil {
		fmt.Fprintf(stdout, "source: %s\n", stack.Sender.Snapshot())
	}
	fmt.Fprintln(stdout, "stopped")
	return err
}

// serviceDefaults are the settings the services take when their
// environment sets nothing, read as the binaries read theirs: go-envconfig
// over an empty environment. relayctl dev's flags that stand for a service
// setting default to them, so each default is written once, in its env
// tag.
type serviceDefaults struct {
	Dispatcher dispatcher.Config
	Ingest     ingest.Config
	Queue      queue.Config
	Target     targetmock.Config
	Reconcile  reconcile.Config
}

func loadServiceDefaults(ctx context.Context) (serviceDefaults, error) {
	var d serviceDefaults
	// TARGET_URL has no default (it is required): a placeholder.
	env := envconfig.MapLookuper(map[string]string{"TARGET_URL": "http://target.invalid/graphql"})
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &d, Lookuper: env}); err != nil {
		return serviceDefaults{}, fmt.Errorf("services' defaults: %w", err)
	}
	return d, nil
}

// progress prints one line a second until ctx is done or the stack stops.
func progress(ctx context.Context, stack *devstack.Stack, limit float64, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev, _ := counts(ctx, stack)
	prevAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stack.Done():
			return
		case now := <-tick.C:
			cur, err := counts(ctx, stack)
			if err != nil {
				fmt.Fprintf(w, "%s progress unavailable: %v\n", now.Format(time.TimeOnly), err)
				continue
			}
			secs := now.Sub(prevAt).Seconds()
			backlog := "backlog n/a (engine has no stats)"
			if st, err := stack.Queue.Stats(ctx); err == nil {
				backlog = fmt.Sprintf("backlog %6d (oldest %5.1fs)", st.Backlog, st.OldestAge.Seconds())
			}
			fmt.Fprintf(w, "%s received %6.1f/s  delivered %6.1f/s  limit %.4g/s  %s  delivered %d  failed %d  dead-lettered %d\n",
				now.Format(time.TimeOnly),
				float64(cur.received-prev.received)/secs,
				float64(cur.delivered-prev.delivered)/secs,
				limit, backlog,
				cur.delivered, cur.failed, cur.dead)
			prev, prevAt = cur, now
		}
	}
}

type tally struct{ received, delivered, failed, dead int64 }

func counts(ctx context.Context, stack *devstack.Stack) (tally, error) {
	c, err := stack.Status.Counts(ctx)
	if err != nil {
		return tally{}, err
	}
	var t tally
	for _, n := range c {
		t.received += n
	}
	t.delivered, t.failed, t.dead = c[status.Delivered], c[status.Failed], c[status.DeadLettered]
	return t, nil
}

// startOpsPage serves the live ops page over the stack's stores until ctx
// ends, and /metrics too when metrics is not nil; done waits for it to stop.
// An empty addr disables it.
func startOpsPage(ctx context.Context, addr string, stack *devstack.Stack, limit float64, spans *telemetry.Recorder, metrics http.Handler) (url string, done func() error, err error) {
	if addr == "" {
		return "", func() error { return nil }, nil
	}
	var stats queue.StatsReader = stack.Queue
	if _, err := stack.Queue.Stats(ctx); errors.Is(err, cloudtasksqueue.ErrNoStats) {
		stats = nil // the emulator has no queue stats: the page says so instead of failing each second
	}
	opts := opspage.Options{
		Store: stack.Status,
		Queue: stats,
		Limit: func() float64 { return limit },
		Spans: recordedSpans{spans},
	}
	if stack.Governor != nil { // a nil *Governor in the interface would not be nil
		opts.Rate = stack.Governor
	}
	if stack.Reconciler != nil { // likewise
		opts.Reconcile = stack.Reconciler
	}
	if shards, ok := stack.Queue.(opspage.ShardSource); ok { // only a sharded queue (--queue-shards > 1) is one
		opts.Shards = shards
	}
	page, err := opspage.New(opts)
	if err != nil {
		return "", nil, fmt.Errorf("ops page: %w", err)
	}
	url, stopServing, err := serveWithStack(ctx, addr, stack, metricsMux(metrics, page.Handler()))
	if err != nil {
		return "", nil, fmt.Errorf("ops page: %w", err)
	}
	errc := make(chan error, 1)
	pctx, cancel := context.WithCancel(ctx)
	go func() { errc <- page.Run(pctx) }()
	go func() {
		select {
		case <-stack.Done():
		case <-pctx.Done():
		}
		cancel()
	}()
	return url, func() error {
		cancel()
		return errors.Join(stopServing(), <-errc)
	}, nil
}

// metricsMux serves metrics (when not nil) at GET /metrics and next (when
// not nil) at every other path.
func metricsMux(metrics, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	if next != nil {
		mux.Handle("/", next)
	} else {
		mux.Handle("/", serving.NotFound())
	}
	return mux
}

// serveWithStack serves h on addr until ctx ends or the stack stops (ctx
// may outlive it when the stack fails); done stops it and waits.
func serveWithStack(ctx context.Context, addr string, stack *devstack.Stack, h http.Handler) (url string, done func() error, err error) {
	srv, err := serving.New(addr, serving.Timeouts{})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stack.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, h) }()
	return srv.URL(), func() error {
		cancel()
		return <-errc
	}, nil
}

// recordedSpans serves the ops page from the in-memory span recorder.
type recordedSpans struct{ r *telemetry.Recorder }

func (s recordedSpans) Spans(_ context.Context, traceID string) ([]opspage.Span, error) {
	rec := s.r.Spans(traceID)
	out := make([]opspage.Span, len(rec))
	for i, r := range rec {
		out[i] = opspage.Span{
			TraceID: r.TraceID, SpanID: r.SpanID, ParentID: r.ParentID,
			Name: r.Name, Service: r.Scope, Start: r.Start, Duration: r.Duration,
			Attributes: r.Attributes, Status: r.Status,
		}
	}
	return out, nil
}
