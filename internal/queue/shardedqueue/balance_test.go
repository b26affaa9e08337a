package shardedqueue_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/testutil"
)

func sum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b)) }

func TestSplit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		total   float64
		backlog []int64
		floor   float64
		want    []float64
	}{
		{name: "no backlog: equal", total: 200, backlog: []int64{0, 0, 0, 0}, floor: 0.2, want: []float64{50, 50, 50, 50}},
		{name: "even backlog: equal", total: 200, backlog: []int64{10, 10, 10, 10}, floor: 0.2, want: []float64{50, 50, 50, 50}},
		{name: "all on one shard: the others keep the floor", total: 200, backlog: []int64{100, 0, 0, 0}, floor: 0.2, want: []float64{170, 10, 10, 10}},
		{name: "proportional", total: 100, backlog: []int64{30, 10}, floor: 0.2, want: []float64{70, 30}},
		{name: "floor 1: equal whatever the backlog", total: 90, backlog: []int64{9, 0, 0}, floor: 1, want: []float64{30, 30, 30}},
		{name: "floor 0: backlog only", total: 90, backlog: []int64{2, 1, 0}, floor: 0, want: []float64{60, 30, 0}},
		{name: "negative backlog counts as zero", total: 10, backlog: []int64{-5, 5}, floor: 0, want: []float64{0, 10}},
		{name: "one shard", total: 7, backlog: []int64{3}, floor: 0.2, want: []float64{7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := shardedqueue.Split(tc.total, tc.backlog, tc.floor)
			if len(got) != len(tc.want) {
				t.Fatalf("Split = %v, want %v", got, tc.want)
			}
			for i := range got {
				if !near(got[i], tc.want[i]) {
					t.Errorf("Split(%v, %v, %v) = %v, want %v", tc.total, tc.backlog, tc.floor, got, tc.want)
					break
				}
			}
			if !near(sum(got), tc.total) {
				t.Errorf("Split sums to %v, want the total %v", sum(got), tc.total)
			}
		})
	}
}

// FuzzSplit: the rates always sum to the total and none is below the floor.
func FuzzSplit(f *testing.F) {
	f.Add(200.0, int64(1030), int64(990), int64(1000), int64(980), 0.2)
	f.Add(1.0, int64(0), int64(0), int64(5), int64(0), 0.0)
	f.Fuzz(func(t *testing.T, total float64, a, b, c, d int64, floor float64) {
		if !(total > 0) || total > 1e6 || math.IsNaN(floor) || a > 1<<40 || b > 1<<40 || c > 1<<40 || d > 1<<40 {
			return
		}
		got := shardedqueue.Split(total, []int64{a, b, c, d}, floor)
		if !near(sum(got), total) {
			t.Errorf("Split sums to %v, want %v (%v)", sum(got), total, got)
		}
		fl := min(max(floor, 0), 1)
		for i, r := range got {
			if r < total*fl/4*(1-1e-9) {
				t.Errorf("rate %d = %v, below the floor %v", i, r, total*fl/4)
			}
		}
	})
}

// skewed returns a sharded queue over n fakes at rate each, with the given
// backlogs.
func skewed(t testing.TB, rate float64, backlog ...int64) (*shardedqueue.Queue, []*fake) {
	t.Helper()
	q, fakes := newSharded(t, len(backlog), rate)
	for i, b := range backlog {
		fakes[i].stats.Backlog = b
	}
	return q, fakes
}

func rates(fakes []*fake) []float64 {
	out := make([]float64, len(fakes))
	for i, f := range fakes {
		out[i] = f.control().Rate
	}
	return out
}

func sets(fakes []*fake) int {
	n := 0
	for _, f := range fakes {
		f.mu.Lock()
		n += f.sets
		f.mu.Unlock()
	}
	return n
}

