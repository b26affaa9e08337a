package relayctl

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
)

// lostTasks seeds a data dir with n queued events, each with its task in
// the embedded queue (nothing dispatches it), received an hour ago, then
// removes the tasks of the events lost names behind the queue's back.
func lostTasks(t *testing.T, n int, lost []int) (dir string, ids []string) {
	t.Helper()
	dir = t.TempDir()
	ctx := t.Context()
	store, err := sqlitestatus.Open(ctx, filepath.Join(dir, devstack.StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: filepath.Join(dir, devstack.QueueFile), Target: "http://127.0.0.1:1/tasks/events",
		Config: queue.Config{Name: "events", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
			Retry: queue.RetryConfig{MaxAttempts: 3, MinBackoff: time.Second, MaxBackoff: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	received := time.Now().Add(-time.Hour)
	for i := range n {
		id := fmt.Sprintf("evt-%d", i)
		ev := event.Event{ID: id, Name: "n", Body: "b", Timestamp: received.UTC().Truncate(time.Second)}
		body, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(ctx, queue.Task{Name: queue.TaskName(id), Body: body}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Create(ctx, status.Record{EventID: id, Event: ev, ReceivedAt: received.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, devstack.QueueFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, i := range lost {
		res, err := db.ExecContext(ctx, `delete from goqite where id = (select message_id from sqlitequeue_tasks where name = ?)`, queue.TaskName(ids[i]))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("removed %d messages of %s, want 1", n, ids[i])
		}
	}
	return dir, ids
}

// taskExists asks the embedded queue in dir about name.
func taskExists(t *testing.T, dir, name string) bool {
	t.Helper()
	q, err := sqlitequeue.New(t.Context(), sqlitequeue.Options{Path: filepath.Join(dir, devstack.QueueFile), Target: "http://127.0.0.1:1/",
		Config: queue.Config{Name: "events", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
			Retry: queue.RetryConfig{MaxAttempts: 3, MinBackoff: time.Second, MaxBackoff: time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ok, err := q.TaskExists(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// listed returns the seeded ids a relayctl output names, in order.
func listed(out string, ids []string) []string {
	var got []string
	for _, id := range ids {
		if strings.Contains(out, id+" ") {
			got = append(got, id)
		}
	}
	return got
}

func TestAuditAndReconcile(t *testing.T) {
	t.Parallel()
	dir, ids := lostTasks(t, 8, []int{1, 4, 6})
	lost := []string{ids[1], ids[4], ids[6]}
	store := func() *sqlitestatus.Store {
		s, err := sqlitestatus.Open(t.Context(), filepath.Join(dir, devstack.StatusFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}()

	// audit lists exactly the events whose task was removed.
	code, out, errOut := run(t, "audit", "--data", dir)
	if code != 0 {
		t.Fatalf("audit: exit %d: %s", code, errOut)
	}
	if got := listed(out, ids); !slices.Equal(got, lost) {
		t.Errorf("audit listed %v, want %v:\n%s", got, lost, out)
	}
	if !strings.Contains(out, "queued         8") || !strings.Contains(out, "3 records look stuck") {
		t.Errorf("audit output lacks the counts or the summary:\n%s", out)
	}

	// A dry run reports them and changes nothing.
	code, out, errOut = run(t, "reconcile", "--dry-run", "--data", dir)
	if code != 0 {
		t.Fatalf("reconcile --dry-run: exit %d: %s", code, errOut)
	}
	if got := listed(out, ids); !slices.Equal(got, lost) || !strings.Contains(out, "found 3") {
		t.Errorf("dry run listed %v, want %v found:\n%s", got, lost, out)
	}
	for _, id := range lost {
		if taskExists(t, dir, queue.TaskName(id)+"-q1") {
			t.Errorf("the dry run enqueued a task for %s", id)
		}
		if rec, err := store.Get(t.Context(), id); err != nil || len(rec.Attempts) != 0 {
			t.Errorf("the dry run changed %s: %+v, %v", id, rec.Attempts, err)
		}
	}

	// reconcile requeues them, each under the next name of its chain.
	code, out, errOut = run(t, "reconcile", "--data", dir)
	if code != 0 {
		t.Fatalf("reconcile: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "requeued 3") {
		t.Errorf("reconcile output:\n%s", out)
	}
	for i, id := range ids {
		next := queue.TaskName(id) + "-q1"
		rec, err := store.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		wasLost := slices.Contains(lost, id)
		if got := taskExists(t, dir, next); got != wasLost {
			t.Errorf("event %d: task %s exists %v, want %v", i, next, got, wasLost)
		}
		if wasLost && (len(rec.Attempts) != 1 || rec.Attempts[0].Outcome != status.OutcomeReconciled || rec.Attempts[0].TaskName != next) {
			t.Errorf("%s after reconcile: %+v, want one reconciled entry naming %s", id, rec.Attempts, next)
		}
		if !wasLost && len(rec.Attempts) != 0 {
			t.Errorf("%s (task in the queue) was changed: %+v", id, rec.Attempts)
		}
	}
	// Nothing looks stuck any more.
	if code, out, _ = run(t, "audit", "--data", dir); code != 0 || !strings.Contains(out, "no record looks stuck") {
		t.Errorf("audit after reconcile: exit %d:\n%s", code, out)
	}
}

func TestReconcileFlags(t *testing.T) {
	t.Parallel()
	dir, _ := lostTasks(t, 1, []int{0})
	// Within a grace longer than the records' age nothing is found.
	if code, out, errOut := run(t, "audit", "--data", dir, "--grace", "2h"); code != 0 || !strings.Contains(out, "no record looks stuck") {
		t.Errorf("audit --grace 2h: exit %d: %s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, "reconcile", "--data", dir, "--policy", "drop"); code != 2 || !strings.Contains(errOut, "RECONCILE_POLICY") {
		t.Errorf("reconcile --policy drop: exit %d: %s", code, errOut)
	}
	if code, _, _ := run(t, "reconcile", "--data", dir, "extra"); code != 2 {
		t.Errorf("reconcile with an argument: exit %d, want 2", code)
	}
	// dead_letter policy: the record ends dead-lettered, replayable.
	if code, out, errOut := run(t, "reconcile", "--data", dir, "--policy", "dead_letter", "--json"); code != 0 || !strings.Contains(out, `"dead_lettered": 1`) {
		t.Errorf("reconcile --policy dead_letter --json: exit %d: %s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "events", "--data", dir, "--status", "dead_lettered"); code != 0 || !strings.Contains(out, "evt-0") {
		t.Errorf("events --status dead_lettered: exit %d: %s%s", code, out, errOut)
	}
}
