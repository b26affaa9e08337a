package devstack_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/queue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
)

// TestReconcilerRequeuesLostTasks puts a front end before the dispatcher
// that answers every original task's only attempt itself (503), as Cloud
// Run's can: the queue drops the tasks, the handler never ran, and the
// records stay queued. The stack's reconciler requeues each event under
// the next name of its chain, and the target receives each exactly once.
func TestReconcilerRequeuesLostTasks(t *testing.T) {
	const n = 5
	var answered, requeued atomic.Int32
	o := devstack.Options{
		// The requeues go through the stack's queue seam, as ingest's tasks.
		WrapQueue: func(q queue.Queue) queue.Queue {
			return enqueueFunc(func(ctx context.Context, t queue.Task) error {
				if strings.Contains(t.Name, "-q") {
					requeued.Add(1)
				}
				return q.Enqueue(ctx, t)
			})
		},
		TargetRate: 50,
		Retry:      queue.RetryConfig{MaxAttempts: 1, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxDoublings: 1},
		// A queue with a finite budget of its own drops the tasks.
		QueueMaxAttempts: 1,
		Reconcile:        reconcile.Config{Grace: 300 * time.Millisecond, Interval: 100 * time.Millisecond},
		WrapDispatcher: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if name := r.Header.Get(queue.HeaderTaskName); name != "" && !strings.Contains(name, "-q") {
					answered.Add(1)
					w.WriteHeader(http.StatusServiceUnavailable) // the front end's answer
					return
				}
				next.ServeHTTP(w, r)
			})
		},
	}
	stack := startStack(t, o)
	if stack.Reconciler == nil {
		t.Fatal("the stack runs no reconciler")
	}
	if got := stack.Reconciler.Config(); got.Grace != o.Reconcile.Grace || got.Policy != reconcile.PolicyRequeue || got.PageSize != 200 {
		t.Errorf("reconciler config = %+v, want the options' grace and the env tags' other defaults", got)
	}
	sender, err := sourcemock.NewSender(sourcemock.Config{IngestURL: stack.IngestURL, Rate: 50, Count: n, Concurrency: 4,
		Deadline: 5 * time.Second}, stack.Token, nil)
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil || len(sum.Accepted) != n {
		t.Fatalf("send: %v, %s", err, sum)
	}
	waitCount(t, stack, status.Delivered, n)
	if requeued.Load() != n {
		t.Errorf("%d requeues went through WrapQueue, want %d", requeued.Load(), n)
	}
	if answered.Load() < n {
		t.Errorf("the front end answered %d deliveries, want every original task's (%d)", answered.Load(), n)
	}
	for _, id := range sum.Accepted {
		ev, err := stack.Target.Event(t.Context(), id)
		if err != nil {
			t.Errorf("target has no %s: %v", id, err)
			continue
		}
		if ev.Calls != 1 {
			t.Errorf("event %s reached the target in %d calls, want 1", id, ev.Calls)
		}
		rec, err := stack.Status.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("status %s: %v", id, err)
		}
		reconciled := 0
		for _, a := range rec.Attempts {
			if a.Outcome == status.OutcomeReconciled {
				reconciled++
				if a.TaskName != queue.TaskName(id)+"-q1" {
					t.Errorf("%s reconciled as task %s, want -q1", id, a.TaskName)
				}
			}
		}
		if reconciled != 1 {
			t.Errorf("%s has %d reconciled entries, want 1", id, reconciled)
		}
	}
}

// enqueueFunc is a queue.Queue made of a function.
type enqueueFunc func(context.Context, queue.Task) error

func (f enqueueFunc) Enqueue(ctx context.Context, t queue.Task) error { return f(ctx, t) }
