package sqlitequeue_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
)

// TestEnqueue_concurrentReturnsAfterCommit sends many Enqueues at once, so
// that the writer group-commits them in batches of several sizes, and checks
// that each one that returned nil is already committed: a second handle on
// the file, with its own connections, sees the task the moment Enqueue
// returns. A writer that answered before its commit (or answered a request
// from a batch it did not store) fails here.
func TestEnqueue_concurrentReturnsAfterCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := testContext(t)
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: config(), Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	other, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: config(), Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New (second handle): %v", err)
	}
	t.Cleanup(func() { other.Close() })

	const callers, each = 48, 6
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				name := queue.TaskName(fmt.Sprintf("gc-%d-%d", c, i))
				if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte("{}")}); err != nil {
					t.Errorf("Enqueue %s: %v", name, err)
					continue
				}
				ok, err := other.TaskExists(ctx, name)
				if err != nil || !ok {
					t.Errorf("task %s not visible to another handle right after Enqueue returned: %v, %v", name, ok, err)
				}
			}
		})
	}
	wg.Wait()
	st, err := other.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != callers*each {
		t.Errorf("backlog %d, want %d", st.Backlog, callers*each)
	}
}
