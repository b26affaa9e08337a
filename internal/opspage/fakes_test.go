package opspage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/testutil"
)

// spyStore is the embedded status engine on a temporary file whose reads can
// be made to fail. Every method is the engine's own, so what the page reads
// cannot drift from a real store.
type spyStore struct {
	*sqlitestatus.Store

	mu  sync.Mutex
	err error // returned by every read when set
}

var _ status.Store = (*spyStore)(nil)

// newSpyStore opens an empty embedded store in tb's temporary directory and
// closes it when tb ends.
func newSpyStore(tb testing.TB) *spyStore {
	tb.Helper()
	return &spyStore{Store: testutil.EmbeddedStatus(tb)}
}

func (f *spyStore) readErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *spyStore) Get(ctx context.Context, id string) (status.Record, error) {
	if err := f.readErr(); err != nil {
		return status.Record{}, err
	}
	return f.Store.Get(ctx, id)
}

func (f *spyStore) List(ctx context.Context, q status.Query) ([]status.Record, error) {
	if err := f.readErr(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, q)
}

func (f *spyStore) Counts(ctx context.Context) (map[status.Status]int64, error) {
	if err := f.readErr(); err != nil {
		return nil, err
	}
	return f.Store.Counts(ctx)
}

func (f *spyStore) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// put stores r the way the services would have written it: created queued,
// then one Apply per attempt (each at the attempt's time, in status
// retrying), the last one moving it to r.Status at r.UpdatedAt with
// r.Reason. A record the port cannot reach fails the test.
func (f *spyStore) put(tb testing.TB, r status.Record) {
	tb.Helper()
	ctx := context.Background()
	if r.Event.ID == "" {
		r.Event.ID = r.EventID
	}
	created := r
	created.Status, created.Attempts, created.Reason, created.DeliveredAt = "", nil, "", nil
	if len(r.Attempts) == 0 || r.Status == status.Queued {
		created.UpdatedAt = r.UpdatedAt
	} else {
		created.UpdatedAt = time.Time{}
	}
	if ok, err := f.Store.Create(ctx, created); err != nil || !ok {
		tb.Fatalf("create %s: created=%t, %v", r.EventID, ok, err)
	}
	between := status.Retrying
	if r.Status == status.Queued {
		between = status.Queued
	}
	for i, a := range r.Attempts {
		u := status.Update{Status: between, Attempt: &a, At: a.At}
		if i == len(r.Attempts)-1 {
			u.Status, u.At, u.Reason = r.Status, r.UpdatedAt, r.Reason
		}
		if _, err := f.Store.Apply(ctx, r.EventID, u); err != nil {
			tb.Fatalf("apply attempt %d to %s: %v", a.Number, r.EventID, err)
		}
	}
	if len(r.Attempts) == 0 && r.Status != status.Queued {
		u := status.Update{Status: r.Status, At: r.UpdatedAt, Reason: r.Reason}
		if _, err := f.Store.Apply(ctx, r.EventID, u); err != nil {
			tb.Fatalf("move %s to %s: %v", r.EventID, r.Status, err)
		}
	}
}

// addN adds n records in status st received at successive milliseconds
// from base, with ids prefix-0, prefix-1, ….
func (f *spyStore) addN(t testing.TB, prefix string, n int, st status.Status, base time.Time) {
	t.Helper()
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		f.put(t, status.Record{
			EventID:    fmt.Sprintf("%s-%03d", prefix, i),
			Status:     st,
			Event:      event.Event{Name: "test event", Body: "test body", Timestamp: at},
			ReceivedAt: at,
			UpdatedAt:  at,
		})
	}
}

// fakeQueue reports the stats it holds.
type fakeQueue struct {
	mu  sync.Mutex
	st  queue.Stats
	err error
}

var _ queue.StatsReader = (*fakeQueue)(nil)

func (q *fakeQueue) Stats(context.Context) (queue.Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st, q.err
}

func (q *fakeQueue) set(st queue.Stats, err error) {
	q.mu.Lock()
	q.st, q.err = st, err
	q.mu.Unlock()
}

// fakeSpans returns the spans stored for a trace id.
type fakeSpans struct {
	mu     sync.Mutex
	traces map[string][]Span
	err    error
}

func (s *fakeSpans) Spans(_ context.Context, traceID string) ([]Span, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return slices.Clone(s.traces[traceID]), nil
}

var errBoom = errors.New("boom")
