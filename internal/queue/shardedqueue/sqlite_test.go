package shardedqueue_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// sqliteShardCount is how many embedded queues the conformance suite
// shards over.
const sqliteShardCount = 3

// sqliteRun is one embedded queue with its Run loop.
type sqliteRun struct {
	q      *sqlitequeue.Queue
	path   string
	cfg    queue.Config
	target string
	cancel context.CancelFunc
	done   chan error
}

// startSQLite opens an embedded queue on path and runs it until the test
// ends.
func startSQLite(t testing.TB, path string, cfg queue.Config, target string) *sqliteRun {
	t.Helper()
	ctx := logging.WithLogger(context.Background(), slog.New(slog.DiscardHandler))
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: cfg, Target: target})
	if err != nil {
		t.Fatalf("sqlitequeue.New(%s): %v", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &sqliteRun{q: q, path: path, cfg: cfg, target: target, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- q.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run gracefully and closes the queue; safe after crash.
func (r *sqliteRun) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run %s: %v", r.path, err)
	}
	r.done <- nil
	if err := r.q.Close(); err != nil {
		t.Errorf("Close %s: %v", r.path, err)
	}
}

// crash closes the database under Run and its deliveries, as kill -9
// would as far as the file is concerned.
func (r *sqliteRun) crash(t testing.TB) {
	t.Helper()
	if err := r.q.Close(); err != nil {
		t.Errorf("Close %s: %v", r.path, err)
	}
	r.cancel()
	<-r.done
	r.done <- nil
}

var (
	sqliteRunsMu sync.Mutex
	sqliteRuns   = map[*shardedqueue.Queue][]*sqliteRun{}
)

// newSQLiteSharded returns a sharded queue over n embedded queues, each its
// own file in a fresh directory, configured by shardedqueue.Configs(cfg, n)
// and POSTing to target.
func newSQLiteSharded(t testing.TB, cfg queue.Config, n int, target string) *shardedqueue.Queue {
	t.Helper()
	dir := t.TempDir()
	var runs []*sqliteRun
	for _, c := range shardedqueue.Configs(cfg, n) {
		runs = append(runs, startSQLite(t, filepath.Join(dir, c.Name+".db"), c, target))
	}
	return shardedOf(t, runs)
}

// shardedOf returns the sharded queue over runs and remembers them for
// Restart.
func shardedOf(t testing.TB, runs []*sqliteRun) *shardedqueue.Queue {
	t.Helper()
	var shards []shardedqueue.Shard
	for _, r := range runs {
		shards = append(shards, shardedqueue.Shard{Name: r.cfg.Name, Queue: r.q})
	}
	q, err := shardedqueue.New(shards)
	if err != nil {
		t.Fatalf("shardedqueue.New: %v", err)
	}
	sqliteRunsMu.Lock()
	sqliteRuns[q] = runs
	sqliteRunsMu.Unlock()
	return q
}

// TestConformance_sqlite runs the conformance suite over three embedded
// queues, with the adaptations harness_test.go lists.
func TestConformance_sqlite(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, cfg queue.Config, target string) queue.Queue {
			return newSQLiteSharded(t, cfg, sqliteShardCount, shardProxy(t, cfg.Name, sqliteShardCount, target))
		},
		Restart: func(t *testing.T, q queue.Queue) queue.Queue {
			sqliteRunsMu.Lock()
			old := sqliteRuns[q.(*shardedqueue.Queue)]
			sqliteRunsMu.Unlock()
			var runs []*sqliteRun
			for _, r := range old {
				r.crash(t)
				runs = append(runs, startSQLite(t, r.path, r.cfg, r.target))
			}
			return shardedOf(t, runs)
		},
		Capabilities: capabilities(queuetest.All),
	})
}

// shardTarget is a target that records, per shard (X-CloudTasks-QueueName),
// the task names in the order they arrived, and answers as respond says.
type shardTarget struct {
	srv     *httptest.Server
	respond func(r *http.Request, task string, n int) (status int, retryAfter string)

	mu      sync.Mutex
	order   map[string][]string // shard -> task names in arrival order
	arrived map[string][]time.Time
	status  map[string][]int
}

func newShardTarget(t testing.TB, respond func(r *http.Request, task string, n int) (int, string)) *shardTarget {
	t.Helper()
	st := &shardTarget{respond: respond, order: map[string][]string{}, arrived: map[string][]time.Time{}, status: map[string][]int{}}
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		_, _ = io.Copy(io.Discard, r.Body)
		shard, task := r.Header.Get(queue.HeaderQueueName), r.Header.Get(queue.HeaderTaskName)
		st.mu.Lock()
		n := len(st.arrived[task])
		st.order[shard] = append(st.order[shard], task)
		st.arrived[task] = append(st.arrived[task], at)
		st.mu.Unlock()
		status, retryAfter := http.StatusOK, ""
		if st.respond != nil {
			status, retryAfter = st.respond(r, task, n)
		}
		st.mu.Lock()
		st.status[task] = append(st.status[task], status)
		st.mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(st.srv.Close)
	return st
}

