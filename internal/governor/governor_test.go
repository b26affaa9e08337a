package governor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// fakeQueue is an in-memory queue.Controller.
type fakeQueue struct {
	mu      sync.Mutex
	c       queue.Control
	sets    []setCall
	readErr error
	setErr  error
}

type setCall struct {
	Rate float64
	By   string
}

var _ queue.Controller = (*fakeQueue)(nil)

func (f *fakeQueue) Control(context.Context) (queue.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.c, f.readErr
}

func (f *fakeQueue) SetRate(_ context.Context, r float64, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.sets = append(f.sets, setCall{r, by})
	f.c.Rate, f.c.By = r, by
	return nil
}

func (f *fakeQueue) Pause(context.Context, string) error {
	return errors.New("the governor must not pause")
}
func (f *fakeQueue) Resume(context.Context, string) error {
	return errors.New("the governor must not resume")
}

// operator changes the rate by hand.
func (f *fakeQueue) operator(rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c.Rate, f.c.By = rate, queue.ByOperator
}

func (f *fakeQueue) calls() []setCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]setCall(nil), f.sets...)
}

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log lines whose message is msg.
func (b *logBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// rig is a governor over a fake queue with a fake clock.
type rig struct {
	g      *Governor
	q      *fakeQueue
	logs   *logBuffer
	ctx    context.Context
	reader *sdkmetric.ManualReader
	now    time.Time
}

func newRig(t testing.TB, o Options, live queue.Control) *rig {
	t.Helper()
	r := &rig{q: &fakeQueue{c: live}, logs: &logBuffer{}, reader: sdkmetric.NewManualReader(),
		now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	o.Control = r.q
	o.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	o.now = func() time.Time { return r.now }
	g, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	r.g = g
	r.ctx = logging.WithLogger(context.Background(), logging.New(r.logs, logging.Options{Level: "debug"}))
	r.g.step(r.ctx, r.now, true)
	return r
}

// window observes the calls and runs the next window.
func (r *rig) window(delivered, rateLimited, failed int, retryAfter time.Duration) {
	for range delivered {
		r.g.Observe(status.OutcomeDelivered, 0)
	}
	for range rateLimited {
		r.g.Observe(status.OutcomeRateLimited, retryAfter)
	}
	for range failed {
		r.g.Observe(status.OutcomeRetryable, 0)
	}
	r.now = r.now.Add(r.g.cfg.Window)
	r.g.step(r.ctx, r.now, false)
}

// metrics collects the governor's instruments: gauges by name, and the
// actions counter by action.
func (r *rig) metrics(t testing.TB) (map[string]float64, map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	gauges, actions := map[string]float64{}, map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					gauges[m.Name] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					gauges[m.Name] = float64(p.Value)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					a, _ := p.Attributes.Value(telemetry.AttrAction)
					actions[a.AsString()] += p.Value
				}
			}
		}
	}
	return gauges, actions
}

func TestGovernorSlowsThenRaisesBackToTheCeiling(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10}, queue.Control{Rate: 10})

	// A storm: 100 calls in 10 s, 70 rate limited, 30 delivered (3/s).
	r.window(30, 70, 0, 2*time.Second)
	if diff := cmp.Diff([]setCall{{2.4, queue.ByGovernor}}, r.q.calls()); diff != "" {
		t.Fatalf("SetRate calls (-want +got):\n%s", diff)
	}
	snap := r.g.Snapshot()
	if !snap.Holding || snap.Live.Rate != 2.4 || snap.Ceiling != 10 || snap.Acted.Action != ActionSlow {
		t.Errorf("snapshot after the storm = %+v, want holding at 2.4 below 10 after a slow", snap)
	}
	slowed := r.logs.lines(t, "queue slowed")
	if len(slowed) != 1 {
		t.Fatalf("%d \"queue slowed\" lines, want 1", len(slowed))
	}
	want := map[string]any{"old_rate": 10.0, "new_rate": 2.4, "rate_limited_share": 0.7, "retry_after_s": 2.0, "by": "governor", "severity": "WARNING"}
	for k, v := range want {
		if slowed[0][k] != v {
			t.Errorf("queue slowed %s = %v, want %v", k, slowed[0][k], v)
		}
	}
	gauges, actions := r.metrics(t)
	if gauges[telemetry.MetricQueueDispatchRate] != 2.4 || gauges[telemetry.MetricQueueRateCeiling] != 10 || gauges[telemetry.MetricQueuePaused] != 0 {
		t.Errorf("gauges = %v, want rate 2.4, ceiling 10, not paused", gauges)
	}
	if actions[string(ActionSlow)] != 1 {
		t.Errorf("actions = %v, want one slow", actions)
	}

	// The target recovers: this governor sees every dispatch, so one clean
	// window goes straight back to the ceiling.
	for range 3 {
		r.window(20, 0, 2, 0)
	}
	if diff := cmp.Diff([]setCall{{2.4, queue.ByGovernor}, {10, queue.ByGovernor}}, r.q.calls()); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	if snap := r.g.Snapshot(); snap.Holding {
		t.Errorf("snapshot at the ceiling still holding: %+v", snap)
	}
	if n := len(r.logs.lines(t, "queue rate raised")); n != 1 {
		t.Errorf("%d \"queue rate raised\" lines, want 1", n)
	}
	if _, actions := r.metrics(t); actions[string(ActionRaise)] != 1 {
		t.Errorf("actions = %v, want 1 raise", actions)
	}
}

