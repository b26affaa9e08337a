// Command dispatcher serves the task handler the queue delivers each event
// to (see internal/dispatcher). It records status in the engine STATUS_ENGINE
// names: Firestore in production, SQLite at STATUS_DB locally. Beside the
// handler it runs the rate governor and the reconciler (internal/wiring).
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
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/wiring"
	"eventrelay/internal/wiring/warmup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := logging.NewFromEnv()
	ctx = logging.WithLogger(ctx, logger)

	if err := realMain(ctx); err != nil {
		stop()
		logger.ErrorContext(ctx, "dispatcher failed", "error", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) (err error) {
	var cfg wiring.DispatcherConfig
	env := telemetry.WithServiceName(envconfig.OsLookuper(), telemetry.ServiceDispatcher)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read dispatcher config: %w", err)
	}
	if err := errors.Join(cfg.Server.Validate(), cfg.Queue.Retry.Validate(), cfg.Reconcile.Validate()); err != nil {
		return fmt.Errorf("invalid dispatcher config: %w", err)
	}
	verifier, err := auth.NewVerifier(ctx, cfg.Server.Auth)
	if err != nil {
		return err
	}
	shutdown, err := telemetry.Setup(ctx, cfg.Telemetry)
	if err != nil {
		return err
	}
	store, err := engines.OpenStatus(ctx, cfg.Engines)
	if err != nil {
		return errors.Join(err, shutdown(context.WithoutCancel(ctx)))
	}
	defer func() { err = errors.Join(err, store.Close(), shutdown(context.WithoutCancel(ctx))) }()

	d, err := wiring.OpenDispatcher(ctx, cfg, wiring.DispatcherParts{
		Store: store,
		// Only the queue's token service account may deliver tasks.
		Authenticate: auth.Middleware(verifier),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	server, err := serving.New(":"+cfg.Server.Port, serving.Timeouts{})
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	logging.FromContext(ctx).InfoContext(ctx, "dispatcher listening", "addr", server.Addr(), "target", cfg.Server.TargetURL,
		"auth_mode", cfg.Server.Auth.Mode, "issuer", cfg.Server.Auth.OIDCConfig().Issuer)
	// The startup probe (serving.ReadyPath) passes once the store, the
	// requeue queue and the verifier's keys have answered one call; the
	// target is dialled but not waited for (package warmup).
	steps := []serving.WarmupStep{warmup.Status(store), warmup.Verifier(verifier), warmup.Target(cfg.Server.TargetURL)}
	if c, ok := d.Requeue.(queue.Controller); ok {
		steps = append(steps, warmup.Queue(c))
	}
	warm := serving.NewWarmup(serving.WarmupOptions{}, steps...)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.Run(ctx) })
	g.Go(func() error { return warm.Run(ctx) })
	g.Go(func() error { return server.Serve(ctx, serving.WithReadiness(warm, d.Server.Routes(ctx))) })
	return g.Wait()
}
