package sqlitequeue_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// running is a Queue with its Run loop, for the harness.
type running struct {
	q      *sqlitequeue.Queue
	path   string
	cfg    queue.Config
	target string
	cancel context.CancelFunc
	done   chan error
}

var (
	runsMu sync.Mutex
	runs   = map[*sqlitequeue.Queue]*running{}
)

// testLogger logs through t.Log, which keeps failures readable.
func testContext(t testing.TB) context.Context {
	t.Helper()
	l := slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return logging.WithLogger(context.Background(), l)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// start opens a Queue on path and runs it until the test ends.
func start(t testing.TB, path string, o sqlitequeue.Options) *running {
	t.Helper()
	o.Path = path
	ctx := testContext(t)
	q, err := sqlitequeue.New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &running{q: q, path: path, cfg: o.Config, target: o.Target, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- q.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	runsMu.Lock()
	runs[q] = r
	runsMu.Unlock()
	return r
}

// stop ends Run gracefully and closes the queue; safe to call twice.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	r.done <- nil // let a second stop through
	if err := r.q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// crash ends r as kill -9 would as far as the database is concerned: the
// file is closed while Run and its deliveries are still going, so nothing
// they do afterwards is recorded.
func (r *running) crash(t testing.TB) {
	t.Helper()
	if err := r.q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	r.cancel()
	<-r.done
	r.done <- nil
}

func harness() queuetest.Harness {
	return queuetest.Harness{
		New: func(t *testing.T, cfg queue.Config, target string) queue.Queue {
			return start(t, filepath.Join(t.TempDir(), "queue.db"), sqlitequeue.Options{Config: cfg, Target: target}).q
		},
		Restart: func(t *testing.T, q queue.Queue) queue.Queue {
			runsMu.Lock()
			r := runs[q.(*sqlitequeue.Queue)]
			runsMu.Unlock()
			r.crash(t)
			return start(t, r.path, sqlitequeue.Options{Config: r.cfg, Target: r.target}).q
		},
		Capabilities: queuetest.All,
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, harness())
}

// okTarget answers 200 and counts deliveries per task name.
type okTarget struct {
	srv    *httptest.Server
	mu     sync.Mutex
	count  map[string]int
	header http.Header
	hold   chan struct{} // when non-nil, requests wait for it (or their ctx)
}

func newOKTarget(t testing.TB, hold chan struct{}) *okTarget {
	t.Helper()
	tg := &okTarget{count: map[string]int{}, hold: hold}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server see a client go away
		if tg.hold != nil {
			select {
			case <-tg.hold:
			case <-r.Context().Done():
				return
			}
		}
		tg.mu.Lock()
		tg.count[r.Header.Get(queue.HeaderTaskName)]++
		tg.header = r.Header.Clone()
		tg.mu.Unlock()
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *okTarget) delivered() int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.count)
}

// waitTimeout bounds every wait for the queue: a guard against a hang, not
// a speed assertion.
const waitTimeout = 30 * time.Second

func config() queue.Config {
	c := queuetest.Config()
	c.Name = "test"
	return c
}

