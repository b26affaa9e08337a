package sqlitestatus_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/status/statustest"
)

func newStore(tb testing.TB) *sqlitestatus.Store {
	tb.Helper()
	s, err := sqlitestatus.Open(tb.Context(), filepath.Join(tb.TempDir(), "status.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	statustest.Run(t, func(t *testing.T) status.Store { return newStore(t) })
}

// TestReopen checks that records survive closing and reopening the file.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "status.db")
	ctx := t.Context()
	s, err := sqlitestatus.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.Create(ctx, statustest.NewRecord("kept", time.Now())); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Apply(ctx, "kept", status.Update{Status: status.Delivered, At: time.Now()}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = sqlitestatus.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	got, err := s.Get(ctx, "kept")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Status != status.Delivered || got.DeliveredAt == nil {
		t.Errorf("after reopen: status %s delivered_at %v, want delivered with a time", got.Status, got.DeliveredAt)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		path string
	}{
		{name: "empty path", path: ""},
		{name: "missing directory", path: filepath.Join(t.TempDir(), "no", "such", "dir", "status.db")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := sqlitestatus.Open(t.Context(), tc.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded, want an error", tc.path)
			}
		})
	}
}

// TestPathWithURICharacters checks that a path is a path, not a URI.
func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	s, err := sqlitestatus.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Create(t.Context(), statustest.NewRecord("x", time.Now())); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not at the path given: %v", err)
	}
}

// BenchmarkCreate measures ingest's write: one Create per event, from 64
// goroutines per core, as many requests are in flight at a time at
// 1,000 events/s and more (the writer group-commits them).
func BenchmarkCreate(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("bench-%d", n.Add(1))
			if _, err := s.Create(ctx, statustest.NewRecord(id, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkApply measures the dispatcher's writes: each op is one Apply, in
// the life of an event delivering → retrying → delivering → delivered, each
// with an attempt, on a store that already holds many records.
func BenchmarkApply(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	const events = 10_000
	for i := range events {
		if _, err := s.Create(ctx, statustest.NewRecord(fmt.Sprintf("bench-%d", i), time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	steps := []status.Status{status.Delivering, status.Retrying, status.Delivering, status.Delivered}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine walks its own events through the steps in order;
		// events past the seeded ones are created by Apply itself.
		var id string
		step := len(steps)
		for pb.Next() {
			if step == len(steps) {
				id, step = fmt.Sprintf("bench-%d", next.Add(1)-1), 0
			}
			now := time.Now()
			_, err := s.Apply(ctx, id, status.Update{
				Status:  steps[step],
				At:      now,
				Attempt: &status.Attempt{Number: step + 1, At: now, Outcome: status.OutcomeRetryable, HTTPStatus: 503, Duration: time.Millisecond},
				Event:   statustest.NewEvent(id),
			})
			if err != nil {
				b.Fatal(err)
			}
			step++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}

// BenchmarkEventLife measures the whole write load of one event: ingest's
// Create and the dispatcher's three Applies (delivering, retrying,
// delivered). events/s is the rate the store sustains; the pipeline needs
// 1,000.
func BenchmarkEventLife(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("life-%d", next.Add(1))
			if _, err := s.Create(ctx, statustest.NewRecord(id, time.Now())); err != nil {
				b.Fatal(err)
			}
			for n, st := range []status.Status{status.Delivering, status.Retrying, status.Delivered} {
				now := time.Now()
				if _, err := s.Apply(ctx, id, status.Update{
					Status:  st,
					At:      now,
					Attempt: &status.Attempt{Number: n + 1, At: now, Outcome: status.OutcomeRetryable, HTTPStatus: 503, Duration: time.Millisecond},
				}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