func TestBalance_splitsTheTotalByBacklog(t *testing.T) {
	t.Parallel()
	q, fakes := skewed(t, 50, 300, 100, 0, 0)
	// The operator set the total last: the re-split stays theirs.
	fakes[1].ctl.By, fakes[1].ctl.At = queue.ByOperator, time.Now()
	res, err := q.Balance(context.Background(), shardedqueue.BalanceConfig{Floor: 0.2})
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	want := []float64{200 * (0.8*0.75 + 0.05), 200 * (0.8*0.25 + 0.05), 10, 10}
	got := rates(fakes)
	for i := range want {
		if !near(got[i], want[i]) {
			t.Fatalf("rates after Balance = %v, want %v", got, want)
		}
	}
	// Shard 1's share is already its 50/s: it is not written.
	if res.Total != 200 || res.Wrote != 3 || res.By != "operator+balancer" {
		t.Errorf("Balance = %+v, want total 200, 3 written, by operator+balancer", res)
	}
	if by := fakes[0].control().By; by != "operator+balancer" {
		t.Errorf("shard 0's change by %q, want operator+balancer", by)
	}
	ctl, err := q.Control(context.Background())
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if ctl.Rate != 200 || ctl.By != queue.ByOperator {
		t.Errorf("Control() after Balance = %+v, want rate 200 (the total, unchanged) by %s", ctl, queue.ByOperator)
	}
}

func TestBalance_writesOnlyMaterialChanges(t *testing.T) {
	t.Parallel()
	q, fakes := skewed(t, 50, 1000, 1000, 1000, 1000)
	ctx := context.Background()
	if _, err := q.Balance(ctx, shardedqueue.BalanceConfig{}); err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if n := sets(fakes); n != 0 {
		t.Errorf("an even backlog at an equal split wrote %d rates, want 0", n)
	}
	// A 1 % skew moves the targets by less than the threshold (2 % of a
	// share): nothing is written.
	fakes[0].stats.Backlog = 1010
	if _, err := q.Balance(ctx, shardedqueue.BalanceConfig{}); err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if n := sets(fakes); n != 0 {
		t.Errorf("a 1%% skew wrote %d rates, want 0", n)
	}
	// Shard 0 well above: it and the others move.
	fakes[0].stats.Backlog = 2000
	if _, err := q.Balance(ctx, shardedqueue.BalanceConfig{}); err != nil {
		t.Fatalf("Balance: %v", err)
	}
	first := sets(fakes)
	if first == 0 {
		t.Fatalf("a 2x skew wrote nothing")
	}
	if got := sum(rates(fakes)); !near(got, 200) {
		t.Errorf("rates %v sum to %v, want 200", rates(fakes), got)
	}
	// The same backlogs again: the split is already right.
	if _, err := q.Balance(ctx, shardedqueue.BalanceConfig{}); err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if n := sets(fakes) - first; n != 0 {
		t.Errorf("a second pass over the same backlogs wrote %d rates, want 0", n)
	}
}

func TestBalance_someShardsKeptTheSumStaysTheTotal(t *testing.T) {
	t.Parallel()
	// Shards 2 and 3 are within the threshold of their targets and are
	// kept; 0 and 1 move and absorb the kept shards' small deviations.
	q, fakes := newSharded(t, 4, 0)
	for i, r := range []float64{40, 60, 50.5, 49.5} {
		fakes[i].ctl.Rate = r
	}
	for i, b := range []int64{150, 50, 100, 100} { // targets 58, 42, 50, 50 (floor 0.2)
		fakes[i].stats.Backlog = b
	}
	res, err := q.Balance(context.Background(), shardedqueue.BalanceConfig{Threshold: 0.05})
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	got := rates(fakes)
	if res.Wrote != 2 || got[2] != 50.5 || got[3] != 49.5 {
		t.Errorf("rates %v (%d written), want shards 2 and 3 kept at 50.5 and 49.5, 2 written", got, res.Wrote)
	}
	if !near(sum(got), 200) {
		t.Errorf("rates %v sum to %v, want the total 200", got, sum(got))
	}
	if !(got[0] > got[1]) {
		t.Errorf("rates %v: shard 0 (3x the backlog of shard 1) is not faster", got)
	}
}

