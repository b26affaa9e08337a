// Package queuetest is the conformance suite for queue engines: every engine
// (the embedded sqlitequeue, the Cloud Tasks emulator-backed one) runs Run
// against an HTTP target the suite starts, so the engines cannot drift
// apart. An engine declares in Capabilities which Cloud Tasks behaviours it
// implements (an emulator may ignore rate limits or backoff); the suite
// checks those and skips the others, saying why.
//
// Each check names its queue uniquely (see Harness.New), so engines that
// share one server across tests and runs never see another check's tasks.
//
// Durations are small (millisecond backoffs, 50 dispatches/s) so the whole
// suite takes a few seconds; its subtests run in parallel.
package queuetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/queue"
	"eventrelay/internal/testutil"
)

// Capabilities are the behaviours an engine implements beyond delivering
// every task at least once with the Cloud Tasks headers.
type Capabilities struct {
	// RateLimit: MaxDispatchesPerSecond and MaxBurstSize are enforced.
	RateLimit bool
	// MaxConcurrent: MaxConcurrentDispatches is never exceeded.
	MaxConcurrent bool
	// FIFO: with one dispatch at a time, ready tasks go in enqueue order.
	FIFO bool
	// Backoff: a retry is scheduled (its X-CloudTasks-TaskETA) at least
	// Retry.Backoff(n) after attempt n ended, and is not sent before then.
	// The Cloud Tasks emulator sets a retry's ETA to the previous ETA plus
	// the backoff, however long the attempt took, so it lacks this.
	Backoff bool
	// MaxAttempts: a task is tried exactly Retry.MaxAttempts times.
	MaxAttempts bool
	// RetryAfter: a 429 or 503 with Retry-After delays that task, and pauses
	// the whole queue, until then.
	RetryAfter bool
	// ExecutionCount: X-CloudTasks-TaskExecutionCount counts the earlier
	// attempts answered with a non-5xx status.
	ExecutionCount bool
	// DedupAfterDelivery: a name stays taken after its task was delivered.
	DedupAfterDelivery bool
	// Control: the queue is a queue.Controller whose Pause stops
	// dispatching (a task enqueued while paused is not delivered), whose
	// Control reports the pause and the rate, and whose SetRate refuses a
	// rate that is not > 0 with queue.ErrInvalidRate.
	Control bool
	// Resume: after Resume, the tasks a pause held are delivered.
	Resume bool
	// SetRate: SetRate changes the live dispatch rate.
	SetRate bool
}

// All is every capability: what the embedded engine implements.
var All = Capabilities{
	RateLimit: true, MaxConcurrent: true, FIFO: true, Backoff: true, MaxAttempts: true,
	RetryAfter: true, ExecutionCount: true, DedupAfterDelivery: true,
	Control: true, Resume: true, SetRate: true,
}

// Harness adapts an engine to the suite.
type Harness struct {
	// New returns a queue over fresh storage, named cfg.Name, that POSTs its
	// tasks to target and is already dispatching. cfg.Name is unique to the
	// check and the run, and a valid Cloud Tasks queue id. The harness stops it and
	// frees its storage with t.Cleanup.
	New func(t *testing.T, cfg queue.Config, target string) queue.Queue
	// Restart stops q abruptly, as a crash would (deliveries in flight are
	// neither finished nor released), and returns a queue over the same
	// storage that is dispatching. Nil when the engine cannot restart.
	Restart func(t *testing.T, q queue.Queue) queue.Queue
	// Capabilities says which behaviours to check.
	Capabilities Capabilities
}

// Config returns the suite's base configuration: fast, generous limits
// that individual checks tighten.
func Config() queue.Config {
	return queue.Config{
		Name:                    "conformance",
		MaxDispatchesPerSecond:  1000,
		MaxBurstSize:            100,
		MaxConcurrentDispatches: 10,
		DispatchDeadline:        10 * time.Second,
		Retry: queue.RetryConfig{
			MaxAttempts:  -1,
			MinBackoff:   20 * time.Millisecond,
			MaxBackoff:   200 * time.Millisecond,
			MaxDoublings: 3,
		},
	}
}

// waitTimeout bounds every wait for a delivery. It is a deadlock guard far
// above what any check needs, not a speed assertion.
const waitTimeout = 30 * time.Second

