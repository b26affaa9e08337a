package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/status"
)

// faultMode is what a switched-on fault does to each call.
type faultMode int32

const (
	faultOff  faultMode = iota
	faultFail           // fail at once
	faultSlow           // wait the fault's delay, then call through
	faultHang           // block until the caller's context ends
)

func (m faultMode) String() string {
	return [...]string{"off", "fail", "slow", "hang"}[m]
}

// errInjected marks the errors a fault returns.
var errInjected = errors.New("chaos: injected fault")

// fault is a switch the harness flips while a scenario runs; the decorators
// below consult it on every call and count the calls it touched.
type fault struct {
	mode  atomic.Int32
	delay atomic.Int64 // for faultSlow
	hits  atomic.Int64
}

func (f *fault) set(m faultMode, delay time.Duration) {
	f.delay.Store(int64(delay))
	f.mode.Store(int32(m))
}

// before applies the fault to one call: it returns an error when the call
// must fail, nil when it may go on (after any injected delay).
func (f *fault) before(ctx context.Context, what string) error {
	m := faultMode(f.mode.Load())
	if m == faultOff {
		return nil
	}
	f.hits.Add(1)
	switch m {
	case faultFail:
		return fmt.Errorf("%s: %w", what, errInjected)
	case faultSlow:
		t := time.NewTimer(time.Duration(f.delay.Load()))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (slow: %w)", what, errInjected, ctx.Err())
		}
	default: // faultHang
		<-ctx.Done()
		return fmt.Errorf("%s: %w (hang: %w)", what, errInjected, ctx.Err())
	}
}

// faultyStatus is a status store whose reads and writes the harness can
// fail or slow down: the store being down or slow, as the services see it.
// List and Counts (the operator's and the harness's reads) pass through.
type faultyStatus struct {
	status.Store
	f *fault
}

func (s faultyStatus) Create(ctx context.Context, r status.Record) (bool, error) {
	if err := s.f.before(ctx, "status create"); err != nil {
		return false, err
	}
	return s.Store.Create(ctx, r)
}

func (s faultyStatus) Get(ctx context.Context, id string) (status.Record, error) {
	if err := s.f.before(ctx, "status get"); err != nil {
		return status.Record{}, err
	}
	return s.Store.Get(ctx, id)
}

func (s faultyStatus) Apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	if err := s.f.before(ctx, "status apply"); err != nil {
		return status.Record{}, err
	}
	return s.Store.Apply(ctx, id, u)
}

// faultyQueue is a queue whose enqueues the harness can fail or hang: the
// queue engine unavailable, as ingest sees it.
type faultyQueue struct {
	queue.Queue
	f *fault
}

func (q faultyQueue) Enqueue(ctx context.Context, t queue.Task) error {
	if err := q.f.before(ctx, "enqueue"); err != nil {
		return fmt.Errorf("%w: %w", queue.ErrUnavailable, err)
	}
	return q.Queue.Enqueue(ctx, t)
}
