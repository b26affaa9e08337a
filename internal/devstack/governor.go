package devstack

import (
	"context"

	"eventrelay/internal/governor"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// governorOptions are the rate governor's options for the stack's
// dispatcher (ADR 0010), or none when the queue engine cannot be governed.
// The governor acts on the stack's queue (the engine itself, not
// WrapQueue's wrapper, which is ingest's) through its queue.Controller, with
// the queue's configured rate as the ceiling. In the stack this process sees
// every dispatch, so there is no lease.
//
// On the gcp engine (the emulators) the governor only watches: the Cloud
// Tasks emulator cannot change a queue's rate.
func (s *Stack) governorOptions(ctx context.Context, cfg governor.Config) governor.Options {
	log := logging.FromContext(ctx)
	ctl, ok := s.Queue.(queue.Controller)
	if !ok {
		log.WarnContext(ctx, "the queue engine has no dispatch controls: no rate governor")
		return governor.Options{}
	}
	if s.opts.Engine == EngineGCP && cfg.Enabled() {
		log.InfoContext(ctx, "the Cloud Tasks emulator cannot change a queue's rate: the rate governor only watches")
		cfg.Mode = governor.ModeOff
	}
	return governor.Options{Control: ctl, Config: cfg, Ceiling: s.QueueConfig.MaxDispatchesPerSecond}
}
