package sqlitequeue

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"eventrelay/internal/queue"
)

// TestWrite_keepsEnqueueFullySynced guards the durability promise: the
// dispatch loop's writes commit with synchronous=NORMAL on the one write
// connection, and must hand it back to Enqueue with FULL (2).
func TestWrite_keepsEnqueueFullySynced(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	q, err := New(context.Background(), Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	sync := func() int {
		t.Helper()
		var n int
		if err := q.wdb.QueryRowContext(ctx, `pragma synchronous`).Scan(&n); err != nil {
			t.Fatalf("pragma synchronous: %v", err)
		}
		return n
	}
	if got := sync(); got != 2 {
		t.Fatalf("synchronous = %d on a new queue, want 2 (FULL)", got)
	}
	var during int
	err = q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `pragma synchronous`).Scan(&during)
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if during != 1 {
		t.Errorf("synchronous = %d inside write, want 1 (NORMAL)", during)
	}
	if got := sync(); got != 2 {
		t.Errorf("synchronous = %d after write, want 2 (FULL)", got)
	}
}