// TestGovernorReturnsToTheLastGoodRate: after a clean window at a slowed
// rate, the raise to the ceiling is a probe; when the target still rate
// limits, the next slow goes straight back to that rate instead of
// estimating again from a window the queue spent mostly paused.
func TestGovernorReturnsToTheLastGoodRate(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10}, queue.Control{Rate: 10})
	r.window(30, 70, 0, time.Second) // slowed to 2.4
	r.window(24, 0, 0, 0)            // clean at 2.4: probe the ceiling
	r.window(10, 20, 0, time.Second) // still limited: back to 2.4
	want := []setCall{{2.4, queue.ByGovernor}, {10, queue.ByGovernor}, {2.4, queue.ByGovernor}}
	if diff := cmp.Diff(want, r.q.calls()); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	if got := r.g.Snapshot().Acted.Reason; !strings.Contains(got, "last rate the target took in full") {
		t.Errorf("last action's reason = %q", got)
	}
}

// TestGovernorCountsTheQueuesOwnPauses: each rate-limited call holds the
// embedded queue for the dispatcher's Retry-After (whole seconds, at least
// 1 s); overlapping pauses count once, and a pause running past the window
// counts in the next one. One instance's share (Partial) counts none.
func TestGovernorCountsTheQueuesOwnPauses(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10, Config: Config{Window: 10 * time.Second}}, queue.Control{Rate: 10})
	r.now = r.now.Add(time.Second)
	r.g.Observe(status.OutcomeRateLimited, 0) // [1 s, 2 s]
	r.now = r.now.Add(500 * time.Millisecond)
	r.g.Observe(status.OutcomeRateLimited, 1200*time.Millisecond) // [1.5 s, 3.5 s]: 1.5 s more
	r.now = r.now.Add(7 * time.Second)
	r.g.Observe(status.OutcomeRateLimited, 0) // [8.5 s, 9.5 s]
	r.now = r.now.Add(time.Second)
	r.g.Observe(status.OutcomeRateLimited, 0) // [9.5 s, 10.5 s]: 0.5 s in this window
	w := r.g.take(r.now.Add(500 * time.Millisecond))
	if w.Held != 4*time.Second { // [1 s, 3.5 s] + [8.5 s, 10 s]
		t.Errorf("held %v, want 4s", w.Held)
	}
	if w := r.g.take(r.now.Add(10 * time.Second)); w.Held != 500*time.Millisecond {
		t.Errorf("next window held %v, want the 0.5s that ran past the first", w.Held)
	}

	p := newRig(t, Options{Ceiling: 10, Partial: true}, queue.Control{Rate: 10})
	p.g.Observe(status.OutcomeRateLimited, time.Second)
	if w := p.g.take(p.now.Add(time.Second)); w.Held != 0 {
		t.Errorf("partial window held %v, want 0", w.Held)
	}
}

