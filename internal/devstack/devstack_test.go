package devstack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/event"
	"eventrelay/internal/logging"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/testutil"
)

func startStack(t *testing.T, o devstack.Options) *devstack.Stack {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.IngestAddr, o.TargetAddr, o.DispatcherAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx := logging.WithLogger(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	stack, err := devstack.Start(context.WithoutCancel(ctx), o)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
	})
	return stack
}

// waitDistinct waits until the target stored want distinct events.
func waitDistinct(t *testing.T, stack *devstack.Stack, want int, timeout time.Duration) {
	t.Helper()
	got := 0
	defer func() {
		if t.Failed() {
			t.Logf("the target stored %d of %d events", got, want)
		}
	}()
	testutil.WaitFor(t, timeout, fmt.Sprintf("the target to store %d distinct events", want), func() bool {
		st, err := stack.Target.Stats(t.Context())
		if err != nil {
			t.Fatalf("target stats: %v", err)
		}
		got = st.DistinctEvents
		return got >= want
	})
}

// TestEndToEnd is the pipeline's acceptance test: 2,000 events sent at 4x
// the target's limit are all delivered, each once, each with the configured
// brand; the target never sees more than limit+burst calls in any second;
// and the backlog drains within 5 % of N / limit.
func TestEndToEnd(t *testing.T) {
	const (
		n           = 2000
		limit       = 50.0
		targetBurst = 5
	)
	stack := startStack(t, devstack.Options{TargetRate: limit, TargetBurst: targetBurst})

	sender, err := sourcemock.NewSender(sourcemock.Config{
		IngestURL:   stack.IngestURL,
		Rate:        4 * limit,
		Count:       n,
		Concurrency: 64,
		Deadline:    500 * time.Millisecond,
	}, stack.Token, nil)
	if err != nil {
		t.Fatalf("new sender: %v", err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	t.Logf("source: %s", sum)
	if got := len(sum.Accepted); got != n {
		t.Fatalf("source saw %d of %d events accepted within 500 ms: %s", got, n, sum)
	}

	ideal := time.Duration(n / limit * float64(time.Second))
	waitDistinct(t, stack, n, 2*ideal)

	events, err := stack.Target.Events(t.Context())
	if err != nil {
		t.Fatalf("target events: %v", err)
	}
	byID := make(map[string]int, len(events))
	var first, last time.Time
	for _, e := range events {
		byID[e.ID] = e.Calls
		if e.Brand != event.DefaultBrand {
			t.Errorf("event %s reached the target with brand %q, want %q", e.ID, e.Brand, event.DefaultBrand)
		}
		if first.IsZero() || e.FirstReceivedAt.Before(first) {
			first = e.FirstReceivedAt
		}
		if e.FirstReceivedAt.After(last) {
			last = e.FirstReceivedAt
		}
	}
	for _, id := range sum.Accepted {
		calls, ok := byID[id]
		switch {
		case !ok:
			t.Errorf("event %s got a 202 but never reached the target", id)
		case calls != 1:
			t.Errorf("event %s reached the target in %d calls, want 1", id, calls)
		}
	}
	if len(events) != n {
		t.Errorf("target stored %d events, want %d", len(events), n)
	}

	st, err := stack.Target.Stats(t.Context())
	if err != nil {
		t.Fatalf("target stats: %v", err)
	}
	t.Logf("target: %+v", st)
	if st.MaxCallsPerSecond > int(limit)+targetBurst {
		t.Errorf("target saw %d calls in one second, limit %v + burst %d", st.MaxCallsPerSecond, limit, targetBurst)
	}
	if st.Duplicates != 0 {
		t.Errorf("target saw %d duplicate calls, want 0", st.Duplicates)
	}

	drain := last.Sub(first)
	t.Logf("drain %v, ideal N/limit %v (x%.3f)", drain, ideal, drain.Seconds()/ideal.Seconds())
	if math.Abs(drain.Seconds()-ideal.Seconds()) > 0.05*ideal.Seconds() {
		t.Errorf("drain took %v, want within 5%% of %v", drain, ideal)
	}

	counts, err := stack.Status.Counts(t.Context())
	if err != nil {
		t.Fatalf("status counts: %v", err)
	}
	if counts[status.Delivered] != n {
		t.Errorf("status store has %d delivered records, want %d (counts %v)", counts[status.Delivered], n, counts)
	}
}

func TestMain(m *testing.M) {
	// The stack propagates trace context through the global propagator, as
	// relayctl dev and every service main set it up.
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "devstack-test", SampleRatio: 1})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	os.Exit(code)
}
