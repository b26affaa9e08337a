package dispatcher

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
)

// recordingQueue is a queue.Queue that keeps what it is given and fails
// with err when set.
type recordingQueue struct {
	mu    sync.Mutex
	tasks []queue.Task
	err   error
}

func (q *recordingQueue) Enqueue(_ context.Context, t queue.Task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil && !errors.Is(q.err, queue.ErrAlreadyExists) {
		return q.err
	}
	q.tasks = append(q.tasks, t)
	return q.err
}

func (q *recordingQueue) enqueued() []queue.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.Task(nil), q.tasks...)
}

// observed is one Observe call.
type observed struct {
	Kind       status.Outcome
	RetryAfter time.Duration
}

type recordingObserver struct {
	mu    sync.Mutex
	calls []observed
}

func (o *recordingObserver) Observe(kind status.Outcome, retryAfter time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, observed{kind, retryAfter})
}

func (o *recordingObserver) seen() []observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]observed(nil), o.calls...)
}

// withRequeue sets the dispatcher's requeue queue and observer.
func withRequeue(q queue.Queue, obs Observer) harnessOption {
	return func(_ *Config, o *Options, s *Server) {
		if s == nil {
			o.Requeue, o.Observer = q, obs
		}
	}
}

func TestLastAttemptRateLimitIsRequeued(t *testing.T) {
	t.Parallel()
	const id = "ev-1"
	rateLimitedGraphQL := `{"errors":[{"message":"rate limited","extensions":{"code":"RATE_LIMITED","retryAfterSeconds":2}}],"data":null}`
	cases := []struct {
		name      string
		reply     func(int, http.ResponseWriter, *http.Request)
		taskName  string
		wantTask  string
		wantAfter time.Duration // NotBefore − the time of the call
	}{
		{
			name:      "http 429 waits its Retry-After",
			reply:     respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:  queue.TaskName(id),
			wantTask:  queue.TaskName(id) + "-q1",
			wantAfter: 3 * time.Second,
		},
		{
			name:      "graphql RATE_LIMITED waits its retryAfterSeconds",
			reply:     respond(200, nil, rateLimitedGraphQL),
			taskName:  queue.TaskName(id),
			wantTask:  queue.TaskName(id) + "-q1",
			wantAfter: 2 * time.Second,
		},
		{
			name:      "no Retry-After waits the queue's MinBackoff",
			reply:     respond(429, nil, `{}`),
			taskName:  queue.TaskName(id),
			wantTask:  queue.TaskName(id) + "-q1",
			wantAfter: time.Second, // testConfig's MinBackoff
		},
		{
			name:      "a requeued task is requeued under the next name",
			reply:     respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:  queue.TaskName(id) + "-q4",
			wantTask:  queue.TaskName(id) + "-q5",
			wantAfter: 3 * time.Second,
		},
		{
			name:      "a replay's task keeps its replay number",
			reply:     respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:  queue.ReplayTaskName(id, 2),
			wantTask:  queue.ReplayTaskName(id, 2) + "-q1",
			wantAfter: 3 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, obs := &recordingQueue{}, &recordingObserver{}
			h := newHarness(t, tc.reply, withRequeue(q, obs))

			before := time.Now()
			got := h.deliver(t, task{body: eventJSON(id), retryCount: testMaxTries - 1, taskName: tc.taskName})
			after := time.Now()

			if got.code != http.StatusOK || got.body["outcome"] != outcomeRequeued || got.body["status"] != string(status.Retrying) ||
				got.body["task"] != tc.wantTask {
				t.Errorf("answer = %d %v, want 200 requeued, retrying, task %s", got.code, got.body, tc.wantTask)
			}
			tasks := q.enqueued()
			if len(tasks) != 1 {
				t.Fatalf("%d tasks enqueued, want 1", len(tasks))
			}
			nt := tasks[0]
			if nt.Name != tc.wantTask {
				t.Errorf("new task name = %q, want %q", nt.Name, tc.wantTask)
			}
			if nt.NotBefore.Before(before.Add(tc.wantAfter)) || nt.NotBefore.After(after.Add(tc.wantAfter)) {
				t.Errorf("NotBefore = %v, want the call's time + %v (call between %v and %v)", nt.NotBefore, tc.wantAfter, before, after)
			}
			ev, err := event.Parse(nt.Body)
			if err != nil || ev.ID != id || ev.Name != "test event" {
				t.Errorf("new task body = %s (%v), want the event", nt.Body, err)
			}
			if tp := nt.Header.Get("traceparent"); !strings.Contains(tp, testTraceID) {
				t.Errorf("new task traceparent = %q, want it in the event's trace %s", tp, testTraceID)
			}

			rec := h.store.record(t, id)
			if rec.Status != status.Retrying || rec.Reason != reasonRequeued {
				t.Errorf("record = %s %q, want retrying %q", rec.Status, rec.Reason, reasonRequeued)
			}
			if n := len(rec.Attempts); n != 1 || rec.Attempts[0].Outcome != status.OutcomeRateLimited ||
				!strings.Contains(rec.Attempts[0].Error, "requeued as task "+tc.wantTask) {
				t.Errorf("attempts = %+v, want one rate_limited naming the new task", rec.Attempts)
			}
			if o := obs.seen(); len(o) != 1 || o[0].Kind != status.OutcomeRateLimited {
				t.Errorf("observer saw %+v, want one rate_limited call", o)
			}
		})
	}
}

