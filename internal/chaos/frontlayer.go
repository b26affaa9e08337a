package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"eventrelay/internal/queue"
)

// lastAttemptDropper is a layer in front of the dispatcher
// (devstack.Options.WrapDispatcher), as Cloud Run's front end is in
// production: for the tasks it picks it answers every delivery itself, so
// the dispatcher's handler never runs and no status is written. It answers
// the attempts before a task's last with HTTP 500 (that task alone is
// retried) and the last attempt (X-CloudTasks-TaskRetryCount + 1 ==
// MaxAttempts) with HTTP 503, after which the queue drops the task: the
// event's record stays where ingest left it, with nothing left to deliver
// it. Every other delivery goes through untouched.
type lastAttemptDropper struct {
	retry queue.RetryConfig
	// pick reports whether the layer takes over a task, by its name
	// (X-CloudTasks-TaskName).
	pick func(taskName string) bool

	earlier atomic.Int64 // attempts before the last answered 500
	mu      sync.Mutex
	dropped map[string]bool // event ids whose last attempt was answered 503
}

func newLastAttemptDropper(retry queue.RetryConfig, pick func(string) bool) *lastAttemptDropper {
	return &lastAttemptDropper{retry: retry, pick: pick, dropped: map[string]bool{}}
}

// pickOriginal picks the first task of about one event in sixteen
// (queue.TaskName: "ev-" and a hex SHA-256 of the id): never a task with a
// suffix (requeued …-qN, replayed …-rN, or the reconciler's), so that a
// redelivery of a dropped event goes through.
func pickOriginal(name string) bool {
	return strings.HasPrefix(name, "ev-0") && len(name) == len(queue.TaskName(""))
}

func (l *lastAttemptDropper) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(queue.HeaderTaskName)
		if r.Method != http.MethodPost || name == "" || !l.pick(name) {
			next.ServeHTTP(w, r)
			return
		}
		retryCount, err := strconv.Atoi(r.Header.Get(queue.HeaderRetryCount))
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		if !l.retry.IsLastAttempt(retryCount, time.Time{}, time.Now()) {
			l.earlier.Add(1)
			http.Error(w, "front end: instance failed", http.StatusInternalServerError)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ev struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &ev)
		l.mu.Lock()
		l.dropped[ev.ID] = true
		l.mu.Unlock()
		http.Error(w, "front end: no instance available", http.StatusServiceUnavailable)
	})
}

// droppedIDs lists the events whose last attempt the layer answered 503,
// sorted.
func (l *lastAttemptDropper) droppedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.dropped))
	for id := range l.dropped {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
