package engines_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/engines"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/testutil"
)

func load(t *testing.T, env map[string]string) engines.Config {
	t.Helper()
	var c engines.Config
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatalf("load config: %v", err)
	}
	return c
}

func TestDefaultsAreEmbedded(t *testing.T) {
	t.Parallel()
	c := load(t, nil)
	if c.QueueEngine != engines.SQLite || c.StatusEngine != engines.SQLite || c.StatusTTL != 720*time.Hour {
		t.Errorf("defaults = %+v, want sqlite engines and a 30-day TTL", c)
	}
	if err := c.ValidateQueue("http://127.0.0.1:8081/tasks/events"); err != nil {
		t.Errorf("default queue config invalid: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"unknown engines", map[string]string{"QUEUE_ENGINE": "pubsub", "STATUS_ENGINE": "redis"}, []string{"QUEUE_ENGINE must be", "STATUS_ENGINE must be"}},
		{"cloud tasks without its settings", map[string]string{"QUEUE_ENGINE": "cloudtasks"}, []string{"GOOGLE_CLOUD_PROJECT and QUEUE_LOCATION", "TASKS_SERVICE_ACCOUNT"}},
		{"negative ttl", map[string]string{"STATUS_ENGINE": "firestore", "STATUS_TTL": "-1h"}, []string{"STATUS_TTL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, tc.env)
			err := errors.Join(c.ValidateQueue("http://x/tasks/events"), c.ValidateStatus())
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("validation error %v does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOpenEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db"), "STATUS_DB": filepath.Join(dir, "s.db")})
	store, err := engines.OpenStatus(t.Context(), c)
	if err != nil {
		t.Fatalf("OpenStatus: %v", err)
	}
	defer store.Close()
	q, err := engines.OpenQueue(t.Context(), c, queuetestConfig(), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer q.Close()
	if q.Run == nil {
		t.Error("the embedded queue must come with its dispatch loop")
	}
	if q.Controller == nil {
		t.Error("the embedded queue must come with its Controller")
	}
}

func TestOpenGCP(t *testing.T) {
	t.Parallel()
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	c := load(t, map[string]string{
		"QUEUE_ENGINE": "cloudtasks", "STATUS_ENGINE": "firestore", "GOOGLE_CLOUD_PROJECT": "eventrelay-test",
		"QUEUE_LOCATION": "us-central1", "CLOUD_TASKS_EMULATOR_HOST": tasks,
		"TASKS_SERVICE_ACCOUNT": "tasks@eventrelay-test.iam.gserviceaccount.com", "FIRESTORE_COLLECTION": "engines-test",
	})
	store, err := engines.OpenStatus(t.Context(), c)
	if err != nil {
		t.Fatalf("OpenStatus: %v", err)
	}
	defer store.Close()
	if _, err := store.Counts(t.Context()); err != nil {
		t.Errorf("Firestore store does not answer: %v", err)
	}
	q, err := engines.OpenQueue(t.Context(), c, queuetestConfig(), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer q.Close()
	if q.Run != nil {
		t.Error("Cloud Tasks delivers by itself: no dispatch loop expected")
	}
	if q.Controller == nil {
		t.Error("the Cloud Tasks queue must come with its Controller")
	}
}

func TestOpenController_embedded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	c := load(t, map[string]string{"QUEUE_DB": path})
	if _, err := engines.OpenController(t.Context(), c, "events"); err == nil || !strings.Contains(err.Error(), "no queue at") {
		t.Errorf("OpenController on a missing file = %v, want a 'no queue at' error (nothing created)", err)
	}
	owner, err := engines.OpenQueue(t.Context(), c, queuetestConfig(), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer owner.Close()

	ctl, err := engines.OpenController(t.Context(), c, "events")
	if err != nil {
		t.Fatalf("OpenController: %v", err)
	}
	defer ctl.Close()
	if err := ctl.SetRate(t.Context(), 3, queue.ByOperator); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	// The owner sees the operator's change (Control reads the shared row).
	got, err := owner.Controller.Control(t.Context())
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if got.Rate != 3 || got.By != queue.ByOperator {
		t.Errorf("owner's Control() = %+v, want rate 3 by %s", got, queue.ByOperator)
	}
}

func TestOpenController_invalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "unknown engine", env: map[string]string{"QUEUE_ENGINE": "pubsub"}, want: "QUEUE_ENGINE must be"},
		{name: "no file name", env: map[string]string{"QUEUE_DB": ""}, want: "QUEUE_DB is required"},
		{name: "cloud tasks without its settings", env: map[string]string{"QUEUE_ENGINE": "cloudtasks"}, want: "GOOGLE_CLOUD_PROJECT, QUEUE_LOCATION"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, tc.env)
			if c.QueueEngine == engines.SQLite {
				c.QueueDB = tc.env["QUEUE_DB"]
			}
			_, err := engines.OpenController(t.Context(), c, "events")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenController = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestOpenController_gcp(t *testing.T) {
	t.Parallel()
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	c := load(t, map[string]string{
		"QUEUE_ENGINE": "cloudtasks", "GOOGLE_CLOUD_PROJECT": "eventrelay-test", "QUEUE_LOCATION": "us-central1",
		"CLOUD_TASKS_EMULATOR_HOST": tasks,
	})
	cfg := queuetestConfig()
	cfg.Name = "engines-control-" + strings.ReplaceAll(time.Now().UTC().Format("150405.000000000"), ".", "-")
	admin, err := cloudtasksqueue.New(t.Context(), cloudtasksqueue.Options{Project: c.Project, Location: c.QueueLocation,
		Queue: cfg.Name, Target: "http://127.0.0.1:1/tasks/events", DispatchDeadline: cfg.DispatchDeadline, Endpoint: tasks})
	if err != nil {
		t.Fatalf("cloudtasksqueue.New: %v", err)
	}
	defer admin.Close()
	if err := admin.EnsureQueue(t.Context(), cfg); err != nil {
		t.Fatalf("EnsureQueue: %v", err)
	}
	ctl, err := engines.OpenController(t.Context(), c, cfg.Name)
	if err != nil {
		t.Fatalf("OpenController without a service account: %v", err)
	}
	defer ctl.Close()
	got, err := ctl.Control(t.Context())
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	// The emulator keeps max(burst-2, 1) and delivers 2 more: Control
	// reports what it delivers, 3 for a burst of 1.
	if got != (queue.Control{Rate: cfg.MaxDispatchesPerSecond, Burst: 3}) {
		t.Errorf("Control() = %+v, want rate %v, burst 3, running", got, cfg.MaxDispatchesPerSecond)
	}
}

func queuetestConfig() queue.Config {
	return queue.Config{Name: "events", MaxDispatchesPerSecond: 10, MaxBurstSize: 1, MaxConcurrentDispatches: 10,
		DispatchDeadline: 15 * time.Second, Retry: queue.RetryConfig{MaxAttempts: 5, MinBackoff: time.Second, MaxBackoff: time.Minute}}
}

func TestSetPair(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pair, queue, status string }{
		{engines.Embedded, engines.SQLite, engines.SQLite},
		{engines.GCP, engines.CloudTasks, engines.Firestore},
	} {
		var c engines.Config
		if err := c.SetPair(tc.pair); err != nil || c.QueueEngine != tc.queue || c.StatusEngine != tc.status {
			t.Errorf("SetPair(%q) = %v, engines %q and %q; want %q and %q", tc.pair, err, c.QueueEngine, c.StatusEngine, tc.queue, tc.status)
		}
	}
	var c engines.Config
	if err := c.SetPair("aws"); err == nil || !strings.Contains(err.Error(), `unknown engine "aws"`) {
		t.Errorf("SetPair(aws) = %v, want an unknown engine error", err)
	}
}

// TestOpenExisting opens the embedded engines another process owns: a
// missing file is reported and not created; an existing one is opened, and
// a task enqueued through the enqueue-only handle is the owner's to deliver.
func TestOpenExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db"), "STATUS_DB": filepath.Join(dir, "s.db")})
	if _, err := engines.OpenExistingStatus(t.Context(), c); err == nil || !strings.Contains(err.Error(), "no status store at") {
		t.Errorf("OpenExistingStatus on a missing file = %v, want a 'no status store at' error", err)
	}
	if _, err := engines.OpenEnqueuer(t.Context(), c, "events", ""); err == nil || !strings.Contains(err.Error(), "no queue at") {
		t.Errorf("OpenEnqueuer on a missing file = %v, want a 'no queue at' error", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
		t.Fatalf("files created by the failed opens: %v", files)
	}

	owner, err := engines.OpenQueue(t.Context(), c, queuetestConfig(), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer owner.Close()
	store, err := engines.OpenStatus(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	_ = store.Close()

	existing, err := engines.OpenExistingStatus(t.Context(), c)
	if err != nil {
		t.Fatalf("OpenExistingStatus: %v", err)
	}
	_ = existing.Close()
	enq, err := engines.OpenEnqueuer(t.Context(), c, queuetestConfig().Name, "")
	if err != nil {
		t.Fatalf("OpenEnqueuer: %v", err)
	}
	defer enq.Close()
	if enq.Run != nil {
		t.Error("an enqueue-only handle has no dispatch loop")
	}
	if err := enq.Enqueue(t.Context(), queue.Task{Name: queue.TaskName("e1"), Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	stats, err := owner.Queue.(queue.StatsReader).Stats(t.Context())
	if err != nil || stats.Backlog != 1 {
		t.Errorf("owner's stats = %+v, %v; want the task enqueued through the handle", stats, err)
	}
}

// TestOpenEmbedded_queueToken: the embedded queue puts Config.QueueToken's
// token on each delivery, as Cloud Tasks puts its OIDC token.
func TestOpenEmbedded_queueToken(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("Authorization"):
		default:
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	c := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db")})
	c.QueueToken = func(context.Context) (string, error) { return "queue-token", nil }
	q, err := engines.OpenQueue(t.Context(), c, queuetestConfig(), srv.URL+"/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer q.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := q.Enqueue(t.Context(), queue.Task{Name: "evt-1", Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	select {
	case h := <-got:
		if h != "Bearer queue-token" {
			t.Errorf("Authorization = %q, want %q", h, "Bearer queue-token")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
}

// TestQueueDBShard: shard 0 keeps QUEUE_DB; the others put -<i> before the
// extension.
func TestQueueDBShard(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, db string
		i        int
		want     string
	}{
		{"shard 0 keeps the file", "/d/queue.db", 0, "/d/queue.db"},
		{"shard 3", "/d/queue.db", 3, "/d/queue-3.db"},
		{"no extension", "/d/queue", 1, "/d/queue-1"},
		{"a dot in the directory", "/d.x/queue", 2, "/d.x/queue-2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := (engines.Config{QueueDB: tc.db}).QueueDBShard(tc.i); got != tc.want {
				t.Errorf("QueueDBShard(%d) of %q = %q, want %q", tc.i, tc.db, got, tc.want)
			}
		})
	}
}

func TestValidate_queueShards(t *testing.T) {
	t.Parallel()
	if got := load(t, nil).QueueShards; got != 1 {
		t.Errorf("QUEUE_SHARDS default = %d, want 1", got)
	}
	c := load(t, map[string]string{"QUEUE_SHARDS": "0"})
	if err := c.ValidateQueue("http://x/tasks/events"); err == nil || !strings.Contains(err.Error(), "QUEUE_SHARDS") {
		t.Errorf("ValidateQueue with QUEUE_SHARDS=0 = %v, want an error naming QUEUE_SHARDS", err)
	}
	if _, err := engines.OpenController(t.Context(), c, "events"); err == nil || !strings.Contains(err.Error(), "QUEUE_SHARDS") {
		t.Errorf("OpenController with QUEUE_SHARDS=0 = %v, want an error naming QUEUE_SHARDS", err)
	}
}

// TestShardBalance: QUEUE_SHARD_BALANCE_INTERVAL defaults to 1 s on the
// embedded engine and to off on Cloud Tasks; 0 and off turn it off; a
// bad value is a validation error naming the variable.
func TestShardBalance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{name: "embedded default", env: nil, want: time.Second},
		{name: "cloud tasks default", env: map[string]string{"QUEUE_ENGINE": "cloudtasks"}, want: 0},
		{name: "cloud tasks on", env: map[string]string{"QUEUE_ENGINE": "cloudtasks", "QUEUE_SHARD_BALANCE_INTERVAL": "30s"}, want: 30 * time.Second},
		{name: "embedded off", env: map[string]string{"QUEUE_SHARD_BALANCE_INTERVAL": "off"}, want: 0},
		{name: "embedded zero", env: map[string]string{"QUEUE_SHARD_BALANCE_INTERVAL": "0"}, want: 0},
		{name: "embedded 250ms", env: map[string]string{"QUEUE_SHARD_BALANCE_INTERVAL": "250ms"}, want: 250 * time.Millisecond},
		{name: "bad", env: map[string]string{"QUEUE_SHARD_BALANCE_INTERVAL": "often"}, wantErr: true},
		{name: "negative", env: map[string]string{"QUEUE_SHARD_BALANCE_INTERVAL": "-1s"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := load(t, tc.env)
			got, err := c.ShardBalance()
			if tc.wantErr {
				verr := c.ValidateQueue("http://x/tasks/events")
				if err == nil || verr == nil || !strings.Contains(verr.Error(), "QUEUE_SHARD_BALANCE_INTERVAL") {
					t.Errorf("ShardBalance = %v, ValidateQueue = %v; want errors naming QUEUE_SHARD_BALANCE_INTERVAL", err, verr)
				}
				return
			}
			if err != nil || got.Interval != tc.want {
				t.Errorf("ShardBalance = %+v, %v; want interval %v", got, err, tc.want)
			}
		})
	}
}

// TestOpenEmbedded_shards: with QUEUE_SHARDS=3 the embedded queue is three
// files, shard 0 in QUEUE_DB; each task is delivered by the shard ShardOf
// picks (X-CloudTasks-QueueName), by the one Run; SetRate sets the total,
// which every shard's file carries a third of, as relayctl's controller
// handle reads them; an enqueue-only handle routes as the owner does.
func TestOpenEmbedded_shards(t *testing.T) {
	t.Parallel()
	const n = 3
	type delivery struct{ task, queue string }
	got := make(chan delivery, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- delivery{r.Header.Get(queue.HeaderTaskName), r.Header.Get(queue.HeaderQueueName)}
	}))
	defer srv.Close()
	dir := t.TempDir()
	c := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db"), "QUEUE_SHARDS": "3"})
	qc := queuetestConfig()
	qc.MaxDispatchesPerSecond = 300
	q, err := engines.OpenQueue(t.Context(), c, qc, srv.URL+"/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer q.Close()
	for _, f := range []string{"q.db", "q-1.db", "q-2.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("shard file %s: %v", f, err)
		}
	}
	if q.Shards == nil || q.Shards.Len() != n || q.Run == nil || q.Inspector == nil || q.Stats == nil || q.Controller == nil {
		t.Fatalf("OpenQueue = %+v, want a sharded queue of %d with Run, Inspector, Stats and Controller", q, n)
	}
	if q.Name != c.QueueDB {
		t.Errorf("Name = %q, want shard 0's file %q", q.Name, c.QueueDB)
	}
	if b := q.Shards.NewBalancer(nil); b == nil || b.Interval() != engines.DefaultShardBalanceInterval {
		t.Errorf("the sharded queue's balancer = %v, want one every %v (QUEUE_SHARD_BALANCE_INTERVAL's embedded default)", b, engines.DefaultShardBalanceInterval)
	}

	enq, err := engines.OpenEnqueuer(t.Context(), c, qc.Name, "")
	if err != nil {
		t.Fatalf("OpenEnqueuer: %v", err)
	}
	defer enq.Close()
	want := map[string]string{}
	for i := range 12 {
		name := queue.TaskName(strconv.Itoa(i))
		want[name] = queue.ShardName(qc.Name, queue.ShardOf(name, n))
		into := q.Queue
		if i%2 == 1 {
			into = enq.Queue
		}
		if err := into.Enqueue(t.Context(), queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	if s, err := q.Stats.Stats(t.Context()); err != nil || s.Backlog != 12 {
		t.Errorf("Stats = %+v, %v; want a backlog of 12 over the shards", s, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for range want {
		select {
		case d := <-got:
			if d.queue != want[d.task] {
				t.Errorf("task %s delivered by %q, want its shard %q", d.task, d.queue, want[d.task])
			}
		case <-time.After(10 * time.Second):
			t.Fatal("not every task delivered within 10s")
		}
	}

	if err := q.Controller.SetRate(t.Context(), 30, queue.ByOperator); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	ctl, err := engines.OpenController(t.Context(), c, qc.Name)
	if err != nil {
		t.Fatalf("OpenController: %v", err)
	}
	defer ctl.Close()
	if got, err := ctl.Control(t.Context()); err != nil || got.Rate != 30 {
		t.Errorf("total Control = %+v, %v; want rate 30", got, err)
	}
	if ctl.Shards == nil {
		t.Fatal("the controller handle of a sharded queue has no Shards")
	}
	for i, sc := range ctl.Shards.ShardControls(t.Context()) {
		if sc.Err != nil || sc.Control.Rate != 10 || sc.Name != queue.ShardName(qc.Name, i) {
			t.Errorf("shard %d = %+v, want %s at 10/s", i, sc, queue.ShardName(qc.Name, i))
		}
	}
}

// TestOpenController_shardMissing: a sharded handle needs every shard's
// file, and reports the missing one.
func TestOpenController_shardMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db")})
	owner, err := engines.OpenQueue(t.Context(), one, queuetestConfig(), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	defer owner.Close()
	two := load(t, map[string]string{"QUEUE_DB": filepath.Join(dir, "q.db"), "QUEUE_SHARDS": "2"})
	if _, err := engines.OpenController(t.Context(), two, "events"); err == nil || !strings.Contains(err.Error(), "q-1.db") {
		t.Errorf("OpenController over 2 shards with one file = %v, want an error naming q-1.db", err)
	}
}
