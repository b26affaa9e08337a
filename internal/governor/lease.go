package governor

import (
	"context"
	"time"
)

// Lease makes one governor among many (one per dispatcher instance) the
// only one that acts on the queue, and carries the governor's state from
// one holder to the next. Each holder takes or renews it every window; a
// holder that dies loses it when it expires.
type Lease interface {
	// Acquire takes the lease for holder until now+ttl when it is free,
	// expired or holder's already, and returns the state stored with it.
	// held is false when another holder has it.
	Acquire(ctx context.Context, holder string, now time.Time, ttl time.Duration) (st State, held bool, err error)
	// Save stores st with the lease while holder holds it.
	Save(ctx context.Context, holder string, st State) error
	// Release gives the lease up now if holder holds it.
	Release(ctx context.Context, holder string) error
}

// State is what a governor knows beyond the queue's live settings.
type State struct {
	// Ceiling is the rate ops gave the queue (0: not known yet).
	Ceiling float64
	// LastRate is the rate the governor last set (0: none since it stood
	// down, or ever).
	LastRate float64
	// HoldUntil is when the governor may act again after standing down.
	HoldUntil time.Time
}

// leaseTTL is how long one take of the lease lasts: three windows, so that
// one slow window does not hand it to another instance.
func (g *Governor) leaseTTL() time.Duration { return 3 * g.cfg.Window }

func (g *Governor) acquire(ctx context.Context, now time.Time) (State, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	return g.o.Lease.Acquire(ctx, g.o.Holder, now, g.leaseTTL())
}

func (g *Governor) save(ctx context.Context, st State) error {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	return g.o.Lease.Save(ctx, g.o.Holder, st)
}

// adopt takes over the state stored with the lease.
func (g *Governor) adopt(st State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case st.Ceiling > 0:
		g.ceiling, g.ready = st.Ceiling, true
	case g.o.Ceiling > 0:
		g.ceiling, g.ready = g.o.Ceiling, true
	default:
		g.ready = false // the live rate becomes the ceiling
	}
	g.lastRate, g.hold = st.LastRate, st.HoldUntil
}