func TestBalance_adoptsATotalSetElsewhere(t *testing.T) {
	t.Parallel()
	q, fakes := skewed(t, 50, 300, 100, 0, 0)
	ctx := context.Background()
	if _, err := q.Balance(ctx, shardedqueue.BalanceConfig{}); err != nil {
		t.Fatalf("Balance: %v", err)
	}
	// Another process (relayctl queue rate 100) sets the total through
	// its own sharded queue over the same shards.
	other, err := shardedqueue.New(q.Shards())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := other.SetRate(ctx, 100, queue.ByOperator); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	fakes[0].stats.Backlog, fakes[1].stats.Backlog = 100, 300
	res, err := q.Balance(ctx, shardedqueue.BalanceConfig{})
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if got := sum(rates(fakes)); !near(got, 100) || res.Total != 100 || res.By != "operator+balancer" {
		t.Errorf("after the operator's 100/s: rates %v (sum %v), Balance %+v; want the total 100 kept, by operator+balancer", rates(fakes), got, res)
	}
	if got := rates(fakes); !(got[1] > got[0]) {
		t.Errorf("rates %v: shard 1 now holds the most and is not the fastest", got)
	}
}

func TestBalance_leavesAPausedQueueAlone(t *testing.T) {
	t.Parallel()
	q, fakes := skewed(t, 50, 300, 0)
	fakes[1].ctl.Paused = true
	res, err := q.Balance(context.Background(), shardedqueue.BalanceConfig{})
	if err != nil || res.Skipped == "" {
		t.Fatalf("Balance = %+v, %v; want skipped", res, err)
	}
	if n := sets(fakes); n != 0 {
		t.Errorf("a paused queue got %d rates written", n)
	}
}

func TestBalance_failures(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name   string
		breaks func(fakes []*fake)
	}{
		{name: "a backlog unreadable", breaks: func(f []*fake) { f[2].statsErr = boom }},
		{name: "a rate unreadable", breaks: func(f []*fake) { f[2].err = boom }},
		{name: "a rate write refused", breaks: func(f []*fake) { f[0].setErr = boom }},
		{name: "a rate write refused after the others", breaks: func(f []*fake) { f[3].setErr = boom }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, fakes := skewed(t, 50, 300, 100, 0, 0)
			tc.breaks(fakes)
			if _, err := q.Balance(context.Background(), shardedqueue.BalanceConfig{}); err == nil {
				t.Fatalf("Balance succeeded, want an error")
			}
			for _, f := range fakes {
				f.err = nil
			}
			if got := rates(fakes); !slicesEqual(got, []float64{50, 50, 50, 50}) {
				t.Errorf("rates after a failed pass = %v, want every shard back at 50 (the total kept)", got)
			}
		})
	}
}

func slicesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestSetRate_keepsTheProportions(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 4, 0)
	for i, r := range []float64{80, 40, 40, 40} {
		fakes[i].ctl.Rate = r
	}
	if err := q.SetRate(context.Background(), 100, queue.ByGovernor); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	if got, want := rates(fakes), []float64{40, 20, 20, 20}; !slicesEqual(got, want) {
		t.Errorf("rates after SetRate(100) from 80/40/40/40 = %v, want %v", got, want)
	}
	// Each shard says its share is a re-split of the governor's total;
	// the queue reports the governor.
	if by := fakes[0].control().By; by != "governor+balancer" {
		t.Errorf("shard 0's change by %q, want governor+balancer", by)
	}
	if ctl, err := q.Control(context.Background()); err != nil || ctl.By != queue.ByGovernor || !near(ctl.Rate, 100) {
		t.Errorf("Control() = %+v, %v; want 100/s by %s", ctl, err, queue.ByGovernor)
	}
	// A shard that cannot be read: an equal split (which it refuses).
	fakes[3].err = errors.New("boom")
	if err := q.SetRate(context.Background(), 200, queue.ByGovernor); err == nil {
		t.Fatalf("SetRate with shard 3 failing succeeded")
	}
	if got, want := rates(fakes)[:3], []float64{50, 50, 50}; !slicesEqual(got, want) {
		t.Errorf("rates after SetRate(200) with a shard unreadable = %v, want an equal split %v", got, want)
	}
}

