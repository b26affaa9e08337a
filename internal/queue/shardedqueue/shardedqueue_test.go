package shardedqueue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
)

// fake is an engine queue in memory: it deduplicates names, and reports
// and records the dispatch settings and stats it is given.
type fake struct {
	mu    sync.Mutex
	names map[string]bool
	ctl   queue.Control
	stats queue.Stats
	err   error // returned by every call but Enqueue when set
	// setErr, when set, is returned by SetRate only; statsErr by Stats
	// only.
	setErr, statsErr error
	// sets counts the SetRate calls that changed the rate; reads counts
	// the Control calls.
	sets, reads int
}

func newFake(rate float64) *fake {
	return &fake{names: map[string]bool{}, ctl: queue.Control{Rate: rate}}
}

func (f *fake) Enqueue(_ context.Context, t queue.Task) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.names[t.Name] {
		return queue.ErrAlreadyExists
	}
	f.names[t.Name] = true
	return nil
}

func (f *fake) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names[name]
}

func (f *fake) TaskExists(_ context.Context, name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names[name], f.err
}

func (f *fake) Stats(context.Context) (queue.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statsErr != nil {
		return queue.Stats{}, f.statsErr
	}
	return f.stats, f.err
}

func (f *fake) Control(context.Context) (queue.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.ctl, f.err
}

func (f *fake) change(fn func(*queue.Control), by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	fn(&f.ctl)
	f.ctl.By, f.ctl.At = by, time.Now()
	return nil
}

func (f *fake) SetRate(_ context.Context, r float64, by string) error {
	f.mu.Lock()
	setErr := f.setErr
	f.mu.Unlock()
	if setErr != nil {
		return setErr
	}
	return f.change(func(c *queue.Control) { c.Rate = r; f.sets++ }, by)
}

func (f *fake) Pause(_ context.Context, by string) error {
	return f.change(func(c *queue.Control) { c.Paused = true }, by)
}

func (f *fake) Resume(_ context.Context, by string) error {
	return f.change(func(c *queue.Control) { c.Paused = false }, by)
}

func (f *fake) control() queue.Control {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctl
}

// onlyQueue is an engine queue with none of the optional interfaces.
type onlyQueue struct{ queue.Queue }

// newSharded returns a sharded queue over n fakes, each at rate.
func newSharded(t testing.TB, n int, rate float64) (*shardedqueue.Queue, []*fake) {
	t.Helper()
	fakes := make([]*fake, n)
	shards := make([]shardedqueue.Shard, n)
	for i := range n {
		fakes[i] = newFake(rate)
		shards[i] = shardedqueue.Shard{Name: queue.ShardName("events", i), Queue: fakes[i]}
	}
	q, err := shardedqueue.New(shards)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return q, fakes
}