// TestGovernorBreaker: a target failing every call opens the breaker (the
// queue to the floor), after BreakerOpen a probe window at 10 % of the
// ceiling, and a clean probe closes it straight back to the rate before;
// each transition logged, counted and shown in the snapshot.
func TestGovernorBreaker(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 50, Config: Config{BreakerOpen: 30 * time.Second}}, queue.Control{Rate: 50})

	r.window(10, 0, 490, 0) // 98 % failed
	snap := r.g.Snapshot()
	if !snap.Breaker.Is(BreakerOpenState) || snap.Live.Rate != 1 || snap.Breaker.Resume != 50 || !snap.Breaker.Until.Equal(r.now.Add(30*time.Second)) {
		t.Fatalf("snapshot after the failing window = %+v, want open at the floor until +30s, resuming 50", snap)
	}
	opened := r.logs.lines(t, "circuit breaker opened")
	if len(opened) != 1 || opened[0]["new_rate"] != 1.0 || opened[0]["failed_share"] != 0.98 || opened[0]["severity"] != "WARNING" {
		t.Errorf("\"circuit breaker opened\" lines = %v", opened)
	}

	// Open: while the floor's calls fail, nothing changes for 30 s.
	r.window(0, 0, 10, 0)
	r.window(2, 0, 8, 0)
	if n := len(r.q.calls()); n != 1 {
		t.Errorf("%d SetRate calls while open, want only the first", n)
	}
	r.window(0, 0, 10, 0) // 30 s: half-open
	if snap := r.g.Snapshot(); !snap.Breaker.Is(BreakerHalfOpen) || snap.Live.Rate != 5 {
		t.Errorf("snapshot = %+v, want half-open probing at 5", snap)
	}
	r.window(0, 0, 50, 0) // the probe fails: open again
	r.window(10, 0, 0, 0) // the target answers at the floor: half-open at once
	r.window(50, 0, 0, 0) // the probe passes: closed, back to 50
	want := []setCall{{1, queue.ByGovernor}, {5, queue.ByGovernor}, {1, queue.ByGovernor}, {5, queue.ByGovernor}, {50, queue.ByGovernor}}
	if diff := cmp.Diff(want, r.q.calls()); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	snap = r.g.Snapshot()
	if !snap.Breaker.Is(BreakerClosed) || snap.Holding || snap.Acted.Action != ActionBreakClose {
		t.Errorf("snapshot = %+v, want closed at the ceiling", snap)
	}
	for msg, n := range map[string]int{"circuit breaker opened": 2, "circuit breaker half-open": 2, "circuit breaker closed": 1} {
		if got := len(r.logs.lines(t, msg)); got != n {
			t.Errorf("%d %q lines, want %d", got, msg, n)
		}
	}
	_, actions := r.metrics(t)
	if diff := cmp.Diff(map[string]int64{"break_open": 2, "break_half_open": 2, "break_close": 1}, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

// TestGovernorBreakerStandsDownForOps: ops changing the rate while the
// breaker is open have the last word: the governor stands down and the
// breaker closes without touching the queue.
func TestGovernorBreakerStandsDownForOps(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 50}, queue.Control{Rate: 50})
	r.window(0, 0, 100, 0)
	r.q.operator(20)
	r.window(0, 0, 20, 0)
	snap := r.g.Snapshot()
	if !snap.Breaker.Is(BreakerClosed) || snap.Acted.Action != ActionStandDown || snap.Ceiling != 20 {
		t.Errorf("snapshot = %+v, want stood down, breaker closed, ceiling 20", snap)
	}
	if n := len(r.q.calls()); n != 1 {
		t.Errorf("%d SetRate calls, want only the opening one", n)
	}
}

// TestGovernorNamesItsQueue: with Options.Queue set, every log line and the
// snapshot name the queue, so two regions' governors of queues with one
// short name are told apart.
func TestGovernorNamesItsQueue(t *testing.T) {
	t.Parallel()
	const name = "projects/p/locations/europe-west1/queues/events"
	r := newRig(t, Options{Ceiling: 10, Queue: name}, queue.Control{Rate: 10})
	r.window(30, 70, 0, time.Second)
	slowed := r.logs.lines(t, "queue slowed")
	if len(slowed) != 1 || slowed[0]["queue"] != name {
		t.Errorf("\"queue slowed\" lines = %v, want one with queue %s", slowed, name)
	}
	if got := r.g.Snapshot().Queue; got != name {
		t.Errorf("snapshot queue = %q, want %s", got, name)
	}
	// Without a name, no queue field.
	r = newRig(t, Options{Ceiling: 10}, queue.Control{Rate: 10})
	r.window(30, 70, 0, time.Second)
	if slowed := r.logs.lines(t, "queue slowed"); len(slowed) != 1 || slowed[0]["queue"] != nil {
		t.Errorf("\"queue slowed\" lines = %v, want one without a queue", slowed)
	}
}