func TestBalancedBy(t *testing.T) {
	t.Parallel()
	cases := []struct{ by, balanced, author string }{
		{by: queue.ByGovernor, balanced: "governor+balancer", author: queue.ByGovernor},
		{by: "governor+balancer", balanced: "governor+balancer", author: queue.ByGovernor},
		{by: queue.ByOperator, balanced: "operator+balancer", author: queue.ByOperator},
		{by: "", balanced: shardedqueue.ByBalancer, author: ""},
		{by: shardedqueue.ByBalancer, balanced: shardedqueue.ByBalancer, author: shardedqueue.ByBalancer},
	}
	for _, tc := range cases {
		if got := shardedqueue.BalancedBy(tc.by); got != tc.balanced {
			t.Errorf("BalancedBy(%q) = %q, want %q", tc.by, got, tc.balanced)
		}
		if got := shardedqueue.Author(tc.by); got != tc.author {
			t.Errorf("Author(%q) = %q, want %q", tc.by, got, tc.author)
		}
	}
}

func TestEqualize(t *testing.T) {
	t.Parallel()
	q, fakes := newSharded(t, 4, 0)
	for i, r := range []float64{80, 40, 40, 40} {
		fakes[i].ctl.Rate = r
		fakes[i].ctl.By = "governor+balancer"
	}
	n, err := q.Equalize(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("Equalize = %d, %v; want 4 written", n, err)
	}
	if got := rates(fakes); !slicesEqual(got, []float64{50, 50, 50, 50}) {
		t.Errorf("rates after Equalize = %v, want 50 each", got)
	}
	if by := fakes[0].control().By; by != queue.ByGovernor {
		t.Errorf("an equal split by %q, want the total's author %s", by, queue.ByGovernor)
	}
	if n, err := q.Equalize(context.Background()); err != nil || n != 0 {
		t.Errorf("Equalize on an equal split = %d, %v; want nothing written", n, err)
	}
}

// syncBuffer is a log sink safe for the balancer's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), `"msg":"`+msg+`"`)
}

