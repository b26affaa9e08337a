package dispatchgov_test

import (
	"context"
	"crypto/rand"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/governor"
	"eventrelay/internal/governor/dispatchgov"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// config reads the engines' and dispatchgov's configuration from env.
func config(t *testing.T, env map[string]string) (engines.Config, dispatchgov.Config) {
	t.Helper()
	var c struct {
		Engines engines.Config
		Guard   dispatchgov.Config
	}
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c.Engines, c.Guard
}

// nopStore is a status store the dispatcher is built with; Arm never uses it.
type nopStore struct{ status.Store }

func newServer(t *testing.T) *dispatcher.Server {
	t.Helper()
	srv, err := dispatcher.NewServer(t.Context(), dispatcher.Config{
		Brand: "b", TargetURL: "http://127.0.0.1:1/graphql", TargetTimeout: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 5, MinBackoff: time.Second, MaxBackoff: time.Minute},
	}, nopStore{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestArmWithoutDispatchURL(t *testing.T) {
	t.Parallel()
	ec, c := config(t, nil)
	srv := newServer(t)
	a, err := dispatchgov.Arm(t.Context(), ec, c, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.Governor != nil || srv.Requeue != nil || srv.Observer != nil {
		t.Errorf("armed without DISPATCH_URL: governor %v, requeue %v, observer %v; want none", a.Governor, srv.Requeue, srv.Observer)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := a.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestArmEmbedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ec, c := config(t, map[string]string{
		"QUEUE_DB":                        filepath.Join(dir, "queue.db"),
		"DISPATCH_URL":                    "http://127.0.0.1:8081/tasks/events",
		"QUEUE_MAX_DISPATCHES_PER_SECOND": "25",
		"QUEUE_GOVERNOR_WINDOW":           "1s",
	})
	srv := newServer(t)
	a, err := dispatchgov.Arm(t.Context(), ec, c, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if a.Governor == nil || srv.Requeue == nil || srv.Observer == nil {
		t.Fatalf("armed: governor %v, requeue %v, observer %v; want all set", a.Governor, srv.Requeue, srv.Observer)
	}
	// The requeue queue is the embedded engine: a task enqueued lands in
	// the file ingest's process dispatches from.
	if err := srv.Requeue.Enqueue(t.Context(), queue.Task{Name: queue.TaskName("e") + "-q1", Body: []byte(`{}`)}); err != nil {
		t.Errorf("Enqueue: %v", err)
	}
	// One look at the queue: the configured rate is the ceiling.
	if s := runFirstLook(t, a); s.Ceiling != 25 || !s.Leader || !s.Enabled || s.Queue != filepath.Join(dir, "queue.db") {
		t.Errorf("snapshot = %+v, want the configured 25/s as ceiling, leading, on, named by its file", s)
	}
}

func TestArmRejectsABadGovernorConfig(t *testing.T) {
	t.Parallel()
	ec, c := config(t, map[string]string{"DISPATCH_URL": "http://127.0.0.1:8081/tasks/events", "QUEUE_GOVERNOR": "sometimes"})
	if _, err := dispatchgov.Arm(t.Context(), ec, c, newServer(t), nil); err == nil || !strings.Contains(err.Error(), "QUEUE_GOVERNOR") {
		t.Errorf("Arm = %v, want a QUEUE_GOVERNOR error", err)
	}
}

// TestArmCloudTasks arms against the emulators: the Cloud Tasks queue is the
// requeue queue and the controller, and the governor takes the Firestore
// lease and the live rate as its ceiling.
func TestArmCloudTasks(t *testing.T) {
	t.Parallel()
	name := "gov-" + strings.ToLower(rand.Text()[:10])
	srv := newServer(t)
	a := armCloudTasks(t, srv, "us-central1", name, nil)
	if a.Governor == nil || srv.Requeue == nil || srv.Observer == nil {
		t.Fatalf("armed: governor %v, requeue %v, observer %v; want all set", a.Governor, srv.Requeue, srv.Observer)
	}
	want := "projects/eventrelay-test/locations/us-central1/queues/" + name
	if s := runFirstLook(t, a); !s.Leader || s.Ceiling != 7 || s.Live.Rate != 7 || s.Queue != want {
		t.Errorf("snapshot = %+v, want the lease held, the live 7/s as ceiling and the queue named %s", s, want)
	}
	if a.Governor.Snapshot().Leader {
		t.Error("the stopped governor still claims the lease")
	}
}

// TestArmTwoRegions arms the dispatchers of two regions (ADR 0006): each
// region's queue has the same short name in its own location. Each
// region's governor must lead its own queue, at the same time; two
// dispatchers of one region must still share one lease.
func TestArmTwoRegions(t *testing.T) {
	t.Parallel()
	name := "gov-" + strings.ToLower(rand.Text()[:10])
	// A 1 s window holds the lease 3 s: a slow emulator does not make a
	// holder's lease lapse between two renewals.
	env := map[string]string{"QUEUE_GOVERNOR_WINDOW": "1s"}
	primary := armCloudTasks(t, newServer(t), "us-central1", name, env)
	secondary := armCloudTasks(t, newServer(t), "europe-west1", name, env)
	primary2 := armCloudTasks(t, newServer(t), "us-central1", name, env)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 3)
	for _, a := range []*dispatchgov.Armed{primary, secondary, primary2} {
		go func() { done <- a.Run(ctx) }()
	}
	leads := func(a *dispatchgov.Armed) bool {
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

// armCloudTasks creates the queue name in location on the Cloud Tasks
// emulator (7/s) and arms srv against it, with extra env on top.
func armCloudTasks(t *testing.T, srv *dispatcher.Server, location, name string, extra map[string]string) *dispatchgov.Armed {
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
	ec, c := config(t, env)
	// The queue must exist for the governor to read it.
	q, err := engines.OpenQueue(t.Context(), ec, c.Queue, c.DispatchURL)
	if err != nil {
		t.Fatal(err)
	}
	ensure, ok := q.Queue.(interface {
		EnsureQueue(context.Context, queue.Config) error
	})
	if !ok {
		t.Fatal("the Cloud Tasks engine has no EnsureQueue")
	}
	if err := ensure.EnsureQueue(t.Context(), c.Queue); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()

	a, err := dispatchgov.Arm(t.Context(), ec, c, srv, nil)
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
func runFirstLook(t *testing.T, a *dispatchgov.Armed) governor.Snapshot {
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