func TestGovernorStandsDownForOps(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10, Config: Config{Hold: time.Minute}}, queue.Control{Rate: 10})
	r.window(30, 70, 0, time.Second) // slowed to 2.4
	r.q.operator(6)

	r.window(30, 70, 0, time.Second)
	snap := r.g.Snapshot()
	if snap.Acted.Action != ActionStandDown || snap.Ceiling != 6 || snap.Holding {
		t.Errorf("snapshot = %+v, want stood down with ceiling 6", snap)
	}
	down := r.logs.lines(t, "governor stood down")
	if len(down) != 1 || down[0]["new_ceiling"] != 6.0 || down[0]["changed_by"] != queue.ByOperator || down[0]["expected_rate"] != 2.4 {
		t.Fatalf("stood-down lines = %v", down)
	}
	// During the hold, storms change nothing.
	for range 5 {
		r.window(30, 70, 0, time.Second)
	}
	if n := len(r.q.calls()); n != 1 {
		t.Errorf("%d SetRate calls during the hold, want only the first slow", n)
	}
	// After it, the governor acts again, below the new ceiling.
	r.now = r.now.Add(time.Minute)
	r.window(30, 70, 0, time.Second)
	calls := r.q.calls()
	if len(calls) != 2 || calls[1].Rate >= 6 {
		t.Errorf("SetRate calls = %+v, want a second slow below the adopted ceiling 6", calls)
	}
	// Raising never passes the adopted ceiling.
	for range 20 {
		r.window(50, 0, 0, 0)
	}
	for _, c := range r.q.calls() {
		if c.Rate > 6 {
			t.Errorf("SetRate(%v) above the adopted ceiling 6", c.Rate)
		}
	}
	if _, actions := r.metrics(t); actions[string(ActionStandDown)] != 1 {
		t.Errorf("actions = %v, want one stand_down", actions)
	}
}

func TestGovernorOffOnlyWatches(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10, Config: Config{Mode: "OFF"}}, queue.Control{Rate: 10})
	for range 3 {
		r.window(0, 100, 0, time.Minute)
	}
	if n := len(r.q.calls()); n != 0 {
		t.Errorf("%d SetRate calls with the governor off, want 0", n)
	}
	snap := r.g.Snapshot()
	if snap.Enabled || snap.Live.Rate != 10 || snap.LiveAt.IsZero() {
		t.Errorf("snapshot = %+v, want disabled, with the live rate read", snap)
	}
	if gauges, _ := r.metrics(t); gauges[telemetry.MetricQueueDispatchRate] != 10 {
		t.Errorf("gauges = %v, want the live rate reported even when off", gauges)
	}
}

func TestGovernorFailuresLeaveTheQueueAlone(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Ceiling: 10}, queue.Control{Rate: 10})
	r.q.mu.Lock()
	r.q.readErr = errors.New("admin API down")
	r.q.mu.Unlock()
	for range 3 {
		r.window(0, 100, 0, time.Second)
	}
	if n := len(r.q.calls()); n != 0 {
		t.Errorf("%d SetRate calls without a readable queue, want 0", n)
	}
	if n := len(r.logs.lines(t, "governor cannot judge this window; the queue is left as it is")); n != 1 {
		t.Errorf("%d failure lines over 3 failed windows, want 1", n)
	}
	if snap := r.g.Snapshot(); !strings.Contains(snap.Err, "admin API down") {
		t.Errorf("snapshot error = %q", snap.Err)
	}

	r.q.mu.Lock()
	r.q.readErr, r.q.setErr = nil, errors.New("permission denied")
	r.q.mu.Unlock()
	r.window(0, 100, 0, time.Second)
	if n := len(r.logs.lines(t, "governor could not set the queue's rate")); n != 1 {
		t.Errorf("%d set-failure lines, want 1", n)
	}
	if snap := r.g.Snapshot(); snap.Holding || !strings.Contains(snap.Err, "permission denied") {
		t.Errorf("snapshot = %+v, want not holding and the error shown", snap)
	}
}

func TestGovernorContinuesAfterARestart(t *testing.T) {
	t.Parallel()
	// The queue is still slowed by the governor of a previous run.
	r := newRig(t, Options{Ceiling: 10}, queue.Control{Rate: 4, By: queue.ByGovernor})
	r.window(40, 0, 0, 0)
	if diff := cmp.Diff([]setCall{{10, queue.ByGovernor}}, r.q.calls()); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	if n := len(r.logs.lines(t, "governor stood down")); n != 0 {
		t.Errorf("stood down for its own earlier slow")
	}
}