func TestLastAttemptRequeueFallsBackToDeadLetter(t *testing.T) {
	t.Parallel()
	const id = "ev-1"
	cases := []struct {
		name       string
		reply      func(int, http.ResponseWriter, *http.Request)
		taskName   string
		enqueueErr error
		wantStatus status.Status
		wantReason string // in the record's reason
		wantTasks  int
		wantAnswer string // the answer's outcome
	}{
		{
			name:       "a 5xx on the last attempt is still dead-lettered",
			reply:      respond(500, nil, `{}`),
			taskName:   queue.TaskName(id),
			wantStatus: status.DeadLettered, wantReason: "HTTP 500", wantAnswer: string(status.OutcomeDeadLettered),
		},
		{
			name:       "a 503 on the last attempt is still dead-lettered",
			reply:      respond(503, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:   queue.TaskName(id),
			wantStatus: status.DeadLettered, wantReason: "HTTP 503", wantAnswer: string(status.OutcomeDeadLettered),
		},
		{
			name:       "enqueue failure dead-letters, so replay can reach the event",
			reply:      respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:   queue.TaskName(id),
			enqueueErr: queue.ErrUnavailable,
			wantStatus: status.DeadLettered, wantReason: "not requeued: enqueue task", wantAnswer: string(status.OutcomeDeadLettered),
		},
		{
			name:       "a foreign task name is not requeued",
			reply:      respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:   "someone-elses-task",
			wantStatus: status.DeadLettered, wantReason: "not one of the event's", wantAnswer: string(status.OutcomeDeadLettered),
		},
		{
			name:       "the same requeue made twice is one task",
			reply:      respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			taskName:   queue.TaskName(id),
			enqueueErr: queue.ErrAlreadyExists,
			wantStatus: status.Retrying, wantReason: reasonRequeued, wantTasks: 1, wantAnswer: outcomeRequeued,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := &recordingQueue{err: tc.enqueueErr}
			h := newHarness(t, tc.reply, withRequeue(q, nil))
			got := h.deliver(t, task{body: eventJSON(id), retryCount: testMaxTries - 1, taskName: tc.taskName})
			if got.code != http.StatusOK || got.body["outcome"] != tc.wantAnswer {
				t.Errorf("answer = %d %v, want 200 %s", got.code, got.body, tc.wantAnswer)
			}
			rec := h.store.record(t, id)
			if rec.Status != tc.wantStatus || !strings.Contains(rec.Reason, tc.wantReason) {
				t.Errorf("record = %s %q, want %s with %q", rec.Status, rec.Reason, tc.wantStatus, tc.wantReason)
			}
			if n := len(q.enqueued()); n != tc.wantTasks {
				t.Errorf("%d tasks enqueued, want %d", n, tc.wantTasks)
			}
		})
	}
}

func TestRateLimitBeforeTheLastAttemptIsNotRequeued(t *testing.T) {
	t.Parallel()
	q := &recordingQueue{}
	h := newHarness(t, respond(429, map[string]string{"Retry-After": "3"}, `{}`), withRequeue(q, nil))
	got := h.deliver(t, task{body: eventJSON("ev-1"), retryCount: testMaxTries - 2, taskName: queue.TaskName("ev-1")})
	if got.code != http.StatusTooManyRequests {
		t.Errorf("answer = %d, want 429: the queue still has attempts", got.code)
	}
	if n := len(q.enqueued()); n != 0 {
		t.Errorf("%d tasks enqueued, want 0", n)
	}
}

