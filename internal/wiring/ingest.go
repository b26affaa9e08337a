package wiring

// The ingest process is assembled here too: ingest/main.go reads its
// configuration, sets up telemetry and calls OpenIngest, which opens what
// the service needs, and runs what it returns.

import (
	"context"
	"errors"
	"fmt"
	"net"

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

// IngestConfig is the ingest process's configuration, read once from the
// environment (go-envconfig). Every default is in the env tags of the
// structs it holds.
type IngestConfig struct {
	// Server is ingest's own (PORT, AUTH_*, ENQUEUE_TIMEOUT, STATUS_TIMEOUT).
	Server ingest.Config
	// Queue is the queue's configuration (QUEUE_*).
	Queue queue.Config
	// Engines selects and configures the queue and status engines.
	Engines engines.Config
	// Telemetry is OTEL_* and TRACE_SAMPLE_RATIO.
	Telemetry telemetry.Config
	// DispatchURL is the dispatcher's task URL, which every task is POSTed
	// to.
	DispatchURL string `env:"DISPATCH_URL, required"`
}

// Validate reports every problem in c's server, queue and telemetry
// settings; OpenIngest checks the engines' as it opens them.
func (c IngestConfig) Validate() error {
	return errors.Join(c.Server.Validate(), c.Queue.Validate(), c.Telemetry.Validate())
}

// Ingest is an ingest process built complete: its server, its listener,
// its warm-up, and what they hold open.
type Ingest struct {
	// Server is ingest's HTTP service.
	Server *ingest.Server
	// Queue is the queue the server enqueues into; on the embedded engine
	// Run runs its dispatch loop.
	Queue engines.Queue
	// Store records the events' status.
	Store engines.Store
	// Warmup is what serving.ReadyPath answers from.
	Warmup   *serving.Warmup
	listener *serving.Server
	closers  []func() error
}

// Addr is the address the server listens on.
func (in *Ingest) Addr() string { return in.listener.Addr() }

// Run serves ingest's routes behind serving.ReadyPath, runs the warm-up
// and, on the embedded engine, the queue's dispatch loop, until ctx is done
// or one of them fails; the server then shuts down gracefully.
func (in *Ingest) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if in.Queue.Run != nil { // the embedded queue dispatches from this process
		g.Go(func() error { return in.Queue.Run(ctx) })
	}
	g.Go(func() error { return in.Warmup.Run(ctx) })
	g.Go(func() error {
		return in.listener.Serve(ctx, serving.WithReadiness(in.Warmup, in.Server.Routes(ctx)))
	})
	return g.Wait()
}

// Close releases what OpenIngest opened, in the reverse of its opening: the
// listener (already closed once Run has served), the queue's gauges, the
// queue, the status store.
func (in *Ingest) Close() error {
	var errs []error
	for i := len(in.closers) - 1; i >= 0; i-- {
		errs = append(errs, in.closers[i]())
	}
	return errors.Join(errs...)
}

// OpenIngest builds the ingest process (ingest/main.go) from c, with the
// telemetry providers already set up (the queue's gauges register with the
// global meter provider): it builds the verifier of c.Server.Auth, opens
// the status store and the queue engine c.Engines names (delivering to
// c.DispatchURL), registers the queue's backlog gauges when the engine
// reports them, builds the server, opens its listener on c.Server.Port and
// logs "ingest listening". The warm-up (serving.ReadyPath passes once the
// queue, the store and the verifier have each answered one call, so the
// first request pays no connection or token) starts with Run. On an error,
// what was opened is closed.
func OpenIngest(ctx context.Context, c IngestConfig) (_ *Ingest, err error) {
	in := &Ingest{}
	defer func() {
		if err != nil {
			err = errors.Join(err, in.Close())
		}
	}()
	verifier, err := auth.NewVerifier(ctx, c.Server.Auth)
	if err != nil {
		return nil, err
	}
	if in.Store, err = engines.OpenStatus(ctx, c.Engines); err != nil {
		return nil, err
	}
	in.closers = append(in.closers, in.Store.Close)
	if in.Queue, err = engines.OpenQueue(ctx, c.Engines, c.Queue, c.DispatchURL); err != nil {
		return nil, err
	}
	in.closers = append(in.closers, in.Queue.Close)
	if in.Queue.Stats != nil { // backlog gauges, one point per shard, exported with the other metrics
		stopGauges, err := queue.ObserveGauges(ctx, nil, c.Queue.Name, in.Queue.Stats)
		if err != nil {
			return nil, err
		}
		in.closers = append(in.closers, stopGauges)
	}
	if in.Server, err = ingest.NewServer(ctx, c.Server, in.Queue, in.Store, verifier); err != nil {
		return nil, err
	}
	if in.listener, err = serving.New(":"+c.Server.Port, serving.Timeouts{}); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	in.closers = append(in.closers, func() error {
		if err := in.listener.Close(); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	logging.FromContext(ctx).InfoContext(ctx, "ingest listening", "addr", in.listener.Addr(),
		"auth_mode", c.Server.Auth.Mode, "issuer", c.Server.Auth.OIDCConfig().Issuer, "dispatch_url", c.DispatchURL)
	in.Warmup = serving.NewWarmup(serving.WarmupOptions{},
		warmup.Queue(in.Queue.Controller), warmup.Status(in.Store), warmup.Verifier(verifier))
	return in, nil
}
