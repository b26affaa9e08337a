package sqlitestatus_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/status/statustest"
)

// TestCreate_concurrentReturnsAfterCommit sends many Creates at once, so that
// the writer group-commits them in batches, some holding the same id twice,
// and checks that each Create's answer is its own: exactly one Create per id
// reports created, and every record is already readable through a second
// handle on the file the moment its Create returned. A writer that answered
// before its commit, or answered a request with another's result, fails here.
func TestCreate_concurrentReturnsAfterCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "status.db")
	ctx := t.Context()
	s, err := sqlitestatus.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	other, err := sqlitestatus.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (second handle): %v", err)
	}
	t.Cleanup(func() { other.Close() })

	const callers, ids = 48, 40
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	created := make([]atomic.Int32, ids)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range ids {
				if (i+c)%4 != 0 { // each id from 12 callers, at different times
					continue
				}
				id := fmt.Sprintf("gc-%d", i)
				ok, err := s.Create(ctx, statustest.NewRecord(id, base))
				if err != nil {
					t.Errorf("Create %s: %v", id, err)
					continue
				}
				if ok {
					created[i].Add(1)
				}
				if _, err := other.Get(ctx, id); err != nil {
					t.Errorf("record %s not visible to another handle right after Create returned: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	for i := range created {
		if n := created[i].Load(); n != 1 {
			t.Errorf("gc-%d: %d Creates reported created, want exactly 1", i, n)
		}
	}
}

// TestCreate_afterCloseOrCancel: a Create on a closed store or with an
// ended context fails at once instead of waiting for a writer that will
// not answer.
func TestCreate_afterCloseOrCancel(t *testing.T) {
	t.Parallel()
	s, err := sqlitestatus.Open(t.Context(), filepath.Join(t.TempDir(), "status.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if ok, err := s.Create(cancelled, statustest.NewRecord("cancelled", time.Now())); err == nil || ok {
		t.Errorf("Create with a cancelled context = %v, %v, want an error", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Create(t.Context(), statustest.NewRecord("closed", time.Now()))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Create on a closed store = nil error, want one")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Create on a closed store did not return")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want the first's nil", err)
	}
}