// holder returns the index of the one fake holding name, failing unless
// exactly one does.
func holder(t testing.TB, fakes []*fake, name string) int {
	t.Helper()
	at := -1
	for i, f := range fakes {
		if f.has(name) {
			if at >= 0 {
				t.Fatalf("%s is on shards %d and %d, want one", name, at, i)
			}
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("%s is on no shard", name)
	}
	return at
}

func TestEnqueue_everyTaskOfAnEventOnOneShard(t *testing.T) {
	t.Parallel()
	const n = 3
	q, fakes := newSharded(t, n, 10)
	ctx := context.Background()
	used := make([]int, n)
	for i := range 300 {
		id := fmt.Sprintf("evt-%d", i)
		// The event's first task, its requeues, its replays and their
		// requeues: the whole chain the dispatcher and relayctl can make.
		first := queue.TaskName(id)
		chain := []string{first}
		for _, from := range []string{first, queue.ReplayTaskName(id, 1), queue.ReplayTaskName(id, 2)} {
			if from != first {
				chain = append(chain, from)
			}
			cur := from
			for range 3 {
				next, ok := queue.RequeueTaskName(id, cur)
				if !ok {
					t.Fatalf("RequeueTaskName(%s, %s) not ok", id, cur)
				}
				chain = append(chain, next)
				cur = next
			}
		}
		want := -1
		for _, name := range chain {
			if err := q.Enqueue(ctx, queue.Task{Name: name}); err != nil {
				t.Fatalf("Enqueue(%s): %v", name, err)
			}
			got := holder(t, fakes, name)
			if want < 0 {
				if want = queue.ShardOf(name, n); got != want {
					t.Errorf("%s on shard %d, want ShardOf's %d", name, got, want)
				}
				used[got]++
			}
			if got != want {
				t.Errorf("event %s: %s on shard %d, its first task on shard %d", id, name, got, want)
			}
			if s := q.ShardFor(name); s.Name != queue.ShardName("events", want) {
				t.Errorf("ShardFor(%s) = %s, want %s", name, s.Name, queue.ShardName("events", want))
			}
		}
	}
	// Every shard carries a fair part of 300 events (the hash spreads them):
	// routing everything to one shard would also keep chains together.
	for i, u := range used {
		if u < 60 {
			t.Errorf("shard %d carries %d of 300 events, want about 100 (counts %v)", i, u, used)
		}
	}
}

func TestEnqueue_deduplicatesAcrossTheShardedQueue(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 10)
	ctx := context.Background()
	for i := range 50 {
		name := queue.TaskName(fmt.Sprintf("evt-%d", i))
		if err := q.Enqueue(ctx, queue.Task{Name: name}); err != nil {
			t.Fatalf("Enqueue(%s): %v", name, err)
		}
		err := q.Enqueue(ctx, queue.Task{Name: name})
		if !errors.Is(err, queue.ErrAlreadyExists) {
			t.Errorf("second Enqueue(%s) = %v, want ErrAlreadyExists", name, err)
		}
		if s := q.ShardFor(name).Name; err != nil && !strings.Contains(err.Error(), s) {
			t.Errorf("second Enqueue(%s) = %v, want it to name shard %s", name, err, s)
		}
		holder(t, fakes, name)
	}
}

func TestTaskExists_asksTheTasksShard(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 10)
	ctx := context.Background()
	name := queue.TaskName("evt-1")
	if err := q.Enqueue(ctx, queue.Task{Name: name}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if ok, err := q.TaskExists(ctx, name); !ok || err != nil {
		t.Errorf("TaskExists(%s) = %v, %v, want true, nil", name, ok, err)
	}
	if ok, err := q.TaskExists(ctx, queue.TaskName("evt-2")); ok || err != nil {
		t.Errorf("TaskExists(never enqueued) = %v, %v, want false, nil", ok, err)
	}
	boom := errors.New("boom")
	fakes[holder(t, fakes, name)].err = boom
	if _, err := q.TaskExists(ctx, name); !errors.Is(err, boom) {
		t.Errorf("TaskExists with its shard failing = %v, want %v", err, boom)
	}
}

func TestSetRate_splitsTheTotal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		n     int
		total float64
	}{
		{name: "even", n: 3, total: 30},
		{name: "uneven", n: 3, total: 10},
		{name: "shares not exact in floating point", n: 6, total: 1000},
		{name: "one shard", n: 1, total: 7},
		{name: "above one Cloud Tasks queue", n: 4, total: 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, fakes := newSharded(t, tc.n, 1)
			ctx := context.Background()
			if err := q.SetRate(ctx, tc.total, queue.ByGovernor); err != nil {
				t.Fatalf("SetRate(%v): %v", tc.total, err)
			}
			for i, f := range fakes {
				if got, want := f.control().Rate, tc.total/float64(tc.n); got != want {
					t.Errorf("shard %d rate = %v, want total/N = %v", i, got, want)
				}
			}
			got, err := q.Control(ctx)
			if err != nil {
				t.Fatalf("Control: %v", err)
			}
			if got.Rate != tc.total || got.Paused || got.By != queue.ByGovernor || got.At.IsZero() {
				t.Errorf("Control() = %+v, want rate %v (the total), not paused, by %s, with a time", got, tc.total, queue.ByGovernor)
			}
		})
	}
}

