package wiring_test

import (
	"context"
	"crypto/rand"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/event"
	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/testutil"
	"eventrelay/internal/wiring"
)

// config reads the dispatcher's configuration from env, with a target URL.
func config(t *testing.T, env map[string]string) wiring.DispatcherConfig {
	t.Helper()
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["TARGET_URL"] = "http://127.0.0.1:1/graphql"
	var c wiring.DispatcherConfig
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

// nopStore is a status store the dispatcher is built with; these tests
// never deliver.
type nopStore struct{ status.Store }

// parts are a dispatcher's parts; OpenDispatcher sets all but the store
// from the configuration.
func parts() wiring.DispatcherParts {
	return wiring.DispatcherParts{
		Config: dispatcher.Config{Brand: "b", TargetURL: "http://127.0.0.1:1/graphql", TargetTimeout: time.Second},
		Retry:  queue.RetryConfig{MaxAttempts: 5, MinBackoff: time.Second, MaxBackoff: time.Minute},
		Store:  nopStore{},
	}
}

// recordingQueue is a queue that notes the tasks enqueued.
type recordingQueue struct {
	queue.Queue
	tasks []queue.Task
}

func (q *recordingQueue) Enqueue(_ context.Context, t queue.Task) error {
	q.tasks = append(q.tasks, t)
	return nil
}

func TestOpenDispatcherWithoutDispatchURL(t *testing.T) {
	t.Parallel()
	c := config(t, nil)
	a, err := wiring.OpenDispatcher(t.Context(), c, parts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.Server == nil || a.Governor != nil || a.Requeue != nil || a.Reconciler != nil {
		t.Errorf("opened without DISPATCH_URL: server %v, governor %v, requeue %v, reconciler %v; want a server only", a.Server, a.Governor, a.Requeue, a.Reconciler)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestOpenDispatcherEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := config(t, map[string]string{
		"QUEUE_DB":                        filepath.Join(dir, "queue.db"),
		"DISPATCH_URL":                    "http://127.0.0.1:8081/tasks/events",
		"QUEUE_MAX_DISPATCHES_PER_SECOND": "25",
		"QUEUE_GOVERNOR_WINDOW":           "1s",
	})
	a, err := wiring.OpenDispatcher(t.Context(), c, parts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if a.Server == nil || a.Governor == nil || a.Requeue == nil || a.Reconciler == nil {
		t.Fatalf("opened: server %v, governor %v, requeue %v, reconciler %v; want all set", a.Server, a.Governor, a.Requeue, a.Reconciler)
	}
	// RECONCILE_* is read with the dispatcher's configuration, once.
	if got := a.Reconciler.Config(); got.Grace != 15*time.Minute || got.Policy != reconcile.PolicyRequeue {
		t.Errorf("reconciler config = %+v, want the env tags' defaults", got)
	}
	// The requeue queue is the embedded engine: a task enqueued lands in
	// the file ingest's process dispatches from.
	if err := a.Requeue.Enqueue(t.Context(), queue.Task{Name: queue.TaskName("e") + "-q1", Body: []byte(`{}`)}); err != nil {
		t.Errorf("Enqueue: %v", err)
	}
	// One look at the queue: the configured rate is the ceiling.
	if s := runFirstLook(t, a); s.Ceiling != 25 || !s.Leader || !s.Enabled || s.Queue != filepath.Join(dir, "queue.db") {
		t.Errorf("snapshot = %+v, want the configured 25/s as ceiling, leading, on, named by its file", s)
	}
}

// TestOpenDispatcherEmbeddedShards: over QUEUE_SHARDS=2 files one governor
// governs the total (the configured 24/s is its ceiling and the live rate
// it reads, each shard running 12/s), named by shard 0's file; a requeue
// lands on the shard ShardOf picks.
func TestOpenDispatcherEmbeddedShards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := config(t, map[string]string{
		"QUEUE_DB":                        filepath.Join(dir, "queue.db"),
		"QUEUE_SHARDS":                    "2",
		"DISPATCH_URL":                    "http://127.0.0.1:8081/tasks/events",
		"QUEUE_MAX_DISPATCHES_PER_SECOND": "24",
		"QUEUE_GOVERNOR_WINDOW":           "1s",
	})
	a, err := wiring.OpenDispatcher(t.Context(), c, parts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if a.Governor == nil || a.Requeue == nil || a.Reconciler == nil {
		t.Fatalf("opened: governor %v, requeue %v, reconciler %v; want all set", a.Governor, a.Requeue, a.Reconciler)
	}
	name := queue.TaskName("e") + "-q1"
	if err := a.Requeue.Enqueue(t.Context(), queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	q, err := engines.OpenEnqueuer(t.Context(), c.Engines, "", "")
	if err != nil {
		t.Fatalf("OpenEnqueuer: %v", err)
	}
	defer q.Close()
	for i, sh := range q.Shards.Shards() {
		exists, err := sh.Queue.(queue.Inspector).TaskExists(t.Context(), name)
		if want := i == queue.ShardOf(name, 2); err != nil || exists != want {
			t.Errorf("shard %s holds the requeued task = %v, %v; want %v", sh.Name, exists, err, want)
		}
	}
	if a.Balancer == nil || a.Balancer.Interval() != engines.DefaultShardBalanceInterval {
		t.Errorf("balancer = %v, want one every %v (the embedded default)", a.Balancer, engines.DefaultShardBalanceInterval)
	}
	if s := runFirstLook(t, a); s.Ceiling != 24 || s.Live.Rate != 24 || !s.Leader || s.Queue != filepath.Join(dir, "queue.db") {
		t.Errorf("snapshot = %+v, want the total 24/s as ceiling and live rate, leading, named by shard 0's file", s)
	}
}

// TestOpenDispatcherEmbeddedBalancer: QUEUE_SHARD_BALANCE_INTERVAL=off
// leaves the shards at their equal split; one shard runs no balancer.
func TestOpenDispatcherEmbeddedBalancer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{name: "off", env: map[string]string{"QUEUE_SHARDS": "2", "QUEUE_SHARD_BALANCE_INTERVAL": "off"}},
		{name: "one shard", env: map[string]string{"QUEUE_SHARDS": "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"QUEUE_DB": filepath.Join(t.TempDir(), "queue.db"), "DISPATCH_URL": "http://127.0.0.1:8081/tasks/events"}
			maps.Copy(env, tc.env)
			a, err := wiring.OpenDispatcher(t.Context(), config(t, env), parts())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			if a.Governor == nil || a.Balancer != nil {
				t.Errorf("governor %v, balancer %v; want a governor and no balancer", a.Governor, a.Balancer)
			}
		})
	}
}

// shardControl is one shard's queue in memory: its rate and its backlog,
// counting the backlog reads (only the balancer reads them).
type shardControl struct {
	fixedControl
	backlog int64
	stats   atomic.Int64
}

func (c *shardControl) Enqueue(context.Context, queue.Task) error { return nil }

func (c *shardControl) Stats(context.Context) (queue.Stats, error) {
	c.stats.Add(1)
	return queue.Stats{Backlog: c.backlog}, nil
}

func (c *shardControl) Control(ctx context.Context) (queue.Control, error) {
	return c.fixedControl.Control(ctx)
}

// TestNewDispatcherBalancesWhileLeading runs a dispatcher over two
// shards whose governor takes a lease: the balancer leaves the shards
// alone while another instance holds it, and re-splits the total by
// backlog once this one does, keeping the total.
func TestNewDispatcherBalancesWhileLeading(t *testing.T) {
	t.Parallel()
	busy, idle := &shardControl{fixedControl: fixedControl{rate: 5}, backlog: 100}, &shardControl{fixedControl: fixedControl{rate: 5}}
	sq, err := shardedqueue.New([]shardedqueue.Shard{{Name: "events", Queue: busy}, {Name: "events-1", Queue: idle}},
		shardedqueue.WithBalance(shardedqueue.BalanceConfig{Interval: 5 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	lease := &switchLease{}
	p := parts()
	p.Governor = governor.Options{Control: sq, Config: governor.Config{Window: 5 * time.Millisecond},
		Lease: lease, Holder: "me", Partial: true}
	d, err := wiring.NewDispatcher(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if d.Balancer == nil {
		t.Fatal("no balancer over a sharded queue with WithBalance")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	// The governor asks for the lease every window; while it is another
	// instance's, the balancer reads nothing.
	testutil.WaitFor(t, 10*time.Second, "a few windows without the lease", func() bool {
		return lease.n.Load() >= 10
	})
	if n := busy.stats.Load(); n != 0 {
		t.Fatalf("the balancer read the backlog %d times without the lease", n)
	}
	lease.held.Store(true)
	testutil.WaitFor(t, 10*time.Second, "the leader to balance", func() bool {
		c, _ := busy.Control(t.Context())
		return c.Rate > 5
	})
	b, _ := busy.Control(t.Context())
	i, _ := idle.Control(t.Context())
	if got := b.Rate + i.Rate; got < 10-1e-9 || got > 10+1e-9 {
		t.Errorf("rates %v + %v = %v after balancing, want the total 10", b.Rate, i.Rate, got)
	}
}

func TestOpenDispatcherRejectsABadGovernorConfig(t *testing.T) {
	t.Parallel()
	c := config(t, map[string]string{"DISPATCH_URL": "http://127.0.0.1:8081/tasks/events", "QUEUE_GOVERNOR": "sometimes"})
	if _, err := wiring.OpenDispatcher(t.Context(), c, parts()); err == nil || !strings.Contains(err.Error(), "QUEUE_GOVERNOR") {
		t.Errorf("OpenDispatcher = %v, want a QUEUE_GOVERNOR error", err)
	}
}

// TestOpenDispatcherCloudTasks opens against the emulators: the Cloud Tasks queue is the
// requeue queue and the controller, and the governor takes the Firestore
// lease and the live rate as its ceiling.
func TestOpenDispatcherCloudTasks(t *testing.T) {
	t.Parallel()
	name := "gov-" + strings.ToLower(rand.Text()[:10])
	a := openCloudTasks(t, "us-central1", name, nil)
	if a.Server == nil || a.Governor == nil || a.Requeue == nil {
		t.Fatalf("opened: server %v, governor %v, requeue %v; want all set", a.Server, a.Governor, a.Requeue)
	}
	want := "projects/eventrelay-test/locations/us-central1/queues/" + name
	if s := runFirstLook(t, a); !s.Leader || s.Ceiling != 7 || s.Live.Rate != 7 || s.Queue != want {
		t.Errorf("snapshot = %+v, want the lease held, the live 7/s as ceiling and the queue named %s", s, want)
	}
	if a.Governor.Snapshot().Leader {
		t.Error("the stopped governor still claims the lease")
	}
}

// TestOpenDispatcherCloudTasksShards: over QUEUE_SHARDS=2 queues the lease
// and the governor are named by the base queue (shard 0), so one governor
// leads the region's shards, and it reads their total rate (2 x 3.5/s).
func TestOpenDispatcherCloudTasksShards(t *testing.T) {
	t.Parallel()
	name := "gov-" + strings.ToLower(rand.Text()[:10])
	a := openCloudTasks(t, "us-central1", name, map[string]string{"QUEUE_SHARDS": "2"})
	want := "projects/eventrelay-test/locations/us-central1/queues/" + name
	if s := runFirstLook(t, a); !s.Leader || s.Ceiling != 7 || s.Live.Rate != 7 || s.Queue != want {
		t.Errorf("snapshot = %+v, want the lease held, the live total 7/s as ceiling and the base queue named %s", s, want)
	}
}

// TestOpenDispatcherTwoRegions opens the dispatchers of two regions (ADR 0006): each
// region's queue has the same short name in its own location. Each
// region's governor must lead its own queue, at the same time; two
// dispatchers of one region must still share one lease.
func TestOpenDispatcherTwoRegions(t *testing.T) {
	t.Parallel()
	name := "gov-" + strings.ToLower(rand.Text()[:10])
	// A 1 s window holds the lease 3 s: a slow emulator does not make a
	// holder's lease lapse between two renewals.
	env := map[string]string{"QUEUE_GOVERNOR_WINDOW": "1s"}
	primary := openCloudTasks(t, "us-central1", name, env)
	secondary := openCloudTasks(t, "europe-west1", name, env)
	primary2 := openCloudTasks(t, "us-central1", name, env)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 3)
	for _, a := range []*wiring.Dispatcher{primary, secondary, primary2} {
		go func() { done <- a.Run(ctx) }()
	}
	leads := func(a *wiring.Dispatcher) bool {
		s := a.Governor.Snapshot()
		return s.Leader && !s.LiveAt.IsZero()
	}
	// Watch for at least three windows, and until both regions led at
	// once.
	var bothRegions, twoInPrimary bool
	start := time.Now()
	for time.Since(start) < 30*time.Second && !(bothRegions && time.Since(start) > 3*time.Second) {
		p, p2, s := leads(primary), leads(primary2), leads(secondary)
		twoInPrimary = twoInPrimary || (p && p2)
		bothRegions = bothRegions || ((p || p2) && s)
		time.Sleep(20 * time.Millisecond)
	}
	snaps := []governor.Snapshot{primary.Governor.Snapshot(), primary2.Governor.Snapshot(), secondary.Governor.Snapshot()}
	cancel()
	for range 3 {
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	if !bothRegions {
		t.Errorf("the two regions' governors never led their own queues at the same time (they share a lease?); snapshots %+v", snaps)
	}
	if twoInPrimary {
		t.Error("two governors of the same queue led at once")
	}
}

// openCloudTasks creates the queue name in location on the Cloud Tasks
// emulator (7/s) and opens a dispatcher against it, with extra env on top.
func openCloudTasks(t *testing.T, location, name string, extra map[string]string) *wiring.Dispatcher {
	t.Helper()
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	env := map[string]string{
		"QUEUE_ENGINE":                    engines.CloudTasks,
		"GOOGLE_CLOUD_PROJECT":            "eventrelay-test",
		"QUEUE_LOCATION":                  location,
		"CLOUD_TASKS_EMULATOR_HOST":       tasks,
		"TASKS_SERVICE_ACCOUNT":           "invoker@eventrelay-test.iam.gserviceaccount.com",
		"QUEUE_NAME":                      name,
		"QUEUE_MAX_DISPATCHES_PER_SECOND": "7",
		"DISPATCH_URL":                    "http://127.0.0.1:1/tasks/events",
		"GOVERNOR_LEASE_COLLECTION":       "governor-test",
	}
	maps.Copy(env, extra)
	c := config(t, env)
	// The queue must exist for the governor to read it.
	q, err := engines.OpenQueue(t.Context(), c.Engines, c.Queue, c.DispatchURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureQueues(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()

	a, err := wiring.OpenDispatcher(t.Context(), c, parts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// runFirstLook runs the governor until it has read the queue once (or
// failed to), then stops it. It returns the snapshot taken while the
// governor ran (a stopped governor no longer claims the lease).
func runFirstLook(t *testing.T, a *wiring.Dispatcher) governor.Snapshot {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var s governor.Snapshot
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s = a.Governor.Snapshot(); !s.LiveAt.IsZero() || s.Err != "" {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if s.Err != "" {
		t.Fatalf("the governor's first look failed: %s", s.Err)
	}
	return s
}

// TestNewDispatcherWiresTheParts delivers a task on its last attempt to a
// dispatcher built by NewDispatcher, with a target that rate limits: the
// delivery passes Authenticate, the event is requeued into the queue given,
// and the governor is told the verdict.
func TestNewDispatcherWiresTheParts(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(target.Close)
	store, err := sqlitestatus.Open(t.Context(), filepath.Join(t.TempDir(), "status.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	q := &recordingQueue{}
	var authenticated atomic.Int32
	p := parts()
	p.Config.TargetURL, p.Store, p.Requeue = target.URL+"/graphql", store, q
	p.Authenticate = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			authenticated.Add(1)
			next.ServeHTTP(w, r)
		})
	}
	p.Governor = governor.Options{Control: &fixedControl{rate: 10}, Config: governor.Config{Window: 50 * time.Millisecond, MinAttempts: 1}}
	d, err := wiring.NewDispatcher(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if d.Governor == nil || d.Requeue != q {
		t.Fatalf("built: governor %v, requeue %v; want the governor and the queue given", d.Governor, d.Requeue)
	}
	srv := httptest.NewServer(d.Server.Routes(t.Context()))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+dispatcher.TaskPath,
		strings.NewReader(`{"id":"e","name":"n","body":"b","timestamp":"2026-01-02T03:04:05Z"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CloudTasks-TaskName", queue.TaskName("e"))
	req.Header.Set("X-CloudTasks-TaskRetryCount", "4") // the fifth of 5 attempts
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || authenticated.Load() != 1 || len(q.tasks) != 1 {
		t.Errorf("answer %d, authenticated %d times, %d tasks requeued; want 200, 1, 1", resp.StatusCode, authenticated.Load(), len(q.tasks))
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testutil.WaitFor(t, 10*time.Second, "the governor to judge the rate-limited call", func() bool {
		return d.Governor.Snapshot().Last.RateLimited == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// fixedControl is a queue's dispatch controls at a fixed rate.
type fixedControl struct {
	mu   sync.Mutex
	rate float64
}

func (c *fixedControl) Control(context.Context) (queue.Control, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return queue.Control{Rate: c.rate}, nil
}

func (c *fixedControl) SetRate(_ context.Context, rate float64, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rate = rate
	return nil
}

func (c *fixedControl) Pause(context.Context, string) error  { return nil }
func (c *fixedControl) Resume(context.Context, string) error { return nil }

// TestNewDispatcherReconcilesWhileLeading runs a dispatcher whose governor
// takes a lease: its reconciler leaves a record whose task vanished alone
// while another instance holds the lease, and requeues it once this one
// does.
func TestNewDispatcherReconcilesWhileLeading(t *testing.T) {
	t.Parallel()
	store := testutil.EmbeddedStatus(t)
	ev := event.Event{ID: "lost", Name: "n", Body: "b", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if _, err := store.Create(t.Context(), status.Record{EventID: "lost", Event: ev, ReceivedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	q := &inspectedQueue{}
	lease := &switchLease{}
	p := parts()
	p.Store, p.Requeue, p.Inspector = store, q, q
	p.Reconcile = reconcile.Config{Grace: time.Minute, Interval: 5 * time.Millisecond, Policy: reconcile.PolicyRequeue, PageSize: 10, ChecksPerSecond: 1000}
	p.Governor = governor.Options{Control: &fixedControl{rate: 10}, Config: governor.Config{Window: 5 * time.Millisecond},
		Lease: lease, Holder: "me", Partial: true}
	d, err := wiring.NewDispatcher(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	time.Sleep(200 * time.Millisecond) // some 40 intervals, none leading
	if _, ran := d.Reconciler.Snapshot(); ran || len(q.names()) != 0 {
		t.Fatalf("the reconciler ran (%v) or enqueued %v without the lease", ran, q.names())
	}
	lease.held.Store(true)
	testutil.WaitFor(t, 10*time.Second, "the leader to requeue the lost event", func() bool { return len(q.names()) == 1 })
	if got := q.names()[0]; got != queue.TaskName("lost")+"-q1" {
		t.Errorf("requeued as %s, want the next name of its chain", got)
	}
}

// inspectedQueue holds the tasks enqueued; only those exist.
type inspectedQueue struct {
	mu    sync.Mutex
	tasks []string
}

func (q *inspectedQueue) Enqueue(_ context.Context, t queue.Task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, n := range q.tasks {
		if n == t.Name {
			return queue.ErrAlreadyExists
		}
	}
	q.tasks = append(q.tasks, t.Name)
	return nil
}

func (q *inspectedQueue) TaskExists(_ context.Context, name string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, n := range q.tasks {
		if n == name {
			return true, nil
		}
	}
	return false, nil
}

func (q *inspectedQueue) names() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.tasks...)
}

// switchLease is held by this instance while held is true, else by another.
type switchLease struct {
	held atomic.Bool
	n    atomic.Int64 // Acquire calls
}

func (l *switchLease) Acquire(context.Context, string, time.Time, time.Duration) (governor.State, bool, error) {
	l.n.Add(1)
	return governor.State{}, l.held.Load(), nil
}
func (l *switchLease) Save(context.Context, string, governor.State) error { return nil }
func (l *switchLease) Release(context.Context, string) error              { return nil }