// Run runs the conformance suite against the engine h adapts.
func Run(t *testing.T, h Harness) {
	t.Helper()
	checks := []struct {
		name string
		need func(Capabilities) bool
		run  func(*testing.T, Harness)
	}{
		{"DeliversBodyAndHeaders", nil, testDelivers},
		{"Deduplicates", nil, testDedup},
		{"NotBefore", nil, testNotBefore},
		{"FIFO", func(c Capabilities) bool { return c.FIFO }, testFIFO},
		{"RetriesWithBackoff", nil, testRetries},
		{"MaxAttempts", func(c Capabilities) bool { return c.MaxAttempts }, testMaxAttempts},
		{"RetryAfter", func(c Capabilities) bool { return c.RetryAfter }, testRetryAfter},
		{"RateLimit", func(c Capabilities) bool { return c.RateLimit }, testRateLimit},
		{"MaxConcurrent", func(c Capabilities) bool { return c.MaxConcurrent }, testMaxConcurrent},
		{"RestartRedelivers", func(Capabilities) bool { return h.Restart != nil }, testRestart},
		{"Pause", func(c Capabilities) bool { return c.Control }, testPause},
		{"InvalidRate", func(c Capabilities) bool { return c.Control || c.SetRate }, testInvalidRate},
		{"SetRate", func(c Capabilities) bool { return c.SetRate }, testSetRate},
		{"TaskExists", nil, testTaskExists},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.need != nil && !c.need(h.Capabilities) {
				t.Skipf("engine does not declare this behaviour (Capabilities %+v, Restart set: %v)", h.Capabilities, h.Restart != nil)
			}
			c.run(t, h)
		})
	}
}

// config is Config with a queue name unique to this check and this run:
// engines sharing one server between tests and runs (the Cloud Tasks
// emulator remembers every queue and task name it has seen) need it. The
// name is a valid Cloud Tasks queue id: at most 100 of [A-Za-z0-9-].
func config(t testing.TB) queue.Config {
	cfg := Config()
	b := []byte(sanitize(t.Name()))
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	if len(b) > 80 {
		b = b[len(b)-80:]
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	cfg.Name = strings.Trim(string(b), "-") + "-" + hex.EncodeToString(r[:])
	return cfg
}

func name(t testing.TB, i int) string {
	return fmt.Sprintf("%s-%03d", sanitize(t.Name()), i)
}

// sanitize keeps names within Cloud Tasks' [A-Za-z0-9_-].
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

func enqueue(t testing.TB, q queue.Queue, task queue.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, task); err != nil {
		t.Fatalf("Enqueue(%s) = %v, want nil", task.Name, err)
	}
}

func body(n string) []byte { return []byte(`{"id":"` + n + `"}`) }

// succeeded returns the names answered 2xx at least once.
func succeeded(ds []Delivery) map[string]bool {
	ok := make(map[string]bool)
	for _, d := range ds {
		if d.Status/100 == 2 {
			ok[d.Name] = true
		}
	}
	return ok
}

func byName(ds []Delivery, n string) []Delivery {
	var out []Delivery
	for _, d := range ds {
		if d.Name == n {
			out = append(out, d)
		}
	}
	return out
}