func TestSetRate_invalidTouchesNoShard(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 5)
	for _, r := range []float64{0, -1} {
		if err := q.SetRate(context.Background(), r, queue.ByOperator); !errors.Is(err, queue.ErrInvalidRate) {
			t.Errorf("SetRate(%v) = %v, want ErrInvalidRate", r, err)
		}
	}
	for i, f := range fakes {
		if got := f.control(); got.Rate != 5 || got.By != "" {
			t.Errorf("shard %d = %+v after refused SetRate calls, want untouched at 5", i, got)
		}
	}
}

func TestControllers_partialFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name string
		op   func(*shardedqueue.Queue) error
		// want is each fake's Control after op, shard 1 failing.
		wantRate   [3]float64
		wantPaused [3]bool
		// wantTotal is what the sharded Control then reports.
		wantTotal       float64
		wantTotalPaused bool
	}{
		{
			name:     "SetRate",
			op:       func(q *shardedqueue.Queue) error { return q.SetRate(context.Background(), 30, queue.ByOperator) },
			wantRate: [3]float64{10, 5, 10}, wantTotal: 25,
		},
		{
			name:     "Pause",
			op:       func(q *shardedqueue.Queue) error { return q.Pause(context.Background(), queue.ByOperator) },
			wantRate: [3]float64{5, 5, 5}, wantPaused: [3]bool{true, false, true},
			wantTotal: 15, wantTotalPaused: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, fakes := newSharded(t, 3, 5)
			fakes[1].err = boom
			err := tc.op(q)
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "shard events-1:") {
				t.Errorf("%s with shard 1 failing = %v, want an error wrapping %v naming shard events-1", tc.name, err, boom)
			}
			if strings.Contains(err.Error(), "shard events:") || strings.Contains(err.Error(), "events-2") {
				t.Errorf("%s = %v, want only the failed shard named", tc.name, err)
			}
			for i, f := range fakes {
				if got := f.control(); got.Rate != tc.wantRate[i] || got.Paused != tc.wantPaused[i] {
					t.Errorf("shard %d = %+v, want rate %v, paused %v", i, got, tc.wantRate[i], tc.wantPaused[i])
				}
			}
			fakes[1].err = nil
			got, err := q.Control(context.Background())
			if err != nil {
				t.Fatalf("Control: %v", err)
			}
			if got.Rate != tc.wantTotal || got.Paused != tc.wantTotalPaused {
				t.Errorf("Control() = %+v, want rate %v, paused %v", got, tc.wantTotal, tc.wantTotalPaused)
			}
		})
	}
}

func TestResume_partialFailureStaysPaused(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 5)
	ctx := context.Background()
	if err := q.Pause(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	fakes[2].err = errors.New("boom")
	if err := q.Resume(ctx, queue.ByOperator); err == nil || !strings.Contains(err.Error(), "shard events-2:") {
		t.Errorf("Resume with shard 2 failing = %v, want an error naming shard events-2", err)
	}
	fakes[2].err = nil
	if got, err := q.Control(ctx); err != nil || !got.Paused {
		t.Errorf("Control() = %+v, %v after a partial Resume, want Paused (shard 2 still is)", got, err)
	}
	if err := q.Resume(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Resume again: %v", err)
	}
	if got, err := q.Control(ctx); err != nil || got.Paused {
		t.Errorf("Control() = %+v, %v after Resume, want not paused", got, err)
	}
}

