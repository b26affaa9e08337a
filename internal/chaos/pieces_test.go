package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/devstack"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/testutil"
)

func TestCallsBetweenAndRecoveryTime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// n calls of outcome o spread evenly over [from, from+span).
	spread := func(o targetmock.Outcome, from, span, n int) []targetmock.Call {
		var c []targetmock.Call
		for i := range n {
			c = append(c, targetmock.Call{At: at(from + i*span/n), Outcome: o})
		}
		return c
	}
	cases := []struct {
		name         string
		calls        []targetmock.Call
		wantOutage   int
		wantRecovery time.Duration
		wantOK       bool
	}{
		{
			name:         "full rate at once",
			calls:        slices.Concat(spread(targetmock.OutcomeFault, 0, 5000, 50), spread(targetmock.OutcomeAccepted, 5000, 3000, 30)),
			wantOutage:   50,
			wantRecovery: 0, wantOK: true,
		},
		{
			// 10/s from 2 s after healing: the first second holding 9 of
			// those calls starts 100 ms earlier.
			name: "a trickle, then full rate 2 s after healing",
			calls: slices.Concat(spread(targetmock.OutcomeFault, 0, 5000, 5),
				spread(targetmock.OutcomeAccepted, 5000, 2000, 4), spread(targetmock.OutcomeAccepted, 7000, 2000, 20)),
			wantOutage:   5,
			wantRecovery: 1900 * time.Millisecond, wantOK: true,
		},
		{
			name:       "never back to full rate",
			calls:      slices.Concat(spread(targetmock.OutcomeFault, 0, 5000, 5), spread(targetmock.OutcomeAccepted, 5000, 5000, 25)),
			wantOutage: 5,
		},
		{
			name:       "failures after healing do not count",
			calls:      slices.Concat(spread(targetmock.OutcomeFault, 0, 8000, 80)),
			wantOutage: 50,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := callsBetween(tc.calls, at(0), at(5000)); got != tc.wantOutage {
				t.Errorf("callsBetween = %d, want %d", got, tc.wantOutage)
			}
			// A 10/s limit: full rate is 9 accepted calls within a second.
			got, ok := recoveryTime(tc.calls, at(5000), 10)
			if ok != tc.wantOK || got != tc.wantRecovery {
				t.Errorf("recoveryTime = %v, %v; want %v, %v", got, ok, tc.wantRecovery, tc.wantOK)
			}
		})
	}
}