func TestNew_reopensSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := testContext(t)
	o := sqlitequeue.Options{Path: path, Config: config(), Target: "http://127.0.0.1:1/"}
	q, err := sqlitequeue.New(ctx, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := q.Enqueue(ctx, queue.Task{Name: "a", Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	q, err = sqlitequeue.New(ctx, o)
	if err != nil {
		t.Fatalf("New on an existing file: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	if err := q.Enqueue(ctx, queue.Task{Name: "a", Body: []byte(`{}`)}); !errors.Is(err, queue.ErrAlreadyExists) {
		t.Errorf("Enqueue of a name stored before reopening = %v, want ErrAlreadyExists", err)
	}
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if s.Backlog != 1 {
		t.Errorf("Stats().Backlog = %d after reopening, want 1", s.Backlog)
	}
}

func TestNew_rejectsBadOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := config()
	bad.MaxBurstSize = 0
	cases := []struct {
		name string
		o    sqlitequeue.Options
	}{
		{name: "no path", o: sqlitequeue.Options{Config: config(), Target: "http://x/"}},
		{name: "bad config", o: sqlitequeue.Options{Path: filepath.Join(dir, "a.db"), Config: bad, Target: "http://x/"}},
		{name: "no target", o: sqlitequeue.Options{Path: filepath.Join(dir, "b.db"), Config: config()}},
		{name: "target not http", o: sqlitequeue.Options{Path: filepath.Join(dir, "c.db"), Config: config(), Target: "ftp://x/"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if q, err := sqlitequeue.New(context.Background(), tc.o); err == nil {
				q.Close()
				t.Errorf("New(%+v) = nil error, want one", tc.o)
			}
		})
	}
}

func TestEnqueue_unavailable(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: config(), Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := q.Enqueue(cancelled, queue.Task{Name: "a"}); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Enqueue with a cancelled ctx = %v, want ErrUnavailable", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Enqueue(ctx, queue.Task{Name: "b"}); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Enqueue after Close = %v, want ErrUnavailable", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	tg := newOKTarget(t, hold)
	cfg := config()
	cfg.MaxConcurrentDispatches = 2
	r := start(t, filepath.Join(t.TempDir(), "q.db"), sqlitequeue.Options{Config: cfg, Target: tg.srv.URL})
	ctx := testContext(t)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if err := r.q.Enqueue(ctx, queue.Task{Name: n, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue(%s): %v", n, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	var s queue.Stats
	testutil.WaitFor(t, waitTimeout, "two tasks in flight", func() bool {
		var err error
		if s, err = r.q.Stats(ctx); err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return s.InFlight == 2
	})
	if diff := cmp.Diff(queue.Stats{Backlog: 5, InFlight: 2}, queue.Stats{Backlog: s.Backlog, InFlight: s.InFlight}); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if s.OldestAge < 20*time.Millisecond {
		t.Errorf("Stats().OldestAge = %v, want >= 20ms", s.OldestAge)
	}
	close(hold)
	testutil.WaitFor(t, waitTimeout, "an empty queue", func() bool {
		s, err := r.q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return s == queue.Stats{}
	})
	if got := tg.delivered(); got != 5 {
		t.Errorf("%d tasks delivered, want 5", got)
	}
}

func TestRun_authorizationAndHeaderOverride(t *testing.T) {
	t.Parallel()
	tg := newOKTarget(t, nil)
	o := sqlitequeue.Options{
		Config: config(),
		Target: tg.srv.URL,
		Token:  func(context.Context) (string, error) { return "tok123", nil },
	}
	r := start(t, filepath.Join(t.TempDir(), "q.db"), o)
	ctx := testContext(t)
	// A task cannot forge the queue's own headers.
	err := r.q.Enqueue(ctx, queue.Task{Name: "a", Body: []byte(`{}`), Header: http.Header{
		queue.HeaderTaskName:   {"forged"},
		queue.HeaderRetryCount: {"9"},
		"Content-Type":         {"text/plain"},
	}})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return tg.delivered() == 1 })
	tg.mu.Lock()
	h := tg.header
	tg.mu.Unlock()
	want := map[string]string{"Authorization": "Bearer tok123", queue.HeaderTaskName: "a", queue.HeaderRetryCount: "0", "Content-Type": "application/json"}
	got := map[string]string{}
	for k := range want {
		got[k] = h.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

// TestRun_crashKeepsBackoff checks the two sides of a restart: a task in
// flight at the crash is redelivered at once, although its lease (the
// dispatch deadline, an hour here) has not run out, while a task waiting
// for a retry keeps its backoff.
func TestRun_crashKeepsBackoff(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		attempts = map[string][]time.Time{}
		crashed  bool
	)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := r.Header.Get(queue.HeaderTaskName)
		mu.Lock()
		attempts[n] = append(attempts[n], time.Now())
		after := crashed
		mu.Unlock()
		switch {
		case after:
			w.WriteHeader(http.StatusOK)
		case n == "retrying":
			w.WriteHeader(http.StatusInternalServerError)
		default: // "inflight": hang until the crash
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	cfg := config()
	cfg.DispatchDeadline = time.Hour
	cfg.Retry.MinBackoff, cfg.Retry.MaxBackoff = 2*time.Second, 2*time.Second
	path := filepath.Join(t.TempDir(), "q.db")
	o := sqlitequeue.Options{Config: cfg, Target: srv.URL}
	r := start(t, path, o)
	ctx := testContext(t)
	for _, n := range []string{"retrying", "inflight"} {
		if err := r.q.Enqueue(ctx, queue.Task{Name: n, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue(%s): %v", n, err)
		}
	}
	testutil.WaitFor(t, waitTimeout, "both first attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts["retrying"]) == 1 && len(attempts["inflight"]) == 1
	})
	// "inflight" hangs, so one task in flight means the 500 of "retrying"
	// is recorded: the crash must not catch it still leased.
	testutil.WaitFor(t, waitTimeout, "the retry of the task answered 500 recorded", func() bool {
		s, err := r.q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return s.InFlight == 1
	})
	r.crash(t)
	mu.Lock()
	crashed = true
	mu.Unlock()

	start(t, path, o)
	testutil.WaitFor(t, waitTimeout, "both redeliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts["retrying"]) == 2 && len(attempts["inflight"]) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if gap := attempts["retrying"][1].Sub(attempts["retrying"][0]); gap < cfg.Retry.MinBackoff {
		t.Errorf("retrying task came back %v after its 500, want >= its backoff %v", gap, cfg.Retry.MinBackoff)
	}
}

// TestOneFailingTaskDoesNotStallTheQueue: a task answered 503 without
// Retry-After again and again backs off for longer and longer, but the
// queue-wide pause a 503 causes stays short, so other tasks keep flowing.
func TestOneFailingTaskDoesNotStallTheQueue(t *testing.T) {
	t.Parallel()
	var (
		mu        sync.Mutex
		attemptsA int
		bAt       time.Time
	)
	bDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if string(body) == `"a"` {
			attemptsA++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if bAt.IsZero() {
			bAt = time.Now()
			close(bDone)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := queue.Config{
		Name: "stall", MaxDispatchesPerSecond: 1000, MaxBurstSize: 10, MaxConcurrentDispatches: 10,
		DispatchDeadline: 5 * time.Second,
		Retry:            queue.RetryConfig{MaxAttempts: -1, MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Hour, MaxDoublings: 16},
	}
	r := start(t, filepath.Join(t.TempDir(), "q.db"), sqlitequeue.Options{Config: cfg, Target: srv.URL})
	ctx := t.Context()
	if err := r.q.Enqueue(ctx, queue.Task{Name: "a", Body: []byte(`"a"`)}); err != nil {
		t.Fatalf("enqueue a: %v", err)
	}
	// After 8 failed attempts a's next backoff is Backoff(8) = 20ms * 2^7 = 2.56s.
	testutil.WaitFor(t, waitTimeout, "8 failed attempts of a", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attemptsA >= 8
	})
	enqueuedB := time.Now()
	if err := r.q.Enqueue(ctx, queue.Task{Name: "b", Body: []byte(`"b"`)}); err != nil {
		t.Fatalf("enqueue b: %v", err)
	}
	<-bDone
	mu.Lock()
	waited := bAt.Sub(enqueuedB)
	mu.Unlock()
	// b waits at most the short queue-wide pause (MinBackoff), not a's
	// 2.56-5.12s backoff; 1.5s leaves a wide margin for a loaded machine.
	if waited > 1500*time.Millisecond {
		t.Errorf("b waited %v behind a failing task; the queue-wide pause should be about MinBackoff (20ms)", waited)
	}
}
