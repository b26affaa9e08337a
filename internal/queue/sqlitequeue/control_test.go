package sqlitequeue_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// runLogged opens a Queue on o and runs it until the test ends, logging as
// JSON into the returned buffer.
func runLogged(t *testing.T, o sqlitequeue.Options) (*sqlitequeue.Queue, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), logging.New(logs, logging.Options{Level: "debug"})))
	q, err := sqlitequeue.New(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q, logs
}

// logged reports whether a line with message msg and every field in want
// was logged.
func logged(t *testing.T, logs *lockedBuffer, msg string, want map[string]any) bool {
	t.Helper()
next:
	for _, l := range logs.lines(t) {
		if l["message"] != msg {
			continue
		}
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

// twinDelivers runs a queue configured as o, but on a fresh file, never
// paused and with a target of its own, enqueues one task and waits for its
// delivery. A check that a paused queue delivered nothing calls it after
// enqueueing there: once the twin, started and fed later, has delivered,
// the paused queue had every chance to deliver too.
func twinDelivers(t *testing.T, o sqlitequeue.Options) {
	t.Helper()
	tg := newOKTarget(t, nil)
	o.Path, o.Target = filepath.Join(t.TempDir(), "twin.db"), tg.srv.URL
	twin, _ := runLogged(t, o)
	if err := twin.Enqueue(testContext(t), queue.Task{Name: "twin", Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue (twin): %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "the twin queue's delivery", func() bool { return tg.delivered() == 1 })
}

func controlOf(t *testing.T, q *sqlitequeue.Queue) queue.Control {
	t.Helper()
	got, err := q.Control(context.Background())
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	return got
}

// ignoreAt compares Controls without their time, checked apart.
var ignoreAt = cmpopts.IgnoreFields(queue.Control{}, "At")

// TestControl_persistsAcrossReopen: a rate and a pause set before a stop
// hold after the restart, the rate overriding the configured one, and both
// are logged when the queue opens.
func TestControl_persistsAcrossReopen(t *testing.T) {
	t.Parallel()
	tg := newOKTarget(t, nil)
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := config()
	cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize = 1000, 1
	o := sqlitequeue.Options{Path: path, Config: cfg, Target: tg.srv.URL}
	ctx := testContext(t)

	q, err := sqlitequeue.New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	before := time.Now()
	const persisted = 20
	if err := q.SetRate(ctx, persisted, queue.ByOperator); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	if err := q.Pause(ctx, queue.ByGovernor); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	q, logs := runLogged(t, o)
	got := controlOf(t, q)
	want := queue.Control{Rate: persisted, Burst: cfg.MaxBurstSize, Paused: true, By: queue.ByGovernor}
	if diff := cmp.Diff(want, got, ignoreAt); diff != "" {
		t.Errorf("Control() after reopening (-want +got):\n%s", diff)
	}
	if got.At.Before(before) {
		t.Errorf("Control().At = %v, want the time of the Pause (after %v)", got.At, before)
	}
	if !logged(t, logs, "queue: the dispatch rate set at runtime overrides the configured rate (change it with relayctl queue rate)",
		map[string]any{"severity": "INFO", "rate": float64(persisted), "configured_rate": cfg.MaxDispatchesPerSecond, "by": queue.ByGovernor}) {
		t.Errorf("no INFO line saying the persisted rate overrides the configured one; logs:\n%v", logs.lines(t))
	}
	if !logged(t, logs, "queue: dispatching is paused since before this start; it stays paused until resumed (relayctl queue resume)",
		map[string]any{"severity": "WARNING"}) {
		t.Errorf("no WARNING line saying the queue is paused; logs:\n%v", logs.lines(t))
	}

	const n = 11
	for i := range n {
		if err := q.Enqueue(ctx, queue.Task{Name: name(i), Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	twinDelivers(t, o)
	if got := tg.delivered(); got != 0 {
		t.Errorf("%d tasks delivered by a queue paused before its restart, want 0", got)
	}
	resumed := time.Now()
	if err := q.Resume(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "every delivery after Resume", func() bool { return tg.delivered() == n })
	// At the persisted 20/s with a burst of 1 this takes at least 0.5s; at
	// the configured 1000/s, 10ms.
	if took, min := time.Since(resumed), time.Duration(float64(n-1)/persisted*float64(time.Second)); took < min {
		t.Errorf("%d tasks delivered in %v, want >= %v at the persisted rate %v/s", n, took, min, persisted)
	}
}

func name(i int) string { return queue.TaskName("control-" + string(rune('a'+i))) }

// TestControl_fromAnotherHandle is relayctl queue's path: a second handle
// on the file (not running) writes the control row, and the running queue
// applies it on its next poll, without a restart.
func TestControl_fromAnotherHandle(t *testing.T) {
	t.Parallel()
	tg := newOKTarget(t, nil)
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := config()
	o := sqlitequeue.Options{Path: path, Config: cfg, Target: tg.srv.URL, ControlPollInterval: 20 * time.Millisecond}
	running, logs := runLogged(t, o)

	// The operator's handle, as relayctl opens it: its own configuration
	// is a placeholder, and its target never used.
	ctx := testContext(t)
	other, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: queue.Config{
		Name: cfg.Name, MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second},
	}, Target: "http://enqueue-only.invalid/"})
	if err != nil {
		t.Fatalf("New (second handle): %v", err)
	}
	t.Cleanup(func() { other.Close() })

	// It reports the running queue's configured rate and burst, not its
	// placeholder's (Run records them as it starts).
	testutil.WaitFor(t, waitTimeout, "the running queue's rate and burst in the other handle's Control", func() bool {
		return controlOf(t, other) == queue.Control{Rate: cfg.MaxDispatchesPerSecond, Burst: cfg.MaxBurstSize}
	})

	if err := other.Pause(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "the running queue to apply the pause", func() bool {
		return logged(t, logs, "queue: dispatching paused; it stays paused, across restarts, until resumed",
			map[string]any{"severity": "WARNING", "by": queue.ByOperator})
	})
	if err := running.Enqueue(ctx, queue.Task{Name: name(0), Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	twinDelivers(t, o)
	if got := tg.delivered(); got != 0 {
		t.Errorf("%d tasks delivered after another handle paused the queue, want 0", got)
	}

	if err := other.SetRate(ctx, 50, queue.ByOperator); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	if err := other.Resume(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "the delivery after another handle resumed the queue", func() bool { return tg.delivered() == 1 })
	if !logged(t, logs, "queue: dispatch rate changed", map[string]any{"rate": float64(50), "previous_rate": cfg.MaxDispatchesPerSecond, "by": queue.ByOperator}) {
		t.Errorf("the running queue did not log the rate change; logs:\n%v", logs.lines(t))
	}
	want := queue.Control{Rate: 50, Burst: cfg.MaxBurstSize, By: queue.ByOperator} // SetRate keeps the burst
	for _, q := range []*sqlitequeue.Queue{running, other} {
		if diff := cmp.Diff(want, controlOf(t, q), ignoreAt); diff != "" {
			t.Errorf("Control() (-want +got):\n%s", diff)
		}
	}
}

// TestControl_configuredRateCapsTheGovernors: a rate the governor persisted
// at or above this start's configured rate gives way to the configured one
// (a lower --target-rate must win); one below it (a queue still slowed)
// and an operator's rate are kept.
func TestControl_configuredRateCapsTheGovernors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		persisted float64
		by        string
		wantRate  float64
		wantBy    string
	}{
		{name: "governor at the old, higher ceiling", persisted: 50, by: queue.ByGovernor, wantRate: 10, wantBy: sqlitequeue.ByConfig},
		{name: "governor at this ceiling", persisted: 10, by: queue.ByGovernor, wantRate: 10, wantBy: sqlitequeue.ByConfig},
		{name: "governor still slowing", persisted: 4, by: queue.ByGovernor, wantRate: 4, wantBy: queue.ByGovernor},
		{name: "operator above the configured rate", persisted: 50, by: queue.ByOperator, wantRate: 50, wantBy: queue.ByOperator},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newOKTarget(t, nil)
			path := filepath.Join(t.TempDir(), "queue.db")
			cfg := config()
			cfg.MaxDispatchesPerSecond = 100
			o := sqlitequeue.Options{Path: path, Config: cfg, Target: tg.srv.URL}
			ctx := testContext(t)
			q, err := sqlitequeue.New(ctx, o)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := q.SetRate(ctx, tc.persisted, tc.by); err != nil {
				t.Fatalf("SetRate: %v", err)
			}
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			o.Config.MaxDispatchesPerSecond = 10 // this start's configured rate
			q, _ = runLogged(t, o)
			testutil.WaitFor(t, waitTimeout, "Run to apply the start-up settings", func() bool {
				c := controlOf(t, q)
				return c.Rate == tc.wantRate && c.By == tc.wantBy
			})
		})
	}
}

// TestControl_burstOnAnOlderFile: a queue file whose control table was made
// before it had configured_burst gets the column when opened, and Control
// then reports the running queue's burst, to it and to another handle.
func TestControl_burstOnAnOlderFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_, err = old.Exec(`create table sqlitequeue_control (
		id integer primary key check (id = 1), rate real, configured_rate real,
		paused integer not null default 0, by text not null default '',
		at integer not null default 0, version integer not null default 0) strict;
		insert into sqlitequeue_control (id, configured_rate) values (1, 3)`)
	if err != nil {
		t.Fatalf("create the older control table: %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	tg := newOKTarget(t, nil)
	cfg := config()
	cfg.MaxBurstSize = 7
	running, _ := runLogged(t, sqlitequeue.Options{Path: path, Config: cfg, Target: tg.srv.URL})
	other := newPlaceholderHandle(t, path, cfg.Name)
	want := queue.Control{Rate: cfg.MaxDispatchesPerSecond, Burst: cfg.MaxBurstSize}
	testutil.WaitFor(t, waitTimeout, "Run to record its rate and burst", func() bool {
		return controlOf(t, other) == want
	})
	if got := controlOf(t, running); got != want {
		t.Errorf("the running queue's Control() = %+v, want %+v", got, want)
	}
}

// newPlaceholderHandle opens a second handle on path as relayctl does, with
// a placeholder configuration (burst 1) and a target never used.
func newPlaceholderHandle(t *testing.T, path, name string) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.New(testContext(t), sqlitequeue.Options{Path: path, Config: queue.Config{
		Name: name, MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second},
	}, Target: "http://enqueue-only.invalid/"})
	if err != nil {
		t.Fatalf("New (second handle): %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
