// Command ingest serves POST /events for the source application (see
// internal/ingest). It enqueues one task per event for DISPATCH_URL in the
// engine QUEUE_ENGINE names (Cloud Tasks in production; SQLite at QUEUE_DB
// locally, whose dispatch loop then runs here), over QUEUE_SHARDS queues,
// and records status in the engine STATUS_ENGINE names (internal/engines).
// internal/wiring opens and assembles it (OpenIngest).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/logging"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/wiring"
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
	var cfg wiring.IngestConfig
	env := telemetry.WithServiceName(envconfig.OsLookuper(), telemetry.ServiceIngest)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read ingest config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid ingest config: %w", err)
	}
	shutdown, err := telemetry.Setup(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()

	in, err := wiring.OpenIngest(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, in.Close()) }()
	return in.Run(ctx)
}
