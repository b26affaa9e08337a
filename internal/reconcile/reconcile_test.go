package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/testutil"
)

// fakeQueue is a queue that keeps its tasks (nothing delivers them) and
// remembers the names of finished ones, as Cloud Tasks and the embedded
// engine do for deduplication.
type fakeQueue struct {
	mu       sync.Mutex
	live     map[string]queue.Task
	finished map[string]bool
	enqueued []queue.Task
	failNext error
	// existsErr, when set, is every TaskExists answer.
	existsErr error
	asked     int
}

func newFakeQueue() *fakeQueue {
	return &fakeQueue{live: map[string]queue.Task{}, finished: map[string]bool{}}
}

func (q *fakeQueue) Enqueue(_ context.Context, t queue.Task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.failNext; err != nil {
		q.failNext = nil
		return err
	}
	if _, ok := q.live[t.Name]; ok || q.finished[t.Name] {
		return queue.ErrAlreadyExists
	}
	q.live[t.Name] = t
	q.enqueued = append(q.enqueued, t)
	return nil
}

func (q *fakeQueue) TaskExists(_ context.Context, name string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked++
	if q.existsErr != nil {
		return false, q.existsErr
	}
	_, ok := q.live[name]
	return ok, nil
}

// add puts a task in the queue; finish ends it (delivered or dropped).
func (q *fakeQueue) add(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.live[name] = queue.Task{Name: name}
}

func (q *fakeQueue) finish(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.live, name)
	q.finished[name] = true
}

func (q *fakeQueue) enqueuedNames() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var names []string
	for _, t := range q.enqueued {
		names = append(names, t.Name)
	}
	return names
}

var (
	t0      = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now     = t0.Add(time.Hour)
	traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
)

func testConfig() Config {
	return Config{Grace: 15 * time.Minute, Interval: time.Minute, Policy: PolicyRequeue, PageSize: 100, ChecksPerSecond: 1e6}
}

type harness struct {
	clock  time.Time // the reconcilers' now; tests move it between scans only
	store  status.Store
	q      *fakeQueue
	reader *sdkmetric.ManualReader
	r      *Reconciler
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clock: now, store: testutil.EmbeddedStatus(t), q: newFakeQueue(), reader: sdkmetric.NewManualReader()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	h.r = h.reconciler(t, cfg, mp)
	return h
}

