// Command targetmock serves the TEST DOUBLE of the rate-limited GraphQL target
// application (see internal/targetmock). It is not for production.
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
	"eventrelay/internal/serving"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := logging.NewFromEnv()
	ctx = logging.WithLogger(ctx, logger)

	if err := realMain(ctx); err != nil {
		stop()
		logger.ErrorContext(ctx, "targetmock failed", "error", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) (err error) {
	cfg, err := targetmock.LoadConfig(ctx, envconfig.OsLookuper())
	if err != nil {
		return err
	}
	var tcfg telemetry.Config
	env := telemetry.WithServiceName(envconfig.OsLookuper(), telemetry.ServiceTargetmock)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &tcfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read telemetry config: %w", err)
	}
	shutdown, err := telemetry.Setup(ctx, tcfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()
	srv, err := targetmock.NewServer(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := srv.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	server, err := serving.New(":"+cfg.Port, serving.Timeouts{})
	if err != nil {
		return fmt.Errorf("targetmock: %w", err)
	}
	logging.FromContext(ctx).InfoContext(ctx, "targetmock listening", "addr", server.Addr())
	return server.Serve(ctx, srv.Routes(ctx))
}
