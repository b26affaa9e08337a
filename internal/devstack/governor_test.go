package devstack_test

import (
	"strings"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// TestGovernorUnderA429Storm cuts the target's limit far below the queue's
// rate with a retry budget of one attempt, so that every rate-limited call
// is an event's last: the governor slows the queue, those events are
// requeued instead of dead-lettered, every event is delivered once the
// target recovers, and the governor raises the queue back to its ceiling.
//
// (With a larger budget the embedded queue rarely lets an event meet two
// rate limits in a row: each 429 pauses the whole queue for its
// Retry-After and the retried task goes first when it resumes.)
func TestGovernorUnderA429Storm(t *testing.T) {
	const (
		n       = 100
		ceiling = 40.0
	)
	stack := startStack(t, devstack.Options{
		TargetRate:  ceiling,
		TargetBurst: 5,
		Retry:       queue.RetryConfig{MaxAttempts: 1, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxDoublings: 2},
		Governor:    governor.Config{Window: time.Second, MinAttempts: 3},
	})
	if stack.Governor == nil {
		t.Fatal("the embedded stack has no governor")
	}
	if err := stack.Target.SetRate(5, 1); err != nil {
		t.Fatalf("cut the target's limit: %v", err)
	}
	sender, err := sourcemock.NewSender(sourcemock.Config{IngestURL: stack.IngestURL, Rate: 100, Count: n, Concurrency: 16,
		Deadline: 5 * time.Second}, stack.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil || len(sum.Accepted) != n {
		t.Fatalf("send: %v, %s", err, sum)
	}

	// The storm goes on until the governor has slowed the queue and some
	// event has met a rate limit on its last attempt.
	testutil.WaitFor(t, 60*time.Second, "the governor to slow the queue", func() bool {
		s := stack.Governor.Snapshot()
		return s.Holding && s.Live.Rate < ceiling
	})
	ctl := stack.Queue.(queue.Controller)
	live, err := ctl.Control(t.Context())
	if err != nil || live.By != queue.ByGovernor || live.Rate >= ceiling {
		t.Errorf("queue control = %+v, %v; want slowed by the governor", live, err)
	}
	testutil.WaitFor(t, 60*time.Second, "an event requeued after a rate-limited last attempt", func() bool {
		recs, err := stack.Status.List(t.Context(), status.Query{Limit: n})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.HasPrefix(r.Reason, "requeued:") {
				return true
			}
		}
		return false
	})

	// The target recovers: everything is delivered, nothing dead-lettered.
	if err := stack.Target.SetRate(1000, 100); err != nil {
		t.Fatal(err)
	}
	waitCount(t, stack, status.Delivered, n)
	counts, err := stack.Status.Counts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if counts[status.DeadLettered] != 0 || counts[status.Failed] != 0 {
		t.Errorf("counts = %v, want nothing dead-lettered or failed: rate limiting only ever delays", counts)
	}
	// Delivered records keep the requeue in their history.
	recs, err := stack.Status.List(t.Context(), status.Query{Status: status.Delivered, Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	requeued := 0
	for _, r := range recs {
		for _, a := range r.Attempts {
			if strings.Contains(a.Error, "requeued as task") {
				requeued++
				break
			}
		}
	}
	if requeued == 0 {
		t.Error("no delivered record shows its requeue")
	}
	st, err := stack.Target.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.DistinctEvents != n {
		t.Errorf("target stored %d distinct events, want %d", st.DistinctEvents, n)
	}
	t.Logf("%d of %d events requeued after a rate-limited last attempt; target %+v; counts %v", requeued, n, st, counts)

	testutil.WaitFor(t, 60*time.Second, "the governor to raise the queue back to its ceiling", func() bool {
		s := stack.Governor.Snapshot()
		return !s.Holding && s.Live.Rate == ceiling
	})
}