func (st *shardTarget) URL() string { return st.srv.URL + "/tasks" }

// delivered returns when task was first answered 200, and whether it was.
func (st *shardTarget) delivered(task string) (time.Time, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, s := range st.status[task] {
		if s == http.StatusOK {
			return st.arrived[task][i], true
		}
	}
	return time.Time{}, false
}

func (st *shardTarget) arrivals(task string) []time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.arrived[task])
}

// namesOnShard returns count task names that ShardOf maps to shard i of n.
func namesOnShard(prefix string, i, n, count int) []string {
	var out []string
	for k := 0; len(out) < count; k++ {
		name := fmt.Sprintf("%s-%03d", prefix, k)
		if queue.ShardOf(name, n) == i {
			out = append(out, name)
		}
	}
	return out
}

// TestFIFO_withinAShard shows the order a sharded queue keeps in place of
// the suite's FIFO check: with one dispatch at a time per shard and each
// shard's first delivery held until every task is queued, each shard
// delivers its own tasks in enqueue order.
func TestFIFO_withinAShard(t *testing.T) {
	t.Parallel()
	const n = 3
	gate := make(chan struct{})
	var mu sync.Mutex
	held := map[string]bool{}
	tg := newShardTarget(t, func(r *http.Request, _ string, _ int) (int, string) {
		shard := r.Header.Get(queue.HeaderQueueName)
		mu.Lock()
		first := !held[shard]
		held[shard] = true
		mu.Unlock()
		if first {
			<-gate
		}
		return http.StatusOK, ""
	})
	cfg := queuetest.Config()
	cfg.Name = "fifo"
	cfg.MaxConcurrentDispatches = n // one per shard
	q := newSQLiteSharded(t, cfg, n, tg.URL())
	want := map[string][]string{}
	for i := range 30 {
		name := fmt.Sprintf("fifo-%03d", i)
		if err := q.Enqueue(context.Background(), queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue(%s): %v", name, err)
		}
		shard := q.ShardFor(name).Name
		want[shard] = append(want[shard], name)
	}
	close(gate)
	testutil.WaitFor(t, 30*time.Second, "every delivery", func() bool {
		tg.mu.Lock()
		defer tg.mu.Unlock()
		got := 0
		for _, o := range tg.order {
			got += len(o)
		}
		return got >= 30
	})
	if len(want) != n {
		t.Fatalf("30 tasks on %d shards, want all %d used: the check would not show anything", len(want), n)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if diff := cmp.Diff(want, tg.order); diff != "" {
		t.Errorf("delivery order per shard (-want +got):\n%s", diff)
	}
}

// TestRetryAfter_pausesOnlyItsShard shows what a sharded queue does in
// place of the suite's RetryAfter check: a 429 with Retry-After pauses the
// shard that got it (a second task there waits too), and no other shard (a
// task there is delivered while the first shard is still paused).
func TestRetryAfter_pausesOnlyItsShard(t *testing.T) {
	t.Parallel()
	const n, pauseSeconds = 2, 3
	same := namesOnShard("ra", 0, n, 2)
	first, second := same[0], same[1]
	other := namesOnShard("ra", 1, n, 1)[0]
	tg := newShardTarget(t, func(_ *http.Request, task string, k int) (int, string) {
		if task == first && k == 0 {
			return http.StatusTooManyRequests, fmt.Sprint(pauseSeconds)
		}
		return http.StatusOK, ""
	})
	cfg := queuetest.Config()
	cfg.Name = "retry-after"
	cfg.MaxConcurrentDispatches = n // one per shard: second goes after first's answer
	cfg.Retry.MaxBackoff = 10 * time.Second
	q := newSQLiteSharded(t, cfg, n, tg.URL())
	ctx := context.Background()
	for _, name := range []string{first, second} {
		if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue(%s): %v", name, err)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "the 429", func() bool { return len(tg.arrivals(first)) >= 1 })
	if err := q.Enqueue(ctx, queue.Task{Name: other, Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue(%s): %v", other, err)
	}
	testutil.WaitFor(t, 30*time.Second, "every delivery", func() bool {
		_, a := tg.delivered(first)
		_, b := tg.delivered(second)
		_, c := tg.delivered(other)
		return a && b && c
	})
	start := tg.arrivals(first)[0]
	for _, name := range []string{first, second} {
		if at, _ := tg.delivered(name); at.Sub(start) < pauseSeconds*time.Second {
			t.Errorf("%s (shard 0) delivered %v after the 429 with Retry-After: %d, want >= %ds", name, at.Sub(start), pauseSeconds, pauseSeconds)
		}
	}
	// Ordering, not speed: other was enqueued after the 429, and goes
	// before the paused shard's second task.
	atOther, _ := tg.delivered(other)
	atSecond, _ := tg.delivered(second)
	if !atOther.Before(atSecond) {
		t.Errorf("%s (shard 1) delivered at %v, after %s on the paused shard 0 (%v): the pause held another shard", other, atOther.Format(time.StampMilli), second, atSecond.Format(time.StampMilli))
	}
}