func TestControl_reportsTheLatestChange(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 5)
	now := time.Now()
	fakes[0].ctl.By, fakes[0].ctl.At = queue.ByOperator, now.Add(-time.Minute)
	fakes[1].ctl.By, fakes[1].ctl.At = queue.ByGovernor, now
	// Each shard's own burst, as Cloud Tasks picks it from the shard's
	// rate; one engine that cannot tell (0).
	fakes[0].ctl.Burst, fakes[1].ctl.Burst, fakes[2].ctl.Burst = 7, 5, 0
	got, err := q.Control(context.Background())
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	want := queue.Control{Rate: 15, Burst: 12, By: queue.ByGovernor, At: now}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Control() (-want +got):\n%s", diff)
	}
	fakes[2].err = errors.New("boom")
	if _, err := q.Control(context.Background()); err == nil || !strings.Contains(err.Error(), "events-2") {
		t.Errorf("Control with shard 2 failing = %v, want an error naming events-2", err)
	}
}

func TestShardControls(t *testing.T) {
	t.Parallel()
	fakes := []*fake{newFake(4), newFake(4)}
	fakes[0].ctl.Burst, fakes[1].ctl.Burst = 9, 3
	fakes[1].ctl.Paused = true
	boom := errors.New("boom")
	broken := newFake(4)
	broken.err = boom
	q, err := shardedqueue.New([]shardedqueue.Shard{
		{Name: "a", Queue: fakes[0]},
		{Name: "b", Queue: fakes[1]},
		{Name: "c", Queue: broken},
		{Name: "d", Queue: onlyQueue{newFake(4)}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got := q.ShardControls(context.Background())
	if len(got) != 4 {
		t.Fatalf("ShardControls() = %+v, want 4 shards", got)
	}
	want := []shardedqueue.ShardControl{
		{Name: "a", Control: queue.Control{Rate: 4, Burst: 9}},
		{Name: "b", Control: queue.Control{Rate: 4, Burst: 3, Paused: true}},
		{Name: "c", Control: queue.Control{Rate: 4}, Err: boom},
	}
	if diff := cmp.Diff(want, got[:3], cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) || errors.Is(b, a) })); diff != "" {
		t.Errorf("ShardControls() (-want +got):\n%s", diff)
	}
	if got[3].Name != "d" || !errors.Is(got[3].Err, errors.ErrUnsupported) {
		t.Errorf("ShardControls()[3] = %+v, want d with an ErrUnsupported error", got[3])
	}
}

func TestStats_aggregates(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 3, 5)
	fakes[0].stats = queue.Stats{Backlog: 10, InFlight: 2, OldestAge: 3 * time.Second}
	fakes[1].stats = queue.Stats{Backlog: 5, InFlight: 1, OldestAge: 9 * time.Second}
	fakes[2].stats = queue.Stats{}
	got, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if diff := cmp.Diff(queue.Stats{Backlog: 15, InFlight: 3, OldestAge: 9 * time.Second}, got); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
	boom := errors.New("boom")
	fakes[1].err = boom
	got, err = q.Stats(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "events-1") || got != (queue.Stats{}) {
		t.Errorf("Stats with shard 1 failing = %+v, %v, want zero Stats and an error naming events-1", got, err)
	}
}