func TestBalancer_logsFailureOnceAndRecovery(t *testing.T) {
	t.Parallel()
	fakes := []*fake{newFake(50), newFake(50)}
	fakes[0].stats.Backlog = 100
	shards := []shardedqueue.Shard{{Name: "events", Queue: fakes[0]}, {Name: "events-1", Queue: fakes[1]}}
	q, err := shardedqueue.New(shards, shardedqueue.WithBalance(shardedqueue.BalanceConfig{Interval: time.Millisecond}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b := q.NewBalancer(nil)
	if b == nil {
		t.Fatal("NewBalancer = nil with an interval set")
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil))))
	fakes[1].mu.Lock()
	fakes[1].err = errors.New("boom")
	fakes[1].mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	reads := func() int {
		fakes[1].mu.Lock()
		defer fakes[1].mu.Unlock()
		return fakes[1].reads
	}
	testutil.WaitFor(t, 10*time.Second, "five failing passes", func() bool { return reads() >= 5 })
	fakes[1].mu.Lock()
	fakes[1].err = nil
	fakes[1].mu.Unlock()
	testutil.WaitFor(t, 10*time.Second, "a pass that balances", func() bool { return sets(fakes) > 0 })
	testutil.WaitFor(t, 10*time.Second, "the recovery logged", func() bool { return logs.count("shard balancing recovered") > 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if n := logs.count("shard balancing failed; the shards keep their rates and it is retried every interval"); n != 1 {
		t.Errorf("%d failure lines over several failing passes, want 1:\n%s", n, logs.b.String())
	}
	if n := logs.count("shard balancing recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	// Run put the shards back to an equal split when it stopped.
	if got := rates(fakes); !slicesEqual(got, []float64{50, 50}) {
		t.Errorf("rates after Run stopped = %v, want an equal split", got)
	}
}

func TestNewBalancer_offByDefault(t *testing.T) {
	t.Parallel()
	q, _ := newSharded(t, 2, 1)
	if b := q.NewBalancer(nil); b != nil {
		t.Errorf("NewBalancer without WithBalance = %v, want nil", b)
	}
}

// TestBalance_sqliteDrainsAtTheTotalRate runs three embedded shards at a
// total of 60/s with every task on shard 0: split equally, shard 0 would
// drain its 120 tasks at 20/s, in 6 s; balanced, it takes most of the
// total and they go in about 120/60 = 2 s plus the first pass. The check
// is that the drain is well under the equal split's 6 s.
func TestBalance_sqliteDrainsAtTheTotalRate(t *testing.T) {
	t.Parallel()
	const (
		n     = 3
		total = 60.0
		tasks = 120
	)
	tg := newShardTarget(t, nil)
	cfg := queue.Config{
		Name: "balance", MaxDispatchesPerSecond: total, MaxBurstSize: n, MaxConcurrentDispatches: 30,
		DispatchDeadline: 10 * time.Second,
		Retry:            queue.RetryConfig{MaxAttempts: -1, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxDoublings: 3},
	}
	dir := t.TempDir()
	var shards []shardedqueue.Shard
	for _, c := range shardedqueue.Configs(cfg, n) {
		r := startSQLite(t, filepath.Join(dir, c.Name+".db"), c, tg.URL())
		shards = append(shards, shardedqueue.Shard{Name: c.Name, Queue: r.q})
	}
	q, err := shardedqueue.New(shards, shardedqueue.WithBalance(shardedqueue.BalanceConfig{Interval: 100 * time.Millisecond}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), slog.New(slog.DiscardHandler)))
	done := make(chan error, 1)
	go func() { done <- q.NewBalancer(nil).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	names := namesOnShard("bal", 0, n, tasks)
	start := time.Now()
	for _, name := range names {
		if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue(%s): %v", name, err)
		}
	}
	var last time.Time
	testutil.WaitFor(t, 30*time.Second, "every delivery", func() bool {
		for _, name := range names {
			at, ok := tg.delivered(name)
			if !ok {
				return false
			}
			if at.After(last) {
				last = at
			}
		}
		return true
	})
	drain := last.Sub(start)
	equal := time.Duration(tasks / (total / n) * float64(time.Second))
	ideal := time.Duration(tasks / total * float64(time.Second))
	t.Logf("%d tasks on one of %d shards at %v/s in total: drain %v; total-rate time %v, equal split's %v", tasks, n, total, drain, ideal, equal)
	if drain > equal*6/10 {
		t.Errorf("drain took %v, want well under the equal split's %v (about the total rate's %v)", drain, equal, ideal)
	}
	ctl, err := q.Control(ctx)
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if !near(ctl.Rate, total) {
		t.Errorf("Control().Rate = %v after balancing, want the total %v", ctl.Rate, total)
	}
}

// TestBalance_sqliteSplitSurvivesACrash: a split of the governor's total
// survives a crash of the embedded shards. Their restart drops a rate
// "governor" set at or above the shard's configured share (the governor
// raised it; the configuration wins), which would cut a balanced shard
// back to its share and lower the total; a re-split names
// "governor+balancer", so the shards keep their rates and the total, and
// the queue still reports the governor.
func TestBalance_sqliteSplitSurvivesACrash(t *testing.T) {
	t.Parallel()
	const n = 2
	cfg := queue.Config{
		Name: "crash-split", MaxDispatchesPerSecond: 20, MaxBurstSize: 2, MaxConcurrentDispatches: 2,
		DispatchDeadline: 10 * time.Second,
		Retry:            queue.RetryConfig{MaxAttempts: -1, MinBackoff: time.Second, MaxBackoff: time.Second},
	}
	tg := newShardTarget(t, nil)
	dir := t.TempDir()
	var runs []*sqliteRun
	for _, c := range shardedqueue.Configs(cfg, n) {
		runs = append(runs, startSQLite(t, filepath.Join(dir, c.Name+".db"), c, tg.URL()))
	}
	q := shardedOf(t, runs)
	ctx := context.Background()
	if err := q.SetRate(ctx, 20, queue.ByGovernor); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	// Pause so the backlog stays put, balance, resume.
	if err := q.Pause(ctx, queue.ByGovernor); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	for _, name := range namesOnShard("crash", 0, n, 20) {
		if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if err := q.Resume(ctx, queue.ByGovernor); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	res, err := q.Balance(ctx, shardedqueue.BalanceConfig{})
	if err != nil || res.Wrote == 0 || !(res.Rates[0] > 10) {
		t.Fatalf("Balance = %+v, %v; want shard 0 above its 10/s share", res, err)
	}
	var again []*sqliteRun
	for _, r := range runs {
		r.crash(t)
		again = append(again, startSQLite(t, r.path, r.cfg, r.target))
	}
	q = shardedOf(t, again)
	ctl, err := q.Control(ctx)
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if !near(ctl.Rate, 20) || ctl.By != queue.ByGovernor {
		t.Errorf("after a crash and restart Control() = %+v, want the total 20/s by %s", ctl, queue.ByGovernor)
	}
	got := q.ShardControls(ctx)
	if !near(got[0].Control.Rate, res.Rates[0]) {
		t.Errorf("shard 0 after the restart runs at %v/s, want the balanced %v/s", got[0].Control.Rate, res.Rates[0])
	}
}

// chatty is an engine queue that logs each rate change through the
// context's logger, at INFO as the embedded engine does, and a warning.
type chatty struct{ *fake }

func (c chatty) SetRate(ctx context.Context, r float64, by string) error {
	logging.FromContext(ctx).InfoContext(ctx, "engine rate changed")
	logging.FromContext(ctx).WarnContext(ctx, "engine warning")
	return c.fake.SetRate(ctx, r, by)
}

// TestBalancer_quietsTheEnginesRateLines: a pass re-splits the rate every
// interval while a backlog drains; the engines' INFO line per shard per
// write would flood the log, their warnings must still show.
func TestBalancer_quietsTheEnginesRateLines(t *testing.T) {
	t.Parallel()
	fakes := []*fake{newFake(50), newFake(50)}
	fakes[0].stats.Backlog = 100
	q, err := shardedqueue.New([]shardedqueue.Shard{{Name: "events", Queue: chatty{fakes[0]}}, {Name: "events-1", Queue: chatty{fakes[1]}}},
		shardedqueue.WithBalance(shardedqueue.BalanceConfig{Interval: time.Millisecond}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil))))
	done := make(chan error, 1)
	go func() { done <- q.NewBalancer(nil).Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, "a pass that balances", func() bool { return sets(fakes) > 0 })
	cancel()
	<-done
	if n := logs.count("engine warning"); n == 0 {
		t.Errorf("the engines' warnings were dropped too:\n%s", logs.b.String())
	}
	// Every write logged one warning; only Equalize's, when Run stops (a
	// plain split), keep their INFO line.
	if n, w := logs.count("engine rate changed"), logs.count("engine warning"); n >= w {
		t.Errorf("%d engine INFO lines for %d writes: the balancing passes' INFO lines were not dropped", n, w)
	}
}