func TestObserverSeesEveryTargetCall(t *testing.T) {
	t.Parallel()
	replies := []func(int, http.ResponseWriter, *http.Request){
		respond(200, nil, receiptBody("ev-0", false)),
		respond(429, map[string]string{"Retry-After": "4"}, `{}`),
		respond(500, nil, `{}`),
		respond(400, nil, `{}`),
	}
	obs := &recordingObserver{}
	h := newHarness(t, func(n int, w http.ResponseWriter, r *http.Request) { replies[n](n, w, r) }, withRequeue(nil, obs))
	for i := range replies {
		h.deliver(t, task{body: eventJSON("ev-" + string(rune('0'+i)))})
	}
	// A terminal record is skipped: the target is not called, nothing observed.
	h.deliver(t, task{body: eventJSON("ev-0")})
	want := []observed{
		{status.OutcomeDelivered, 0},
		{status.OutcomeRateLimited, 4 * time.Second},
		{status.OutcomeRetryable, 0},
		{status.OutcomePermanent, 0},
	}
	if diff := cmp.Diff(want, obs.seen()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

// The status store failing on the last attempt must not spend the event's
// budget: the queue would drop the task on a 503, leaving a record nobody
// can finish. The event is carried on in a new task instead.
func TestStoreOutageOnTheLastAttemptIsRequeued(t *testing.T) {
	t.Parallel()
	const id = "ev-1"
	cases := []struct {
		name       string
		retryCount int
		getErr     error
		failApply  status.Status // Apply to this status fails
		queueErr   error
		wantCode   int
		wantTasks  int
		wantCalls  int // target calls
	}{
		{name: "read fails on the last attempt", retryCount: testMaxTries - 1, getErr: errors.New("store down"),
			wantCode: http.StatusOK, wantTasks: 1},
		{name: "delivering write fails on the last attempt", retryCount: testMaxTries - 1, failApply: status.Delivering,
			wantCode: http.StatusOK, wantTasks: 1},
		{name: "outcome write fails on the last attempt", retryCount: testMaxTries - 1, failApply: status.Delivered,
			wantCode: http.StatusOK, wantTasks: 1, wantCalls: 1},
		{name: "read fails before the last attempt: the queue retries", retryCount: testMaxTries - 2, getErr: errors.New("store down"),
			wantCode: http.StatusServiceUnavailable},
		{name: "the requeue fails too: 503 is all that is left", retryCount: testMaxTries - 1, getErr: errors.New("store down"),
			queueErr: errors.New("queue down"), wantCode: http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := &recordingQueue{err: tc.queueErr}
			h := newHarness(t, respond(200, nil, receiptBody(id, false)), withRequeue(q, nil))
			h.store.getErr = tc.getErr
			if tc.failApply != "" {
				h.store.beforeApply = func(_ string, u status.Update) error {
					if u.Status == tc.failApply {
						return errors.New("write timeout")
					}
					return nil
				}
			}

			got := h.deliver(t, task{body: eventJSON(id), retryCount: tc.retryCount, taskName: queue.TaskName(id)})
			if got.code != tc.wantCode {
				t.Errorf("answer = %d %v, want %d", got.code, got.body, tc.wantCode)
			}
			tasks := q.enqueued()
			if len(tasks) != tc.wantTasks {
				t.Fatalf("%d tasks enqueued, want %d", len(tasks), tc.wantTasks)
			}
			if n := len(h.target.seen()); n != tc.wantCalls {
				t.Errorf("target saw %d calls, want %d", n, tc.wantCalls)
			}
			if tc.wantTasks == 0 {
				return
			}
			if want := queue.TaskName(id) + "-q1"; tasks[0].Name != want || got.body["task"] != want || got.body["outcome"] != outcomeRequeued {
				t.Errorf("requeued as %q, answered %v; want task %s, outcome %s", tasks[0].Name, got.body, want, outcomeRequeued)
			}
			ev, err := event.Parse(tasks[0].Body)
			if err != nil || ev.ID != id {
				t.Errorf("requeued body = %s (%v), want event %s", tasks[0].Body, err, id)
			}
			if tasks[0].NotBefore.IsZero() {
				t.Error("requeued task has no NotBefore: it would be retried at once while the store is down")
			}
		})
	}
}
