package sqlitequeue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// lockedBuffer is a log sink safe for the dispatch loop's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestFailureLogsNameTheEvent checks the retry and the give-up lines carry
// the event's id and a reason, as every failure line about an event must.
func TestFailureLogsNameTheEvent(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(target.Close)
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 100, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	q, err := sqlitequeue.New(context.Background(), sqlitequeue.Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: target.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), logging.New(logs, logging.Options{})))
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := q.Enqueue(ctx, queue.Task{Name: queue.TaskName("log-1"), Body: []byte(`{"id":"log-1"}`)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("target called %d times", calls.Load())
		}
	})
	want := map[string]bool{"queue: task attempt failed; will retry": true, "queue: task dropped after its last attempt failed": true}
	var found []map[string]any
	testutil.WaitFor(t, waitTimeout, "the retry and the give-up lines", func() bool {
		found = found[:0]
		seen := map[string]bool{}
		for _, l := range logs.lines(t) {
			if msg, _ := l["message"].(string); want[msg] {
				found, seen[msg] = append(found, l), true
			}
		}
		return len(seen) == len(want)
	})
	for _, l := range found {
		if l["event_id"] != "log-1" || l["reason"] != "the dispatcher answered HTTP 500" {
			t.Errorf("%q: event_id %v, reason %v; want log-1 and the dispatcher's answer", l["message"], l["event_id"], l["reason"])
		}
	}
}
