package opspage

import (
	"cmp"
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
)

// fakeStore is an in-memory status.Store good enough for the page, which
// only reads: Get, List and Counts follow the port's semantics; Create and
// Apply are simplified (no transition checks).
type fakeStore struct {
	mu   sync.Mutex
	recs map[string]status.Record
	err  error // returned by every read when set
}

var _ status.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{recs: map[string]status.Record{}} }

func (f *fakeStore) Create(_ context.Context, r status.Record) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.recs[r.EventID]; ok {
		return false, nil
	}
	r.Status = status.Queued
	f.recs[r.EventID] = r
	return true, nil
}

func (f *fakeStore) Get(_ context.Context, id string) (status.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return status.Record{}, f.err
	}
	r, ok := f.recs[id]
	if !ok {
		return status.Record{}, status.ErrNotFound
	}
	r.Attempts = slices.Clone(r.Attempts)
	return r, nil
}

func (f *fakeStore) Apply(_ context.Context, id string, u status.Update) (status.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	if !ok {
		return status.Record{}, status.ErrNotFound
	}
	r.Status, r.UpdatedAt = u.Status, u.At
	if u.Reason != "" {
		r.Reason = u.Reason
	}
	if u.Status == status.Delivered {
		at := u.At
		r.DeliveredAt = &at
	}
	if u.Attempt != nil {
		r.Attempts = append(slices.Clone(r.Attempts), *u.Attempt)
	}
	f.recs[id] = r
	return r, nil
}

func (f *fakeStore) List(_ context.Context, q status.Query) ([]status.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []status.Record
	for _, r := range f.recs {
		if q.Status != "" && r.Status != q.Status {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b status.Record) int {
		return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), cmp.Compare(b.EventID, a.EventID))
	})
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	return out[:min(limit, len(out))], nil
}

func (f *fakeStore) Counts(context.Context) (map[status.Status]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	c := make(map[status.Status]int64, len(status.All))
	for _, s := range status.All {
		c[s] = 0
	}
	for _, r := range f.recs {
		c[r.Status]++
	}
	return c, nil
}

func (f *fakeStore) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// put stores r as is (any status, any attempts).
func (f *fakeStore) put(r status.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Event.ID == "" {
		r.Event.ID = r.EventID
	}
	f.recs[r.EventID] = r
}

// addN adds n records in status st received at successive milliseconds
// from base, with ids prefix-0, prefix-1, ….
func (f *fakeStore) addN(t testing.TB, prefix string, n int, st status.Status, base time.Time) {
	t.Helper()
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		f.put(status.Record{
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