func (h *harness) reconciler(t *testing.T, cfg Config, mp *sdkmetric.MeterProvider) *Reconciler {
	t.Helper()
	o := Options{Store: h.store, Queue: h.q, Inspector: h.q, Config: cfg, Now: func() time.Time { return h.clock }}
	if mp != nil {
		o.MeterProvider = mp
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// record creates id received at received, moves it to st at updated.
func (h *harness) record(t *testing.T, id string, st status.Status, received, updated time.Time, attempts ...status.Attempt) {
	t.Helper()
	ctx := context.Background()
	ev := event.Event{ID: id, Name: "n", Body: "b", Timestamp: t0}
	if _, err := h.store.Create(ctx, status.Record{EventID: id, Event: ev, ReceivedAt: received, TraceID: traceID}); err != nil {
		t.Fatal(err)
	}
	for i, a := range attempts {
		a := a
		if _, err := h.store.Apply(ctx, id, status.Update{Status: status.Retrying, At: updated, Attempt: &a}); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := h.store.Apply(ctx, id, status.Update{Status: st, At: updated}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) get(t *testing.T, id string) status.Record {
	t.Helper()
	rec, err := h.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (h *harness) scan(t *testing.T, dry bool) Report {
	t.Helper()
	rep, err := h.r.Scan(context.Background(), dry)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// metric returns the records counter by action, and checks it against its
// declared descriptor.
func (h *harness) metric(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != telemetry.ReconcileRecords.Name {
				continue
			}
			if err := telemetry.ReconcileRecords.Check(m); err != nil {
				t.Error(err)
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				c, _ := dp.Attributes.Value(telemetry.AttrCause)
				a, _ := dp.Attributes.Value(telemetry.AttrAction)
				got[c.AsString()+"/"+a.AsString()] = dp.Value
			}
		}
	}
	return got
}

func TestCurrentTask(t *testing.T) {
	t.Parallel()
	base := queue.TaskName("e")
	cases := []struct {
		name     string
		attempts []status.Attempt
		want     string
	}{
		{name: "no history", want: base},
		{name: "attempt names its task", attempts: []status.Attempt{{Outcome: status.OutcomeRetryable, TaskName: base + "-q1"}}, want: base + "-q1"},
		{name: "replay", attempts: []status.Attempt{{Outcome: status.OutcomeRetryable, TaskName: base}, {Outcome: status.OutcomeReplayed}}, want: base + "-r1"},
		{name: "second replay", attempts: []status.Attempt{{Outcome: status.OutcomeReplayed}, {Outcome: status.OutcomeReplayed}}, want: base + "-r2"},
		{name: "reconciled after a replay", attempts: []status.Attempt{{Outcome: status.OutcomeReplayed}, {Outcome: status.OutcomeReconciled, TaskName: base + "-r1-q1"}}, want: base + "-r1-q1"},
		{name: "entry without a task name", attempts: []status.Attempt{{Outcome: status.OutcomeRetryable, TaskName: base + "-q2"}, {Outcome: status.OutcomeReconciled}}, want: base + "-q2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := CurrentTask(status.Record{EventID: "e", Attempts: tc.attempts}); got != tc.want {
				t.Errorf("CurrentTask = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRequeuesVanishedTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	base := queue.TaskName("gone")
	h.record(t, "gone", status.Queued, t0, t0)
	h.record(t, "gone-delivering", status.Delivering, t0, t0,
		status.Attempt{Number: 3, Outcome: status.OutcomeRetryable, TaskName: queue.TaskName("gone-delivering")})

	rep := h.scan(t, false)
	if rep.Counts[ActionRequeued] != 2 || len(rep.Findings) != 2 {
		t.Fatalf("report = %+v, want two requeued", rep)
	}
	want := []string{base + "-q1", queue.TaskName("gone-delivering") + "-q1"}
	if diff := cmp.Diff(want, h.q.enqueuedNames()); diff != "" {
		t.Fatalf("enqueued (-want +got):\n%s", diff)
	}
	task := h.q.live[base+"-q1"]
	ev, err := event.Parse(task.Body)
	if err != nil || ev.ID != "gone" {
		t.Errorf("task body = %s (%v), want the event", task.Body, err)
	}
	if tp := task.Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+traceID+"-") {
		t.Errorf("traceparent = %q, want one in trace %s", tp, traceID)
	}

	rec := h.get(t, "gone")
	last := rec.Attempts[len(rec.Attempts)-1]
	wantAttempt := status.Attempt{At: now, Outcome: status.OutcomeReconciled, TaskName: base + "-q1", Error: "task " + base + " no longer in the queue"}
	if diff := cmp.Diff(wantAttempt, last); diff != "" || rec.Status != status.Queued {
		t.Errorf("record %s, last entry (-want +got):\n%s", rec.Status, diff)
	}
	if rec := h.get(t, "gone-delivering"); rec.Status != status.Retrying {
		t.Errorf("delivering record is %s after requeue, want retrying", rec.Status)
	}
	f := rep.Findings[0]
	if f.EventID != "gone" || f.MissingTask != base || f.NewTask != base+"-q1" || f.TraceID != traceID || f.Cause != telemetry.ReconcileCauseTaskMissing {
		t.Errorf("finding = %+v", f)
	}
	if diff := cmp.Diff(map[string]int64{"task_missing/requeued": 2}, h.metric(t)); diff != "" {
		t.Errorf("metric (-want +got):\n%s", diff)
	}

	// The next run finds the new tasks in the queue: nothing more is made,
	// so each event has exactly one task to be delivered by.
	h.clock = now.Add(time.Hour)
	rep = h.scan(t, false)
	if len(rep.Findings) != 0 || rep.Live != 2 || len(h.q.enqueuedNames()) != 2 {
		t.Errorf("second run: %+v, enqueued %v; want both live and nothing new", rep, h.q.enqueuedNames())
	}
}

func TestLeavesLiveTaskAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	// A week-old record whose task waits in a paused queue.
	old := now.Add(-7 * 24 * time.Hour)
	h.record(t, "paused", status.Retrying, old, old,
		status.Attempt{Outcome: status.OutcomeRateLimited, TaskName: queue.TaskName("paused")})
	h.q.add(queue.TaskName("paused"))
	before := h.get(t, "paused")

	rep := h.scan(t, false)
	if rep.Idle != 1 || rep.Live != 1 || len(rep.Findings) != 0 || len(h.q.enqueuedNames()) != 0 {
		t.Errorf("report = %+v, enqueued %v; want the record left alone", rep, h.q.enqueuedNames())
	}
	if diff := cmp.Diff(before, h.get(t, "paused")); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
}

func TestWithinGraceUntouched(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	// Received long ago, but a delivery touched it a minute ago.
	h.record(t, "busy", status.Delivering, t0, now.Add(-time.Minute))
	// Received a minute ago.
	h.record(t, "new", status.Queued, now.Add(-time.Minute), now.Add(-time.Minute))

	rep := h.scan(t, false)
	if rep.Idle != 0 || len(rep.Findings) != 0 || len(h.q.enqueuedNames()) != 0 {
		t.Errorf("report = %+v, enqueued %v; want nothing within the grace", rep, h.q.enqueuedNames())
	}
	if rep.Read != 1 {
		t.Errorf("read %d records, want 1 (the new one is not listed at all)", rep.Read)
	}
}

func TestAdoptsNextTaskOfTheChain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	// The dispatcher requeued on the last attempt while the store was down:
	// the record never learnt of -q1.
	h.record(t, "adopt", status.Retrying, t0, t0, status.Attempt{Outcome: status.OutcomeRetryable, TaskName: queue.TaskName("adopt")})
	h.q.add(queue.TaskName("adopt") + "-q1")
	before := h.get(t, "adopt")

	rep := h.scan(t, false)
	if rep.Counts[ActionAdopted] != 1 || rep.Findings[0].NewTask != queue.TaskName("adopt")+"-q1" {
		t.Fatalf("report = %+v, want adopted -q1", rep)
	}
	if len(h.q.enqueuedNames()) != 0 {
		t.Errorf("enqueued %v, want nothing", h.q.enqueuedNames())
	}
	if diff := cmp.Diff(before, h.get(t, "adopt")); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
	if got := h.metric(t); len(got) != 0 {
		t.Errorf("metric = %v, want nothing counted for an adoption", got)
	}
}

func TestWalksPastFinishedNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	base := queue.TaskName("walk")
	h.record(t, "walk", status.Retrying, t0, t0, status.Attempt{Outcome: status.OutcomeRetryable, TaskName: base})
	// Two requeues the record never learnt of, both finished: the queue
	// still remembers their names.
	h.q.finish(base)
	h.q.finish(base + "-q1")
	h.q.finish(base + "-q2")

	rep := h.scan(t, false)
	if rep.Counts[ActionRequeued] != 1 {
		t.Fatalf("report = %+v, want requeued", rep)
	}
	if diff := cmp.Diff([]string{base + "-q3"}, h.q.enqueuedNames()); diff != "" {
		t.Errorf("enqueued (-want +got):\n%s", diff)
	}
	if got := CurrentTask(h.get(t, "walk")); got != base+"-q3" {
		t.Errorf("current task after the requeue = %s, want -q3", got)
	}
}

func TestStuckAfterTooManyFinishedNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	base := queue.TaskName("long")
	h.record(t, "long", status.Queued, t0, t0)
	name := base
	for range maxWalk + 1 {
		name, _ = queue.RequeueTaskName("long", name)
		h.q.finish(name)
	}
	rep := h.scan(t, false)
	if rep.Counts[ActionStuck] != 1 || !strings.Contains(rep.Findings[0].Error, "no free task name") {
		t.Errorf("report = %+v, want stuck", rep)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	h.record(t, "dry", status.Queued, t0, t0)
	before := h.get(t, "dry")

	rep := h.scan(t, true)
	if rep.Counts[ActionFound] != 1 || rep.Findings[0].NewTask != queue.TaskName("dry")+"-q1" || !rep.DryRun {
		t.Fatalf("report = %+v, want found", rep)
	}
	if len(h.q.enqueuedNames()) != 0 {
		t.Errorf("enqueued %v in a dry run", h.q.enqueuedNames())
	}
	if diff := cmp.Diff(before, h.get(t, "dry")); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"task_missing/found": 1}, h.metric(t)); diff != "" {
		t.Errorf("metric (-want +got):\n%s", diff)
	}
	// A dry run needs no queue to enqueue into.
	r, err := New(Options{Store: h.store, Inspector: h.q, Config: testConfig(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Scan(context.Background(), true); err != nil {
		t.Errorf("dry run without a queue: %v", err)
	}
	if _, err := r.Scan(context.Background(), false); err == nil {
		t.Error("requeue run without a queue: no error")
	}
}

func TestDeadLetterPolicy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Policy = PolicyDeadLetter
	h := newHarness(t, cfg)
	base := queue.TaskName("dl")
	h.record(t, "dl", status.Delivering, t0, t0)

	rep := h.scan(t, false)
	if rep.Counts[ActionDeadLettered] != 1 || len(h.q.enqueuedNames()) != 0 {
		t.Fatalf("report = %+v, enqueued %v; want dead-lettered, nothing enqueued", rep, h.q.enqueuedNames())
	}
	rec := h.get(t, "dl")
	reason := "task " + base + " no longer in the queue"
	if rec.Status != status.DeadLettered || rec.Reason != reason {
		t.Errorf("record %s %q, want dead_lettered %q", rec.Status, rec.Reason, reason)
	}
	if last := rec.Attempts[len(rec.Attempts)-1]; last.Outcome != status.OutcomeReconciled || last.TaskName != "" || last.Error != reason {
		t.Errorf("last entry = %+v", last)
	}
	// Replayable: the replay's task is the one the record then expects.
	rec, err := status.Replay(context.Background(), h.store, "dl", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := CurrentTask(rec); got != queue.ReplayTaskName("dl", 1) {
		t.Errorf("current task after replay = %s", got)
	}
	if diff := cmp.Diff(map[string]int64{"task_missing/dead_lettered": 1}, h.metric(t)); diff != "" {
		t.Errorf("metric (-want +got):\n%s", diff)
	}
}

func TestEngineFailuresLeaveTheRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	h.record(t, "fail", status.Queued, t0, t0)
	before := h.get(t, "fail")
	h.q.failNext = fmt.Errorf("boom: %w", queue.ErrUnavailable)

	rep := h.scan(t, false)
	if rep.Counts[ActionStuck] != 1 || !strings.Contains(rep.Findings[0].Error, "boom") {
		t.Fatalf("report = %+v, want stuck", rep)
	}
	if diff := cmp.Diff(before, h.get(t, "fail")); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
	// The next run succeeds.
	if rep := h.scan(t, false); rep.Counts[ActionRequeued] != 1 {
		t.Errorf("second run = %+v, want requeued", rep)
	}
}

func TestConcurrentReconcilersMakeOneTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	const n = 40
	for i := range n {
		h.record(t, fmt.Sprintf("c%02d", i), status.Queued, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i)*time.Second))
	}
	rs := []*Reconciler{h.r, h.reconciler(t, testConfig(), nil), h.reconciler(t, testConfig(), nil)}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			if _, err := r.Scan(context.Background(), false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	names := h.q.enqueuedNames()
	if len(names) != n {
		t.Errorf("enqueued %d tasks, want %d (one per event)", len(names), n)
	}
	for i := range n {
		id := fmt.Sprintf("c%02d", i)
		rec := h.get(t, id)
		reconciled := 0
		for _, a := range rec.Attempts {
			if a.Outcome == status.OutcomeReconciled {
				reconciled++
			}
		}
		if reconciled != 1 || CurrentTask(rec) != queue.TaskName(id)+"-q1" {
			t.Errorf("%s: %d reconciled entries, current task %s; want one, -q1", id, reconciled, CurrentTask(rec))
		}
	}
}

func TestPagesThroughEveryRecord(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PageSize = 4
	h := newHarness(t, cfg)
	want := map[string]bool{}
	for i := range 13 {
		id := fmt.Sprintf("p%02d", i)
		at := t0.Add(time.Duration(i) * time.Second)
		if i < 3 {
			at = t0 // three received in the same instant, across a page's end
		}
		h.record(t, id, status.Retrying, at, at)
		want[id] = true
	}
	// Busy or final records in between are read, never acted on.
	h.record(t, "busy", status.Retrying, t0.Add(5*time.Second+time.Millisecond), now)

	rep := h.scan(t, false)
	got := map[string]bool{}
	for _, f := range rep.Findings {
		if got[f.EventID] {
			t.Errorf("%s reported twice", f.EventID)
		}
		got[f.EventID] = f.Action == ActionRequeued
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requeued (-want +got):\n%s", diff)
	}
	if rep.Read != 14 || rep.Idle != 13 || rep.Skipped != 0 {
		t.Errorf("read %d idle %d skipped %d, want 14, 13, 0", rep.Read, rep.Idle, rep.Skipped)
	}
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	if _, ok := h.r.Snapshot(); ok {
		t.Error("snapshot before any run claims a run")
	}
	h.record(t, "snap", status.Queued, t0, t0)
	h.scan(t, false)
	snap, ok := h.r.Snapshot()
	if !ok || len(snap.Findings) != 1 || snap.Counts[ActionRequeued] != 1 || !snap.Started.Equal(now) {
		t.Errorf("snapshot = %+v, %v", snap, ok)
	}
}

func TestRunSkipsWhileInactive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	h.record(t, "run", status.Queued, t0, t0)
	var mu sync.Mutex
	active, asked := false, 0
	cfg := testConfig()
	cfg.Interval = time.Millisecond
	r, err := New(Options{Store: h.store, Queue: h.q, Inspector: h.q, Config: cfg, Now: func() time.Time { return now },
		Active: func() bool {
			mu.Lock()
			defer mu.Unlock()
			asked++
			if asked == 5 {
				active = true
			}
			return active
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	testutil.WaitFor(t, 5*time.Second, "a run once active", func() bool { _, ok := r.Snapshot(); return ok })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked < 5 {
		t.Errorf("asked %d times, want the run only after the fifth", asked)
	}
	if got := h.q.enqueuedNames(); len(got) != 1 {
		t.Errorf("enqueued %v, want one task", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := testConfig().Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	err := Config{Policy: "drop", PageSize: MaxPageSize + 1}.Validate()
	for _, want := range []string{"RECONCILE_GRACE", "RECONCILE_INTERVAL", "RECONCILE_POLICY", "RECONCILE_PAGE_SIZE", "RECONCILE_CHECKS_PER_SECOND"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a problem with %s", err, want)
		}
	}
	if _, err := New(Options{Config: testConfig()}); err == nil {
		t.Error("New without store and inspector: no error")
	}
}

func TestStepsOverAPageInOneMicrosecond(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.PageSize = 4
	h := newHarness(t, cfg)
	for i := range 6 {
		h.record(t, fmt.Sprintf("same%d", i), status.Queued, t0, t0)
	}
	rep := h.scan(t, false)
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		if seen[f.EventID] {
			t.Errorf("%s reported twice", f.EventID)
		}
		seen[f.EventID] = true
	}
	if rep.Skipped != 1 || len(rep.Findings) < cfg.PageSize {
		t.Errorf("skipped %d with %d findings, want 1 and at least a page", rep.Skipped, len(rep.Findings))
	}
}

func TestQueueUnreachableStopsThePass(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	for i := range 5 {
		h.record(t, fmt.Sprintf("u%d", i), status.Queued, t0.Add(time.Duration(i)*time.Second), t0)
	}
	h.q.existsErr = errors.New("cloud tasks unavailable")
	rep, err := h.r.Scan(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "cloud tasks unavailable") || rep.Err == "" {
		t.Fatalf("Scan = %v (report error %q), want the queue's error", err, rep.Err)
	}
	// One question per non-final status, then the pass stops.
	if h.q.asked != 1 || len(rep.Findings) != 0 || len(h.q.enqueuedNames()) != 0 {
		t.Errorf("asked the queue %d times, %d findings, enqueued %v; want 1, none, none", h.q.asked, len(rep.Findings), h.q.enqueuedNames())
	}
}

func TestRecordWithoutItsEventIsNotRequeued(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testConfig())
	// Records without a valid event to send: the task would be dropped as
	// malformed, so the record stays for an operator to see.
	if _, err := h.store.Apply(context.Background(), "bare", status.Update{Status: status.Delivering, At: t0, Event: event.Event{ID: "bare"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Create(context.Background(), status.Record{EventID: "empty", ReceivedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rep := h.scan(t, false)
	got := map[string]Action{}
	for _, f := range rep.Findings {
		got[f.EventID] = f.Action
	}
	if diff := cmp.Diff(map[string]Action{"bare": ActionStuck, "empty": ActionStuck}, got); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if n := len(h.q.enqueuedNames()); n != 0 {
		t.Errorf("enqueued %d tasks, want none", n)
	}
}

// TestChecksArePaced: a pass asks the queue about at most
// RECONCILE_CHECKS_PER_SECOND records a second (after a first second's
// burst), so a large backlog makes a longer pass, not a burst of reads
// and GetTask calls. Only a lower bound is checked: a slow machine makes
// the pass longer, never shorter.
func TestChecksArePaced(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.ChecksPerSecond = 20
	h := newHarness(t, cfg)
	old := now.Add(-time.Hour)
	const n = 40
	for i := range n {
		id := fmt.Sprintf("live-%02d", i)
		h.record(t, id, status.Queued, old, old)
		h.q.add(queue.TaskName(id))
	}
	start := time.Now()
	rep := h.scan(t, false)
	took := time.Since(start)
	if rep.Live != n {
		t.Fatalf("report = %+v, want %d live records", rep, n)
	}
	// A burst of 20, then 20 more at 20/s: at least one second.
	if min := (n - 20) * time.Second / 20; took < min {
		t.Errorf("a pass over %d records at 20 checks/s took %v, want at least %v", n, took, min)
	}
}
