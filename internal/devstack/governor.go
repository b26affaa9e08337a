package devstack

import (
	"context"
	"fmt"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/governor"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// startGovernor arms the dispatcher against 429 storms (ADR 0010)
// and returns the governor, or nil when the queue engine cannot be governed:
//
//   - disp.Requeue is the stack's queue (the engine itself, not WrapQueue's
//     wrapper, which is ingest's), so an event the target rate limits on its
//     last attempt is requeued instead of dead-lettered;
//   - the rate governor observes every target call (disp.Observer) and runs
//     in one goroutine of the stack, acting on the queue through its
//     queue.Controller, with the queue's configured rate as the ceiling.
//     In the embedded stack this process sees every dispatch, so there is
//     no lease.
//
// On the gcp engine (the emulators) the governor only watches: the Cloud
// Tasks emulator cannot change a queue's rate. It must be called before
// disp.Routes and after which nothing in Start fails; an invalid cfg takes
// the stack down like any failing component.
func (s *Stack) startGovernor(ctx context.Context, disp *dispatcher.Server, cfg governor.Config) *governor.Governor {
	log := logging.FromContext(ctx)
	disp.Requeue = s.Queue
	ctl, ok := s.Queue.(queue.Controller)
	if !ok {
		log.WarnContext(ctx, "the queue engine has no dispatch controls: no rate governor")
		return nil
	}
	if s.opts.Engine == EngineGCP && cfg.Enabled() {
		log.InfoContext(ctx, "the Cloud Tasks emulator cannot change a queue's rate: the rate governor only watches")
		cfg.Mode = governor.ModeOff
	}
	g, err := governor.New(ctx, governor.Options{
		Control:       ctl,
		Config:        cfg,
		Ceiling:       s.QueueConfig.MaxDispatchesPerSecond,
		MeterProvider: s.opts.MeterProvider,
	})
	if err != nil {
		s.fail(fmt.Errorf("devstack: %w", err))
		s.cancel()
		return nil
	}
	disp.Observer = g
	s.run(func() error {
		defer func() { _ = g.Close() }()
		return g.Run(ctx)
	})
	return g
}
