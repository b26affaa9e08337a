package wiring_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/testutil"
	"eventrelay/internal/wiring"
)

// downStore is a status store that fails every read and write while down.
type downStore struct {
	status.Store
	down *atomic.Bool
}

var errStoreDown = errors.New("status store down")

func (s downStore) Get(ctx context.Context, id string) (status.Record, error) {
	if s.down.Load() {
		return status.Record{}, errStoreDown
	}
	return s.Store.Get(ctx, id)
}

func (s downStore) Apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	if s.down.Load() {
		return status.Record{}, errStoreDown
	}
	return s.Store.Apply(ctx, id, u)
}

// downQueue is a queue whose enqueues fail while down.
type downQueue struct {
	queue.Queue
	down *atomic.Bool
}

func (q downQueue) Enqueue(ctx context.Context, t queue.Task) error {
	if q.down.Load() {
		return queue.ErrUnavailable
	}
	return q.Queue.Enqueue(ctx, t)
}

// TestLastAttemptWithStoreAndQueueDownIsRetried runs the real embedded
// queue engine, configured from the environment as the services read it,
// in front of a dispatcher with a budget of 3 attempts. The event has no
// record (ingest's best-effort write failed), and its attempts up to and
// including the dispatcher's last meet the status store and the requeue
// queue both down: the dispatcher can neither record nor requeue and
// answers 503. The queue must retry that task rather than drop it, so the
// event is delivered once the store is back.
func TestLastAttemptWithStoreAndQueueDownIsRetried(t *testing.T) {
	t.Parallel()
	const budget = 3
	c := config(t, map[string]string{
		"DELIVERY_MAX_ATTEMPTS": strconv.Itoa(budget),
		"QUEUE_MIN_BACKOFF":     "20ms",
		"QUEUE_MAX_BACKOFF":     "100ms",
		"QUEUE_MAX_DOUBLINGS":   "2",
	})
	tm, err := targetmock.NewServer(t.Context(), targetmock.Config{Port: "0", Rate: 1000, Burst: 100, RateLimitMode: targetmock.ModeHTTP})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tm.Close() })
	target := httptest.NewServer(tm.Routes(t.Context()))
	t.Cleanup(target.Close)

	dir := t.TempDir()
	st, err := sqlitestatus.Open(t.Context(), filepath.Join(dir, "status.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	var down atomic.Bool
	down.Store(true)
	var lastAnswered atomic.Bool // the budget's last attempt was answered
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
		if n, _ := strconv.Atoi(r.Header.Get(queue.HeaderRetryCount)); n+1 >= budget {
			lastAnswered.Store(true)
		}
	}))
	t.Cleanup(srv.Close)

	q, err := sqlitequeue.New(t.Context(), sqlitequeue.Options{
		Path: filepath.Join(dir, "queue.db"), Config: c.Queue, Target: srv.URL + dispatcher.TaskPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })

	p := parts()
	p.Config.TargetURL = target.URL + "/graphql"
	p.Retry = c.Delivery.Policy(c.Queue.Retry)
	p.Store = downStore{Store: st, down: &down}
	p.Requeue = downQueue{Queue: q, down: &down}
	d, err := wiring.NewDispatcher(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	h := d.Server.Routes(t.Context())
	handler.Store(&h)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	ev := event.Event{ID: "e", Name: "n", Body: "b", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	body, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(t.Context(), queue.Task{Name: queue.TaskName(ev.ID), Body: body}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the dispatcher to answer the budget's last attempt", lastAnswered.Load)
	down.Store(false)

	testutil.WaitFor(t, 10*time.Second, "the event to be delivered after the store came back", func() bool {
		rec, err := st.Get(t.Context(), ev.ID)
		return err == nil && rec.Status == status.Delivered
	})
	if got, err := tm.Event(t.Context(), ev.ID); err != nil || got.Calls != 1 {
		t.Errorf("target has %+v, %v; want the event, called once", got, err)
	}
}

// TestOpenDispatcherChecksTheQueueBudget: a queue with finite attempts
// fewer than the dispatcher's is refused; as many or more is accepted.
func TestOpenDispatcherChecksTheQueueBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		queue, delivery string
		ok              bool
	}{
		{"-1", "100", true},
		{"-1", "-1", true},
		{"100", "100", true},
		{"10", "100", false},
		{"10", "-1", false},
	} {
		c := config(t, map[string]string{"QUEUE_MAX_ATTEMPTS": tc.queue, "DELIVERY_MAX_ATTEMPTS": tc.delivery})
		d, err := wiring.OpenDispatcher(t.Context(), c, parts())
		if (err == nil) != tc.ok {
			t.Errorf("queue %s, delivery %s: OpenDispatcher error %v, want ok %v", tc.queue, tc.delivery, err, tc.ok)
		}
		if d != nil {
			_ = d.Close()
		}
	}
}