func TestGovernorTakesTheLiveRateAsCeilingWhenNoneIsGiven(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{}, queue.Control{Rate: 25})
	if snap := r.g.Snapshot(); snap.Ceiling != 25 {
		t.Errorf("ceiling = %v, want the live 25", snap.Ceiling)
	}
	r.window(40, 160, 0, time.Second)
	// 40 delivered over the 9 s the queue did not hold itself back, × 0.8.
	if calls := r.q.calls(); len(calls) != 1 || calls[0].Rate != 3.56 {
		t.Errorf("SetRate calls = %+v, want one slow to 3.56", calls)
	}
}

func TestObserveIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	g, err := New(context.Background(), Options{Control: &fakeQueue{}, Ceiling: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				switch j % 5 {
				case 0:
					g.Observe(status.OutcomeDelivered, 0)
				case 1:
					g.Observe(status.OutcomeRateLimited, time.Duration(i*1000+j)*time.Millisecond)
				case 2:
					g.Observe(status.OutcomePermanent, 0)
				case 3:
					g.Observe(status.OutcomeRetryable, 0)
				default:
					g.Observe(status.OutcomeSkipped, time.Hour) // not a target call
				}
			}
		})
	}
	wg.Wait()
	w := g.take(time.Now())
	want := Window{Attempts: 6400, RateLimited: 1600, Delivered: 1600, Failed: 1600, MaxRetryAfter: (7*1000 + 996) * time.Millisecond}
	w.Span, w.Held = 0, 0 // the clock's
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("window (-want +got):\n%s", diff)
	}
	if w := g.take(time.Now()); w.Attempts != 0 || w.MaxRetryAfter != 0 {
		t.Errorf("second take = %+v, want empty", w)
	}
}

func TestRunActsEachWindow(t *testing.T) {
	t.Parallel()
	q := &fakeQueue{c: queue.Control{Rate: 100}}
	g, err := New(context.Background(), Options{Control: q, Ceiling: 100, Config: Config{Window: 20 * time.Millisecond, MinAttempts: 5}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	// Keep the target rate limiting until the governor slows the queue.
	deadline := time.Now().Add(30 * time.Second)
	for len(q.calls()) == 0 && time.Now().Before(deadline) {
		for range 10 {
			g.Observe(status.OutcomeRateLimited, time.Second)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil on cancel", err)
	}
	calls := q.calls()
	if len(calls) == 0 || calls[0].Rate != 1 || calls[0].By != queue.ByGovernor {
		t.Errorf("SetRate calls = %+v, want a slow to the floor by the governor", calls)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr []string
	}{
		{name: "defaults", want: Config{Mode: ModeOn, Window: 10 * time.Second, Threshold: 0.2, MinAttempts: 20, Floor: 1,
			Hold: 10 * time.Minute, LongRetryAfter: 30 * time.Second, BreakerThreshold: 0.5, BreakerMinAttempts: 20, BreakerOpen: 30 * time.Second}},
		{
			name: "set",
			env: map[string]string{"QUEUE_GOVERNOR": "off", "QUEUE_GOVERNOR_WINDOW": "30s", "QUEUE_GOVERNOR_THRESHOLD": "0.5",
				"QUEUE_GOVERNOR_MIN_ATTEMPTS": "5", "QUEUE_GOVERNOR_FLOOR": "0.5", "QUEUE_GOVERNOR_HOLD": "1h", "QUEUE_GOVERNOR_LONG_RETRY_AFTER": "2m",
				"QUEUE_GOVERNOR_BREAKER_THRESHOLD": "0.8", "QUEUE_GOVERNOR_BREAKER_MIN_ATTEMPTS": "50", "QUEUE_GOVERNOR_BREAKER_OPEN": "1m"},
			want: Config{Mode: ModeOff, Window: 30 * time.Second, Threshold: 0.5, MinAttempts: 5, Floor: 0.5, Hold: time.Hour, LongRetryAfter: 2 * time.Minute,
				BreakerThreshold: 0.8, BreakerMinAttempts: 50, BreakerOpen: time.Minute},
		},
		{
			name: "invalid",
			env: map[string]string{"QUEUE_GOVERNOR": "maybe", "QUEUE_GOVERNOR_THRESHOLD": "1.5", "QUEUE_GOVERNOR_FLOOR": "-1", "QUEUE_GOVERNOR_MIN_ATTEMPTS": "-3", "QUEUE_GOVERNOR_WINDOW": "-1s",
				"QUEUE_GOVERNOR_BREAKER_THRESHOLD": "1", "QUEUE_GOVERNOR_BREAKER_MIN_ATTEMPTS": "-1", "QUEUE_GOVERNOR_BREAKER_OPEN": "-1s"},
			wantErr: []string{"QUEUE_GOVERNOR must be on or off", "QUEUE_GOVERNOR_THRESHOLD", "QUEUE_GOVERNOR_FLOOR", "QUEUE_GOVERNOR_MIN_ATTEMPTS", "QUEUE_GOVERNOR_WINDOW",
				"QUEUE_GOVERNOR_BREAKER_THRESHOLD", "QUEUE_GOVERNOR_BREAKER_MIN_ATTEMPTS", "QUEUE_GOVERNOR_BREAKER_OPEN"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(tc.env)}); err != nil {
				t.Fatalf("process: %v", err)
			}
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("Validate = %v", err)
				}
				if diff := cmp.Diff(tc.want, c); diff != "" {
					t.Errorf("config (-want +got):\n%s", diff)
				}
				return
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want it to mention %q", err, w)
				}
			}
		})
	}
	if !(Config{}).Enabled() || (Config{Mode: "off"}).Enabled() {
		t.Error("a zero Config must be on, Mode off off")
	}
	// A zero field takes its env tag's default, a set one is kept.
	if got, want := (Config{Window: time.Second}).withDefaults(), (Config{Mode: ModeOn, Window: time.Second, Threshold: 0.2,
		MinAttempts: 20, Floor: 1, Hold: 10 * time.Minute, LongRetryAfter: 30 * time.Second,
		BreakerThreshold: 0.5, BreakerMinAttempts: 20, BreakerOpen: 30 * time.Second}); got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
}

