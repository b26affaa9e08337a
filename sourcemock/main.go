// Command sourcemock mocks the source application: it sends events to
// ingest at a steady rate or in bursts and prints what the source saw. With
// -serve it serves the SendEvents HTTP function instead, configured from the
// environment as when deployed (INGEST_URL, TOKEN, ...).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"eventrelay/internal/logging"
	"eventrelay/internal/sourcemock"
	"eventrelay/sourcemock/function"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	var cfg sourcemock.Config // zero Concurrency and Deadline take the defaults (64, 500ms)
	flag.StringVar(&cfg.IngestURL, "ingest", "http://127.0.0.1:8080", "ingest base URL (events go to POST URL/events)")
	flag.Float64Var(&cfg.Rate, "rate", 10, "events per second (steady mode)")
	flag.IntVar(&cfg.Burst, "burst", 0, "send this many events at once every -burst-interval instead of a steady rate")
	flag.DurationVar(&cfg.BurstInterval, "burst-interval", sourcemock.DefaultBurstInterval, "time between bursts")
	flag.IntVar(&cfg.Count, "count", 100, "stop after this many events (0: no limit)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: no limit)")
	token := flag.String("token", os.Getenv("EVENTRELAY_TOKEN"), "bearer token (default $EVENTRELAY_TOKEN; see relayctl token)")
	serve := flag.String("serve", "", "serve the SendEvents function on this address (e.g. :8083) instead of sending")
	flag.Parse()

	if *serve != "" {
		host, port, err := net.SplitHostPort(*serve)
		if err != nil {
			return fmt.Errorf("-serve %q: %w", *serve, err)
		}
		slog.SetDefault(logging.NewFromEnv())
		if os.Getenv("FUNCTION_TARGET") == "" {
			os.Setenv("FUNCTION_TARGET", function.Name) // serve it at /, as deployed
		}
		return funcframework.StartHostPort(host, port)
	}
	s, err := sourcemock.NewSender(cfg, sourcemock.StaticToken(*token), nil)
	if err != nil {
		return err
	}
	sum, err := s.Run(ctx)
	fmt.Println(sum)
	return err
}