func TestShardStats(t *testing.T) {
	t.Parallel()
	ok := newFake(4)
	ok.stats = queue.Stats{Backlog: 7, InFlight: 1, OldestAge: 2 * time.Second}
	boom := errors.New("boom")
	broken := newFake(4)
	broken.err = boom
	q, err := shardedqueue.New([]shardedqueue.Shard{
		{Name: "a", Queue: ok},
		{Name: "b", Queue: broken},
		{Name: "c", Queue: onlyQueue{newFake(4)}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got := q.ShardStats(context.Background())
	if len(got) != 3 {
		t.Fatalf("ShardStats() = %+v, want 3 shards", got)
	}
	if got[0] != (queue.ShardStat{Name: "a", Stats: ok.stats}) {
		t.Errorf("ShardStats()[0] = %+v, want a with %+v", got[0], ok.stats)
	}
	if got[1].Name != "b" || !errors.Is(got[1].Err, boom) || got[1].Stats != (queue.Stats{}) {
		t.Errorf("ShardStats()[1] = %+v, want b with zero Stats and its error", got[1])
	}
	if got[2].Name != "c" || !errors.Is(got[2].Err, errors.ErrUnsupported) {
		t.Errorf("ShardStats()[2] = %+v, want c with an ErrUnsupported error", got[2])
	}
}

func TestUnsupported_touchesNoShard(t *testing.T) {
	t.Parallel()
	f := newFake(5)
	q, err := shardedqueue.New([]shardedqueue.Shard{
		{Name: "events", Queue: f},
		{Name: "events-1", Queue: onlyQueue{newFake(5)}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	ops := map[string]func() error{
		"SetRate": func() error { return q.SetRate(ctx, 10, queue.ByOperator) },
		"Pause":   func() error { return q.Pause(ctx, queue.ByOperator) },
		"Resume":  func() error { return q.Resume(ctx, queue.ByOperator) },
		"Control": func() error { _, err := q.Control(ctx); return err },
		"Stats":   func() error { _, err := q.Stats(ctx); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "events-1") {
			t.Errorf("%s = %v, want ErrUnsupported naming shard events-1", name, err)
		}
	}
	if got := f.control(); got != (queue.Control{Rate: 5}) {
		t.Errorf("the capable shard = %+v, want untouched", got)
	}
}

func TestNew_rejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		shards []shardedqueue.Shard
		want   string
	}{
		{name: "none", shards: nil, want: "at least one shard"},
		{name: "no queue", shards: []shardedqueue.Shard{{Name: "a"}}, want: "has no queue"},
		{name: "no name", shards: []shardedqueue.Shard{{Queue: newFake(1)}}, want: "has no name"},
		{name: "same name", shards: []shardedqueue.Shard{{Name: "a", Queue: newFake(1)}, {Name: "a", Queue: newFake(1)}}, want: "used twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := shardedqueue.New(tc.shards); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigs(t *testing.T) {
	t.Parallel()
	base := queue.Config{
		Name: "events", MaxDispatchesPerSecond: 50, MaxBurstSize: 5, MaxConcurrentDispatches: 100,
		DispatchDeadline: 30 * time.Second,
		Retry:            queue.RetryConfig{MaxAttempts: 100, MinBackoff: time.Second, MaxBackoff: time.Minute, MaxDoublings: 16},
	}
	type split struct {
		Name        string
		Rate        float64
		Burst, Conc int
	}
	cases := []struct {
		name       string
		burst, con int
		n          int
		want       []split
	}{
		{name: "one shard keeps the config", burst: 5, con: 100, n: 1, want: []split{{"events", 50, 5, 100}}},
		{name: "shares sum to the total", burst: 5, con: 100, n: 3, want: []split{
			{"events", 50.0 / 3, 2, 34}, {"events-1", 50.0 / 3, 2, 33}, {"events-2", 50.0 / 3, 1, 33},
		}},
		{name: "below N each shard still gets 1", burst: 1, con: 2, n: 3, want: []split{
			{"events", 50.0 / 3, 1, 1}, {"events-1", 50.0 / 3, 1, 1}, {"events-2", 50.0 / 3, 1, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = tc.burst, tc.con
			var got []split
			for _, c := range shardedqueue.Configs(cfg, tc.n) {
				if err := c.Validate(); err != nil {
					t.Errorf("shard config %s invalid: %v", c.Name, err)
				}
				if c.DispatchDeadline != cfg.DispatchDeadline || c.Retry != cfg.Retry {
					t.Errorf("shard config %s changed the deadline or retry policy: %+v", c.Name, c)
				}
				got = append(got, split{c.Name, c.MaxDispatchesPerSecond, c.MaxBurstSize, c.MaxConcurrentDispatches})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Configs (-want +got):\n%s", diff)
			}
		})
	}
}