// fakeLease is an in-memory Lease that one test drives.
type fakeLease struct {
	mu       sync.Mutex
	holder   string
	st       State
	released []string
}

func (l *fakeLease) Acquire(_ context.Context, holder string, _ time.Time, _ time.Duration) (State, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != "" && l.holder != holder {
		return State{}, false, nil
	}
	l.holder = holder
	return l.st, true, nil
}

func (l *fakeLease) Save(_ context.Context, holder string, st State) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != holder {
		return errors.New("not the holder")
	}
	l.st = st
	return nil
}

func (l *fakeLease) Release(_ context.Context, holder string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = append(l.released, holder)
	if l.holder == holder {
		l.holder = ""
	}
	return nil
}

func TestGovernorWithALease(t *testing.T) {
	t.Parallel()
	// Another instance holds the lease: this one never acts.
	lease := &fakeLease{holder: "other", st: State{Ceiling: 10, LastRate: 4}}
	r := newRig(t, Options{Lease: lease, Holder: "me", Partial: true}, queue.Control{Rate: 4})
	r.window(10, 90, 0, time.Second)
	if n := len(r.q.calls()); n != 0 {
		t.Errorf("%d SetRate calls without the lease, want 0", n)
	}
	if s := r.g.Snapshot(); s.Leader {
		t.Errorf("snapshot = %+v, want not leader", s)
	}

	// The lease comes free: this instance goes on from the stored state (the
	// other holder's slow to 4), raising instead of standing down.
	lease.mu.Lock()
	lease.holder = ""
	lease.mu.Unlock()
	r.window(50, 0, 0, 0)
	if diff := cmp.Diff([]setCall{{5, queue.ByGovernor}}, r.q.calls()); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	lease.mu.Lock()
	st := lease.st
	lease.mu.Unlock()
	if st.Ceiling != 10 || st.LastRate != 5 {
		t.Errorf("state saved with the lease = %+v, want ceiling 10, last rate 5", st)
	}

	// Run gives the lease up when it stops.
	ctx, cancel := context.WithCancel(r.ctx)
	cancel()
	if err := r.g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	lease.mu.Lock()
	defer lease.mu.Unlock()
	if lease.holder != "" || len(lease.released) == 0 {
		t.Errorf("after Run: holder %q, released %v; want the lease released", lease.holder, lease.released)
	}
}
