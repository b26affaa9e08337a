package sqlitequeue_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// TestTaskExists_fromAnotherHandle is the reconciler's path when another
// process runs the queue: a second handle on the file, never run, answers
// from the file. It sees a task the owner accepted, then sees it gone once
// the owner delivered it, although the name is still remembered; and the
// owner sees a task the other handle added (relayctl replay).
func TestTaskExists_fromAnotherHandle(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	tg := newOKTarget(t, hold)
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := config()
	owner, _ := runLogged(t, sqlitequeue.Options{Path: path, Config: cfg, Target: tg.srv.URL})
	t.Cleanup(func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	})

	ctx := testContext(t)
	other, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: queue.Config{
		Name: cfg.Name, MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second},
	}, Target: "http://enqueue-only.invalid/"})
	if err != nil {
		t.Fatalf("New (second handle): %v", err)
	}
	t.Cleanup(func() { other.Close() })
	exists := func(q *sqlitequeue.Queue, n string) bool {
		t.Helper()
		ok, err := q.TaskExists(ctx, n)
		if err != nil {
			t.Fatalf("TaskExists(%s): %v", n, err)
		}
		return ok
	}

	delivered, replayed := queue.TaskName("inspect-a"), queue.TaskName("inspect-b")
	if err := owner.Enqueue(ctx, queue.Task{Name: delivered, Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if !exists(other, delivered) {
		t.Errorf("other handle: TaskExists = false for a task the owner accepted, want true")
	}
	close(hold)
	testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return tg.delivered() == 1 })
	testutil.WaitFor(t, waitTimeout, "the other handle to see the task gone", func() bool { return !exists(other, delivered) })
	if err := other.Enqueue(ctx, queue.Task{Name: delivered, Body: []byte(`{}`)}); !errors.Is(err, queue.ErrAlreadyExists) {
		t.Errorf("Enqueue of the delivered name = %v, want ErrAlreadyExists (the name is remembered)", err)
	}
	if exists(other, delivered) || exists(owner, delivered) {
		t.Errorf("TaskExists = true for a delivered task whose name is remembered, want false")
	}

	if err := other.Enqueue(ctx, queue.Task{Name: replayed, Body: []byte(`{}`), NotBefore: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Enqueue (other handle): %v", err)
	}
	if !exists(owner, replayed) {
		t.Errorf("owner: TaskExists = false for a task the other handle added, want true")
	}
}