func testDelivers(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	cfg := config(t)
	q := h.New(t, cfg, tg.URL())
	n := name(t, 0)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	before := time.Now()
	enqueue(t, q, queue.Task{Name: n, Body: body(n), Header: http.Header{
		"Traceparent": {tp},
		"Tracestate":  {"vendor=1"},
	}})
	testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return len(tg.deliveries()) == 1 })
	d := tg.deliveries()[0]

	if diff := cmp.Diff(string(body(n)), string(d.Body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	want := map[string]string{
		"Content-Type":             "application/json",
		queue.HeaderTaskName:       n,
		queue.HeaderQueueName:      cfg.Name,
		queue.HeaderRetryCount:     "0",
		queue.HeaderExecutionCount: "0",
		"Traceparent":              tp,
		"Tracestate":               "vendor=1",
	}
	got := make(map[string]string)
	for k := range want {
		got[k] = d.Header.Get(k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	eta, err := strconv.ParseFloat(d.Header.Get(queue.HeaderETA), 64)
	if err != nil {
		t.Fatalf("%s = %q, want unix seconds: %v", queue.HeaderETA, d.Header.Get(queue.HeaderETA), err)
	}
	if at := time.UnixMicro(int64(eta * 1e6)); at.Before(before.Add(-time.Minute)) || at.After(d.At.Add(time.Minute)) {
		t.Errorf("%s = %v, want the schedule time (enqueued at %v)", queue.HeaderETA, at, before)
	}

	if sr, ok := q.(queue.StatsReader); ok {
		testutil.WaitFor(t, waitTimeout, "Stats() to report an empty queue", func() bool {
			s, err := sr.Stats(context.Background())
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			return s == queue.Stats{}
		})
	}
}

// dedupLater is how long after a delivery testDedup makes a later task
// ready: that task's delivery shows the queue went past any duplicate, with
// this much room for the order in which concurrent deliveries arrive.
const dedupLater = 100 * time.Millisecond

func testDedup(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	q := h.New(t, config(t), tg.URL())
	n, other := name(t, 0), name(t, 1)
	enqueue(t, q, queue.Task{Name: n, Body: body(n)})
	ctx := context.Background()
	if err := q.Enqueue(ctx, queue.Task{Name: n, Body: body(n)}); !errors.Is(err, queue.ErrAlreadyExists) {
		t.Errorf("second Enqueue(%s) = %v, want ErrAlreadyExists", n, err)
	}
	testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return succeeded(tg.deliveries())[n] })
	if h.Capabilities.DedupAfterDelivery {
		if err := q.Enqueue(ctx, queue.Task{Name: n, Body: body(n)}); !errors.Is(err, queue.ErrAlreadyExists) {
			t.Errorf("Enqueue(%s) after delivery = %v, want ErrAlreadyExists", n, err)
		}
	}
	// A later task shows the queue moved on past any duplicate: it becomes
	// ready only a moment after n was delivered, when a duplicate would have
	// been ready since the second Enqueue.
	enqueue(t, q, queue.Task{Name: other, Body: body(other), NotBefore: time.Now().Add(dedupLater)})
	testutil.WaitFor(t, waitTimeout, "the later delivery", func() bool { return succeeded(tg.deliveries())[other] })
	if got := tg.arrivedFor(n); got != 1 {
		t.Errorf("%s delivered %d times, want 1", n, got)
	}
}

// notBeforeDelay is how far ahead testNotBefore schedules its task.
const notBeforeDelay = 700 * time.Millisecond

func testNotBefore(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	q := h.New(t, config(t), tg.URL())
	later, now := name(t, 0), name(t, 1)
	// Microseconds: X-CloudTasks-TaskETA carries no finer.
	notBefore := time.Now().Add(notBeforeDelay).Truncate(time.Microsecond)
	enqueue(t, q, queue.Task{Name: later, Body: body(later), NotBefore: notBefore})
	enqueue(t, q, queue.Task{Name: now, Body: body(now), NotBefore: time.Now().Add(-time.Hour)})
	testutil.WaitFor(t, waitTimeout, "both deliveries", func() bool {
		ok := succeeded(tg.deliveries())
		return ok[later] && ok[now]
	})
	ds := tg.deliveries()
	if got := len(ds); got != 2 {
		t.Errorf("%d deliveries, want 2", got)
	}
	d := byName(ds, later)[0]
	if d.At.Before(notBefore) {
		t.Errorf("%s delivered at %v, want >= its NotBefore %v", later, d.At.Format(time.StampMicro), notBefore.Format(time.StampMicro))
	}
	eta, err := strconv.ParseFloat(d.Header.Get(queue.HeaderETA), 64)
	if err != nil {
		t.Fatalf("%s = %q, want unix seconds: %v", queue.HeaderETA, d.Header.Get(queue.HeaderETA), err)
	}
	if diff := time.UnixMicro(int64(math.Round(eta * 1e6))).Sub(notBefore).Abs(); diff > time.Millisecond {
		t.Errorf("%s = %.6f, want NotBefore %.6f", queue.HeaderETA, eta, float64(notBefore.UnixMicro())/1e6)
	}
}

func testFIFO(t *testing.T, h Harness) {
	gate := make(chan struct{})
	var once sync.Once
	tg := newTarget(t, func(r *http.Request, d Delivery, n int) Reply {
		once.Do(func() { <-gate }) // hold the first delivery until all are queued
		return Reply{Status: http.StatusOK}
	})
	cfg := config(t)
	cfg.MaxConcurrentDispatches = 1
	q := h.New(t, cfg, tg.URL())
	const n = 20
	var want []string
	for i := range n {
		want = append(want, name(t, i))
		enqueue(t, q, queue.Task{Name: want[i], Body: body(want[i])})
	}
	close(gate)
	testutil.WaitFor(t, waitTimeout, "every delivery", func() bool { return len(tg.deliveries()) >= n })
	var got []string
	for _, d := range tg.deliveries() {
		got = append(got, d.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivery order (-want +got):\n%s", diff)
	}
}

func testRetries(t *testing.T, h Harness) {
	cases := []struct {
		name     string
		status   int
		wantExec []string // X-CloudTasks-TaskExecutionCount per attempt
	}{
		{name: "500", status: http.StatusInternalServerError, wantExec: []string{"0", "0", "0", "0"}},
		{name: "404", status: http.StatusNotFound, wantExec: []string{"0", "1", "2", "3"}},
		{name: "timeout", status: 0, wantExec: []string{"0", "0", "0", "0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const fails = 3
			cfg := config(t)
			cfg.DispatchDeadline = 200 * time.Millisecond
			tg := newTarget(t, func(r *http.Request, d Delivery, n int) Reply {
				if n >= fails {
					return Reply{Status: http.StatusOK}
				}
				if tc.status == 0 { // outlive the dispatch deadline
					<-r.Context().Done()
					return Reply{Status: http.StatusGatewayTimeout} // never seen by the queue
				}
				return Reply{Status: tc.status}
			})
			q := h.New(t, cfg, tg.URL())
			n := name(t, 0)
			enqueue(t, q, queue.Task{Name: n, Body: body(n)})
			testutil.WaitFor(t, waitTimeout, "the successful attempt", func() bool { return succeeded(tg.deliveries())[n] })
			// A timed-out attempt's handler returns only once the server
			// notices the queue hung up, which can come after the next
			// attempt succeeded: wait until every attempt that arrived is
			// answered, or it would be missing from the list.
			testutil.WaitFor(t, waitTimeout, "every attempt answered", func() bool { return len(tg.deliveries()) == tg.arrived() })
			ds := byName(tg.deliveries(), n)
			var retries, execs []string
			for _, d := range ds {
				retries = append(retries, strconv.Itoa(d.Retry))
				execs = append(execs, d.Header.Get(queue.HeaderExecutionCount))
			}
			if diff := cmp.Diff([]string{"0", "1", "2", "3"}, retries); diff != "" {
				t.Errorf("retry counts (-want +got):\n%s", diff)
			}
			if h.Capabilities.ExecutionCount {
				if diff := cmp.Diff(tc.wantExec, execs); diff != "" {
					t.Errorf("execution counts (-want +got):\n%s", diff)
				}
			}
			if h.Capabilities.Backoff {
				// The backoff is checked on the queue's own schedule times
				// (X-CloudTasks-TaskETA): attempt i started no earlier than
				// its ETA and ran for at least the dispatch deadline when it
				// timed out, and attempt i+1 is scheduled when attempt i
				// ends. Arrival times at the target would not do: the lag
				// between sending an attempt and the target seeing it can
				// make two arrivals closer than the backoff.
				etas := make([]time.Time, len(ds))
				for i, d := range ds {
					etas[i] = taskETA(t, d)
					if d.At.Before(etas[i]) {
						t.Errorf("attempt %d arrived at %v, before its ETA %v", i+1, d.At.Format(time.StampMicro), etas[i].Format(time.StampMicro))
					}
				}
				for i := 1; i < len(ds); i++ {
					gap, min := etas[i].Sub(etas[i-1]), cfg.Retry.Backoff(i)
					if tc.status == 0 {
						min += cfg.DispatchDeadline // attempt i lasted that long
					}
					if gap < min {
						t.Errorf("attempt %d is scheduled %v after attempt %d, want >= %v", i+1, gap, i, min)
					}
				}
			}
		})
	}
}

// taskETA returns d's X-CloudTasks-TaskETA (unix seconds with a fraction)
// truncated to the microsecond. It parses the digits rather than a float, so
// that comparing two ETAs to a whole number of microseconds is exact.
func taskETA(t *testing.T, d Delivery) time.Time {
	t.Helper()
	v := d.Header.Get(queue.HeaderETA)
	secs, frac, _ := strings.Cut(v, ".")
	frac = (frac + "000000")[:6]
	s, err1 := strconv.ParseInt(secs, 10, 64)
	us, err2 := strconv.ParseInt(frac, 10, 64)
	if err := errors.Join(err1, err2); err != nil || us < 0 {
		t.Fatalf("%s = %q, want unix seconds: %v", queue.HeaderETA, v, err)
	}
	return time.UnixMicro(s*1_000_000 + us)
}

func testMaxAttempts(t *testing.T, h Harness) {
	tg := newTarget(t, func(*http.Request, Delivery, int) Reply { return Reply{Status: http.StatusInternalServerError} })
	cfg := config(t)
	cfg.Retry.MaxAttempts = 3
	cfg.Retry.MinBackoff, cfg.Retry.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	q := h.New(t, cfg, tg.URL())
	n, later := name(t, 0), name(t, 1)
	enqueue(t, q, queue.Task{Name: n, Body: body(n)})
	testutil.WaitFor(t, waitTimeout, "the attempts", func() bool { return len(byName(tg.deliveries(), n)) >= cfg.Retry.MaxAttempts })
	// A fourth attempt would be due at most MaxBackoff after the third was
	// answered: a later task that becomes ready ten max backoffs after it
	// shows the queue went past that point.
	enqueue(t, q, queue.Task{Name: later, Body: body(later), NotBefore: time.Now().Add(10 * cfg.Retry.MaxBackoff)})
	testutil.WaitFor(t, waitTimeout, "the later task", func() bool { return tg.arrivedFor(later) >= 1 })
	if got := tg.arrivedFor(n); got != cfg.Retry.MaxAttempts {
		t.Errorf("%s attempted %d times, want MaxAttempts = %d", n, got, cfg.Retry.MaxAttempts)
	}
}

func testRetryAfter(t *testing.T, h Harness) {
	cases := []struct {
		name   string
		status int
	}{
		{name: "429", status: http.StatusTooManyRequests},
		{name: "503", status: http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first := name(t, 0)
			tg := newTarget(t, func(r *http.Request, d Delivery, n int) Reply {
				if d.Name == first && n == 0 {
					return Reply{Status: tc.status, RetryAfter: "1"}
				}
				return Reply{Status: http.StatusOK}
			})
			cfg := config(t)
			cfg.MaxConcurrentDispatches = 1 // the second task goes after the 429/503 answer
			cfg.Retry.MaxBackoff = 5 * time.Second
			q := h.New(t, cfg, tg.URL())
			second := name(t, 1)
			enqueue(t, q, queue.Task{Name: first, Body: body(first)})
			enqueue(t, q, queue.Task{Name: second, Body: body(second)})
			testutil.WaitFor(t, waitTimeout, "both deliveries", func() bool {
				ok := succeeded(tg.deliveries())
				return ok[first] && ok[second]
			})
			ds := tg.deliveries()
			start := byName(ds, first)[0].At
			for _, n := range []string{first, second} {
				var ok Delivery
				for _, d := range byName(ds, n) {
					if d.Status == http.StatusOK {
						ok = d
					}
				}
				if gap := ok.At.Sub(start); gap < time.Second {
					t.Errorf("%s delivered %v after the %d with Retry-After: 1, want >= 1s", n, gap, tc.status)
				}
			}
		})
	}
}

func testRateLimit(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	cfg := config(t)
	cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = 50, 5, 100
	q := h.New(t, cfg, tg.URL())
	const n = 60
	start := time.Now()
	for i := range n {
		enqueue(t, q, queue.Task{Name: name(t, i), Body: body(name(t, i))})
	}
	testutil.WaitFor(t, waitTimeout, "every delivery", func() bool { return len(tg.deliveries()) >= n })
	ds := tg.deliveries()
	if got := len(ds); got != n {
		t.Errorf("%d deliveries, want %d", got, n)
	}
	limit := int(cfg.MaxDispatchesPerSecond) + cfg.MaxBurstSize
	worst, at := 0, time.Time{}
	for i := range ds {
		j := i
		for j < len(ds) && ds[j].At.Sub(ds[i].At) < time.Second {
			j++
		}
		if j-i > worst {
			worst, at = j-i, ds[i].At
		}
	}
	if worst > limit {
		t.Errorf("%d deliveries in the second from %v, want <= rate+burst = %d", worst, at.Format(time.StampMilli), limit)
	}
	minTotal := time.Duration(float64(n-cfg.MaxBurstSize) / cfg.MaxDispatchesPerSecond * float64(time.Second))
	if total := ds[len(ds)-1].At.Sub(start); total < minTotal {
		t.Errorf("%d tasks delivered in %v, want >= (N-burst)/rate = %v", n, total, minTotal)
	}
}

func testMaxConcurrent(t *testing.T, h Harness) {
	tg := newTarget(t, func(*http.Request, Delivery, int) Reply {
		time.Sleep(30 * time.Millisecond)
		return Reply{Status: http.StatusOK}
	})
	cfg := config(t)
	cfg.MaxConcurrentDispatches = 3
	q := h.New(t, cfg, tg.URL())
	const n = 20
	for i := range n {
		enqueue(t, q, queue.Task{Name: name(t, i), Body: body(name(t, i))})
	}
	testutil.WaitFor(t, waitTimeout, "every delivery", func() bool { return len(tg.deliveries()) >= n })
	if got := tg.peak(); got > cfg.MaxConcurrentDispatches {
		t.Errorf("%d deliveries in flight at once, want <= MaxConcurrentDispatches = %d", got, cfg.MaxConcurrentDispatches)
	}
}

func testRestart(t *testing.T, h Harness) {
	var (
		mu       sync.Mutex
		released bool
		gate     = make(chan struct{})
	)
	tg := newTarget(t, func(r *http.Request, d Delivery, n int) Reply {
		mu.Lock()
		hold := !released
		mu.Unlock()
		if hold { // the deliveries in flight when the engine "crashes"
			select {
			case <-gate:
			case <-r.Context().Done():
			}
			return Reply{Status: http.StatusServiceUnavailable}
		}
		return Reply{Status: http.StatusOK}
	})
	cfg := config(t)
	cfg.MaxConcurrentDispatches = 4
	// A lease as long as the wait below: only a prompt redelivery passes.
	cfg.DispatchDeadline = waitTimeout
	q := h.New(t, cfg, tg.URL())
	const n = 12
	var names []string
	for i := range n {
		names = append(names, name(t, i))
		enqueue(t, q, queue.Task{Name: names[i], Body: body(names[i])})
	}
	testutil.WaitFor(t, waitTimeout, "deliveries in flight", func() bool { return tg.arrived() >= cfg.MaxConcurrentDispatches })
	q = h.Restart(t, q)
	mu.Lock()
	released = true
	mu.Unlock()
	close(gate)
	testutil.WaitFor(t, waitTimeout, "every task delivered after the restart", func() bool { return len(succeeded(tg.deliveries())) >= n })
	ok := succeeded(tg.deliveries())
	for _, n := range names {
		if !ok[n] {
			t.Errorf("%s never delivered", n)
		}
	}
	_ = q
}

// controller returns q's queue.Controller, failing the check when the
// engine declares a control capability without implementing it.
func controller(t testing.TB, q queue.Queue) queue.Controller {
	t.Helper()
	c, ok := q.(queue.Controller)
	if !ok {
		t.Fatalf("the engine declares a control capability, but %T is not a queue.Controller", q)
	}
	return c
}

func readControl(t testing.TB, c queue.Controller) queue.Control {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.Control(ctx)
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	return got
}

// checkBy checks who Control says made the last change: engines that keep
// no such record report "" and a zero time.
func checkBy(t testing.TB, got queue.Control, by string, since time.Time) {
	t.Helper()
	if got.By != "" && got.By != by {
		t.Errorf("Control().By = %q, want %q (or \"\" if the engine keeps no record)", got.By, by)
	}
	// A minute of slack for clocks; no upper bound.
	if !got.At.IsZero() && got.At.Before(since.Add(-time.Minute)) {
		t.Errorf("Control().At = %v, want the time of the change (after %v)", got.At, since)
	}
}

func testPause(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	cfg := config(t)
	q := h.New(t, cfg, tg.URL())
	c := controller(t, q)
	ctx := context.Background()
	first, held := name(t, 0), name(t, 1)

	got := readControl(t, c)
	if got.Paused || got.Rate != cfg.MaxDispatchesPerSecond {
		t.Errorf("Control() on a new queue = %+v, want not paused, rate %v", got, cfg.MaxDispatchesPerSecond)
	}
	enqueue(t, q, queue.Task{Name: first, Body: body(first)})
	testutil.WaitFor(t, waitTimeout, "the delivery before the pause", func() bool { return succeeded(tg.deliveries())[first] })

	before := time.Now()
	if err := c.Pause(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	got = readControl(t, c)
	if !got.Paused {
		t.Errorf("Control().Paused = false after Pause, want true")
	}
	checkBy(t, got, queue.ByOperator, before)

	enqueue(t, q, queue.Task{Name: held, Body: body(held)})
	// A queue like q that is not paused delivers a task enqueued after
	// held: by then q had every chance to deliver held too.
	twinTarget := newTarget(t, nil)
	twin, twinTask := h.New(t, config(t), twinTarget.URL()), name(t, 2)
	enqueue(t, twin, queue.Task{Name: twinTask, Body: body(twinTask)})
	testutil.WaitFor(t, waitTimeout, "the delivery of a task enqueued on a queue that is not paused", func() bool {
		return twinTarget.arrivedFor(twinTask) >= 1
	})
	if n := tg.arrivedFor(held); n != 0 {
		t.Errorf("%s delivered %d times on a paused queue, want 0", held, n)
	}

	before = time.Now()
	if err := c.Resume(ctx, queue.ByOperator); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	got = readControl(t, c)
	if got.Paused {
		t.Errorf("Control().Paused = true after Resume, want false")
	}
	checkBy(t, got, queue.ByOperator, before)
	if h.Capabilities.Resume {
		testutil.WaitFor(t, waitTimeout, "the held task's delivery after Resume", func() bool { return succeeded(tg.deliveries())[held] })
	}
}

func testInvalidRate(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	cfg := config(t)
	q := h.New(t, cfg, tg.URL())
	c := controller(t, q)
	cases := []struct {
		name string
		rate float64
	}{
		{name: "zero", rate: 0},
		{name: "negative", rate: -1},
		{name: "NaN", rate: math.NaN()},
		{name: "infinite", rate: math.Inf(1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.SetRate(context.Background(), tc.rate, queue.ByOperator); !errors.Is(err, queue.ErrInvalidRate) {
				t.Errorf("SetRate(%v) = %v, want ErrInvalidRate", tc.rate, err)
			}
		})
	}
	if got := readControl(t, c); got.Rate != cfg.MaxDispatchesPerSecond {
		t.Errorf("Control().Rate = %v after refused SetRate calls, want the configured %v", got.Rate, cfg.MaxDispatchesPerSecond)
	}
}

// testSetRate slows a queue from 50/s to 10/s while it runs and measures
// the rate it then dispatches at. The bounds are the ones a loaded machine
// cannot break: the tasks take at least (N - burst) / 10 s (at 50/s they
// would take a fifth of that), and no second holds more than 10 + burst
// deliveries, plus a margin for the jitter between a token and the arrival.
func testSetRate(t *testing.T, h Harness) {
	tg := newTarget(t, nil)
	cfg := config(t)
	cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = 50, 5, 100
	q := h.New(t, cfg, tg.URL())
	c := controller(t, q)
	warm := name(t, 0)
	enqueue(t, q, queue.Task{Name: warm, Body: body(warm)})
	testutil.WaitFor(t, waitTimeout, "the delivery at the configured rate", func() bool { return succeeded(tg.deliveries())[warm] })

	const slow = 10
	before := time.Now()
	if err := c.SetRate(context.Background(), slow, queue.ByGovernor); err != nil {
		t.Fatalf("SetRate(%v): %v", slow, err)
	}
	got := readControl(t, c)
	if got.Rate != slow || got.Paused {
		t.Errorf("Control() after SetRate(%v) = %+v, want rate %v, not paused", slow, got, slow)
	}
	checkBy(t, got, queue.ByGovernor, before)

	const n = 20
	start := time.Now()
	for i := 1; i <= n; i++ {
		enqueue(t, q, queue.Task{Name: name(t, i), Body: body(name(t, i))})
	}
	testutil.WaitFor(t, waitTimeout, "every delivery at the new rate", func() bool { return len(succeeded(tg.deliveries())) >= n+1 })
	var ds []Delivery
	for _, d := range tg.deliveries() {
		if d.Name != warm {
			ds = append(ds, d)
		}
	}
	if len(ds) != n {
		t.Errorf("%d deliveries, want %d", len(ds), n)
	}
	minTotal := time.Duration(float64(n-cfg.MaxBurstSize) / slow * float64(time.Second))
	if total := ds[len(ds)-1].At.Sub(start); total < minTotal {
		t.Errorf("%d tasks delivered in %v after SetRate(%v), want >= (N-burst)/rate = %v: the rate did not drop", n, total, slow, minTotal)
	}
	const jitter = 2
	limit := slow + cfg.MaxBurstSize + jitter
	worst, at := 0, time.Time{}
	for i := range ds {
		j := i
		for j < len(ds) && ds[j].At.Sub(ds[i].At) < time.Second {
			j++
		}
		if j-i > worst {
			worst, at = j-i, ds[i].At
		}
	}
	if worst > limit {
		t.Errorf("%d deliveries in the second from %v after SetRate(%v), want <= rate+burst+%d = %d", worst, at.Format(time.StampMilli), slow, jitter, limit)
	}
}

// inspector returns q's queue.Inspector, or skips the check when the engine
// does not implement it.
func inspector(t testing.TB, q queue.Queue) queue.Inspector {
	t.Helper()
	in, ok := q.(queue.Inspector)
	if !ok {
		t.Skipf("%T is not a queue.Inspector: it cannot tell whether a task is in the queue", q)
	}
	return in
}

// taskExists calls TaskExists, failing the check on an error.
func taskExists(t testing.TB, in queue.Inspector, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := in.TaskExists(ctx, name)
	if err != nil {
		t.Fatalf("TaskExists(%s): %v", name, err)
	}
	return ok
}

// testTaskExists follows tasks through their lives and asks TaskExists at
// each step. Every step where the task must exist holds the task in that
// state (a delivery blocked in the target, a retry an hour away), so the
// answer cannot depend on timing; the steps where it must not exist wait
// for the engine to finish the task.
func testTaskExists(t *testing.T, h Harness) {
	held, retrying, dropped := name(t, 0), name(t, 1), name(t, 2)
	gate := make(chan struct{})
	var closeGate sync.Once
	release := func() { closeGate.Do(func() { close(gate) }) }
	tg := newTarget(t, func(r *http.Request, d Delivery, n int) Reply {
		switch d.Name {
		case held:
			select {
			case <-gate:
			case <-r.Context().Done():
			}
			return Reply{Status: http.StatusOK}
		case retrying, dropped:
			return Reply{Status: http.StatusInternalServerError}
		}
		return Reply{Status: http.StatusOK}
	})
	// Registered after the target, so it runs before the target's server
	// closes, which waits for its handlers.
	t.Cleanup(release)

	// A queue whose retries wait an hour: a failed task stays in its
	// backoff for the whole check.
	cfg := config(t)
	cfg.Retry.MinBackoff, cfg.Retry.MaxBackoff = time.Hour, time.Hour
	q := h.New(t, cfg, tg.URL())
	in := inspector(t, q)

	if taskExists(t, in, name(t, 99)) {
		t.Errorf("TaskExists(%s) = true for a name never enqueued, want false", name(t, 99))
	}

	enqueue(t, q, queue.Task{Name: held, Body: body(held)})
	if !taskExists(t, in, held) {
		t.Errorf("TaskExists(%s) = false right after Enqueue, want true", held)
	}
	testutil.WaitFor(t, waitTimeout, "the held delivery to reach the target", func() bool { return tg.arrivedFor(held) >= 1 })
	if !taskExists(t, in, held) {
		t.Errorf("TaskExists(%s) = false while its delivery is in flight, want true", held)
	}
	release()
	testutil.WaitFor(t, waitTimeout, "the held delivery to succeed", func() bool { return succeeded(tg.deliveries())[held] })
	testutil.WaitFor(t, waitTimeout, "TaskExists to report the delivered task gone", func() bool { return !taskExists(t, in, held) })
	if h.Capabilities.DedupAfterDelivery {
		// The name is still remembered, and that does not make it a task.
		if err := q.Enqueue(context.Background(), queue.Task{Name: held, Body: body(held)}); !errors.Is(err, queue.ErrAlreadyExists) {
			t.Errorf("Enqueue(%s) after delivery = %v, want ErrAlreadyExists", held, err)
		}
		if taskExists(t, in, held) {
			t.Errorf("TaskExists(%s) = true for a delivered task whose name is remembered, want false", held)
		}
	}

	enqueue(t, q, queue.Task{Name: retrying, Body: body(retrying)})
	testutil.WaitFor(t, waitTimeout, "the first attempt to be answered 500", func() bool { return len(byName(tg.deliveries(), retrying)) >= 1 })
	if !taskExists(t, in, retrying) {
		t.Errorf("TaskExists(%s) = false while it waits an hour for its retry, want true", retrying)
	}

	// A queue that gives up after two quick attempts.
	dcfg := config(t)
	dcfg.Retry.MaxAttempts = 2
	dcfg.Retry.MinBackoff, dcfg.Retry.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	dq := h.New(t, dcfg, tg.URL())
	din := inspector(t, dq)
	enqueue(t, dq, queue.Task{Name: dropped, Body: body(dropped)})
	testutil.WaitFor(t, waitTimeout, "both attempts to be answered 500", func() bool {
		return len(byName(tg.deliveries(), dropped)) >= dcfg.Retry.MaxAttempts
	})
	testutil.WaitFor(t, waitTimeout, "TaskExists to report the task gone after its last attempt", func() bool { return !taskExists(t, din, dropped) })
}