func TestLastAttemptDropper(t *testing.T) {
	t.Parallel()
	var handled []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled = append(handled, r.Header.Get(queue.HeaderTaskName)+"#"+r.Header.Get(queue.HeaderRetryCount))
		w.WriteHeader(http.StatusOK)
	})
	l := newLastAttemptDropper(queue.RetryConfig{MaxAttempts: 3}, pickOriginal)
	h := l.wrap(next)
	picked := queue.TaskName("evt-12") // its hex starts with "0"
	if !pickOriginal(picked) {
		t.Fatalf("test setup: %s is not picked", picked)
	}
	other := queue.TaskName("evt-1")
	requeued, _ := queue.RequeueTaskName("evt-12", picked)
	cases := []struct {
		name, task string
		retry      int
		want       int
	}{
		{"picked, first attempt", picked, 0, http.StatusInternalServerError},
		{"picked, second attempt", picked, 1, http.StatusInternalServerError},
		{"picked, last attempt", picked, 2, http.StatusServiceUnavailable},
		{"not picked, last attempt", other, 2, http.StatusOK},
		{"requeued task of a picked event", requeued, 2, http.StatusOK},
	}
	for _, tc := range cases {
		body, _ := json.Marshal(map[string]string{"id": "evt-12"})
		req := httptest.NewRequest(http.MethodPost, "/tasks/events", bytes.NewReader(body))
		req.Header.Set(queue.HeaderTaskName, tc.task)
		req.Header.Set(queue.HeaderRetryCount, strconv.Itoa(tc.retry))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
	want := []string{other + "#2", requeued + "#2"}
	if diff := cmp.Diff(want, handled); diff != "" {
		t.Errorf("deliveries that reached the handler (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"evt-12"}, l.droppedIDs()); diff != "" {
		t.Errorf("dropped events (-want +got):\n%s", diff)
	}
	if got := l.earlier.Load(); got != 2 {
		t.Errorf("%d earlier attempts answered 500, want 2", got)
	}
}

// TestVanishEmbedded removes tasks from a real embedded queue's file and
// checks that they end as a finished task does: never delivered, their
// name still remembered (an enqueue under it is a duplicate), while every
// other task is delivered.
func TestVanishEmbedded(t *testing.T) {
	t.Parallel()
	var (
		mu        sync.Mutex
		delivered []string
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delivered = append(delivered, r.Header.Get(queue.HeaderTaskName))
		mu.Unlock()
	}))
	t.Cleanup(target.Close)
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := t.Context()
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: queuetest.Config(), Target: target.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	var all []string
	for i := range 10 {
		name := queue.TaskName("evt-" + strconv.Itoa(i))
		all = append(all, name)
		if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{"id":"x"}`)}); err != nil {
			t.Fatal(err)
		}
	}

	gone, err := vanishEmbedded(ctx, path, 3)
	if err != nil {
		t.Fatalf("vanishEmbedded: %v", err)
	}
	if diff := cmp.Diff(all[7:], sorted(gone, all)); diff != "" {
		t.Errorf("removed tasks: want the three enqueued last (-want +got):\n%s", diff)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 7 {
		t.Errorf("backlog %d after removing 3 of 10, want 7", st.Backlog)
	}
	if err := q.Enqueue(ctx, queue.Task{Name: gone[0], Body: []byte(`{}`)}); !errors.Is(err, queue.ErrAlreadyExists) {
		t.Errorf("enqueue under a removed task's name: %v, want ErrAlreadyExists (the name is remembered)", err)
	}

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(rctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Backlog == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(all[:7], sorted(delivered, all)); diff != "" {
		t.Errorf("delivered tasks: want every task not removed (-want +got):\n%s", diff)
	}
}

// sorted returns names in the order they have in order.
func sorted(names, order []string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	return out
}

// TestVanishCloudTasks deletes tasks that wait in a Cloud Tasks emulator
// queue through the API: the ones scheduled last go, the others stay.
func TestVanishCloudTasks(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	ctx := t.Context()
	cfg := queuetest.Config()
	cfg.Name = fmt.Sprintf("chaos-vanish-%d", time.Now().UnixNano())
	q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
		Project: "eventrelay-dev", Location: "us-central1", Queue: cfg.Name,
		Target: "http://127.0.0.1:9/never", DispatchDeadline: time.Second, Endpoint: host,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	if err := q.EnsureQueue(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// Scheduled an hour ahead, so that none is dispatched meanwhile; the
	// later a task's schedule, the later it is in the backlog.
	var all []string
	base := time.Now().Add(time.Hour)
	for i := range 5 {
		name := queue.TaskName(fmt.Sprintf("evt-%d-%s", i, cfg.Name))
		all = append(all, name)
		if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{}`), NotBefore: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	path := queuePath(devstack.GCPOptions{}, cfg.Name)
	gone, err := vanishCloudTasks(ctx, host, path, 2, time.Minute)
	if err != nil {
		t.Fatalf("vanishCloudTasks: %v", err)
	}
	if diff := cmp.Diff(all[3:], sorted(gone, all)); diff != "" {
		t.Errorf("deleted tasks: want the two scheduled last (-want +got):\n%s", diff)
	}
	// What is left is exactly the other three.
	rest, err := vanishCloudTasks(ctx, host, path, 10, time.Minute)
	if err != nil {
		t.Fatalf("vanishCloudTasks: %v", err)
	}
	if diff := cmp.Diff(all[:3], sorted(rest, all)); diff != "" {
		t.Errorf("tasks left in the queue (-want +got):\n%s", diff)
	}
}
