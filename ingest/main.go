// Command ingest serves POST /events for the source application (see
// internal/ingest). It enqueues one task per event for DISPATCH_URL in the
// engine QUEUE_ENGINE names (Cloud Tasks in production; SQLite at QUEUE_DB
// locally, whose dispatch loop then runs here), over QUEUE_SHARDS queues,
// and records status in the engine STATUS_ENGINE names (internal/engines).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"
	"golang.org/x/sync/errgroup"

	"eventrelay/internal/auth"
	"eventrelay/internal/engines"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/wiring/warmup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := logging.NewFromEnv()
	ctx = logging.WithLogger(ctx, logger)

	if err := realMain(ctx); err != nil {
		stop()
		logger.ErrorContext(ctx, "ingest failed", "error", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) (err error) {
	var cfg struct {
		ingest.Config
		Queue       queue.Config
		Engines     engines.Config
		Telemetry   telemetry.Config
		DispatchURL string `env:"DISPATCH_URL, required"`
	}
	env := telemetry.WithServiceName(envconfig.OsLookuper(), telemetry.ServiceIngest)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read ingest config: %w", err)
	}
	if err := errors.Join(cfg.Config.Validate(), cfg.Queue.Validate(), cfg.Telemetry.Validate()); err != nil {
		return fmt.Errorf("invalid ingest config: %w", err)
	}
	shutdown, err := telemetry.Setup(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()

	verifier, err := auth.NewVerifier(ctx, cfg.Auth)
	if err != nil {
		return err
	}
	store, err := engines.OpenStatus(ctx, cfg.Engines)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, store.Close()) }()
	q, err := engines.OpenQueue(ctx, cfg.Engines, cfg.Queue, cfg.DispatchURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, q.Close()) }()
	if q.Stats != nil { // backlog gauges, one point per shard, exported with the other metrics
		stopGauges, gerr := queue.ObserveGauges(ctx, nil, cfg.Queue.Name, q.Stats)
		if gerr != nil {
			return gerr
		}
		defer func() { err = errors.Join(err, stopGauges()) }()
	}

	srv, err := ingest.NewServer(ctx, cfg.Config, q, store, verifier)
	if err != nil {
		return err
	}
	server, err := serving.New(":"+cfg.Port, serving.Timeouts{})
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	logging.FromContext(ctx).InfoContext(ctx, "ingest listening", "addr", server.Addr(),
		"auth_mode", cfg.Auth.Mode, "issuer", cfg.Auth.OIDCConfig().Issuer, "dispatch_url", cfg.DispatchURL)
	// The startup probe (serving.ReadyPath) passes once every client has
	// made one call: the first request pays no connection or token.
	warm := serving.NewWarmup(serving.WarmupOptions{},
		warmup.Queue(q.Controller), warmup.Status(store), warmup.Verifier(verifier))
	g, ctx := errgroup.WithContext(ctx)
	if q.Run != nil { // the embedded queue dispatches from this process
		g.Go(func() error { return q.Run(ctx) })
	}
	g.Go(func() error { return warm.Run(ctx) })
	g.Go(func() error { return server.Serve(ctx, serving.WithReadiness(warm, srv.Routes(ctx))) })
	return g.Wait()
}
