package devstack_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// shardedEventsEnv sets how many events TestEndToEndShards sends: 2,000 by
// default (10 s of the limit), 4,000 for the full run.
const shardedEventsEnv = "E2E_SHARDED_EVENTS"

// TestEndToEndShards runs the pipeline on four embedded queue shards: n
// events sent at 4x a 200/s limit are all delivered once with the brand,
// the target (by its own record) never sees more than limit + burst calls
// in any second across the shards, and the backlog drains within 5 % of
// N/limit, the ideal.
//
// The target's burst is a quarter second of its limit: the four embedded
// shards are four SQLite files, each group-committing its own enqueues, so
// while ingest takes 800/s the one process can stall and release a
// bunch of deliveries together, which a smaller burst answers with 429s
// (each pausing its shard for the Retry-After). The single queue of
// TestEndToEnd dispatches one smooth stream and needs no such margin.
//
// The shards share the rate, not the events' ids: at an equal split each
// runs at limit/4 over the events queue.ShardOf gives it, and the drain
// would take as long as the fullest shard, (its events) / (limit/4),
// some 5 % over N/limit with random ids. The dispatcher's balancer
// (QUEUE_SHARD_BALANCE_INTERVAL, 1 s on the embedded engine) re-splits the
// limit by the shards' backlogs, so they finish together: the test holds
// the drain to N/limit and logs the fullest shard's figure beside it.
func TestEndToEndShards(t *testing.T) {
	const (
		shards      = 4
		limit       = 200.0
		targetBurst = 50
	)
	n := 2000
	if v := os.Getenv(shardedEventsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of events", shardedEventsEnv, v)
		}
	}
	stack := startStack(t, devstack.Options{TargetRate: limit, TargetBurst: targetBurst, QueueShards: shards})
	checkShards(t, stack, shards, limit)
	sum := sendAll(t, stack, n, 4*limit, 64)
	perShard := shardCounts(sum.Accepted, shards)
	ideal := time.Duration(float64(n) / limit * float64(time.Second))
	waitDistinct(t, stack, n, 2*ideal+10*time.Second)

	first, last := checkDelivered(t, stack, sum.Accepted)
	checkTargetRate(t, stack, limit, targetBurst)

	fullest := time.Duration(float64(slicesMax(perShard)) / (limit / shards) * float64(time.Second))
	drain := last.Sub(first)
	t.Logf("%d events over %d shards %v: drain %v; ideal N/limit %v (x%.3f); fullest shard's %v (x%.3f)",
		n, shards, perShard, drain, ideal, drain.Seconds()/ideal.Seconds(), fullest, drain.Seconds()/fullest.Seconds())
	if math.Abs(drain.Seconds()-ideal.Seconds()) > 0.05*ideal.Seconds() {
		t.Errorf("drain took %v, want within 5%% of N/limit %v (the fullest shard's share would take %v)", drain, ideal, fullest)
	}
	if stack.Governor == nil {
		t.Fatal("the stack runs no governor, so no shard balancer")
	}
	// The balancer kept the total: the shards' rates still sum to the limit.
	ctl, err := stack.Queue.(interface {
		Control(context.Context) (queue.Control, error)
	}).Control(t.Context())
	if err != nil || math.Abs(ctl.Rate-limit) > 1e-6 {
		t.Errorf("the queue's total rate after the drain = %v (%v), want the limit %v", ctl.Rate, err, limit)
	}
	counts, err := stack.Status.Counts(t.Context())
	if err != nil {
		t.Fatalf("status counts: %v", err)
	}
	if counts[status.Delivered] != int64(n) {
		t.Errorf("status store has %d delivered records, want %d (counts %v)", counts[status.Delivered], n, counts)
	}
}

// TestEndToEndShardsGCP is TestEndToEndShards on the emulators, smaller: 400
// events at 4x a 20/s limit over two Cloud Tasks queues, all delivered
// once with the brand, the target never above limit + the shards' bursts
// in a second. The drain is logged, not held: the emulator's pace is its
// own.
func TestEndToEndShardsGCP(t *testing.T) {
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	issuer := os.Getenv(testutil.CloudTasksOIDCIssuerEnv)
	if issuer == "" {
		t.Fatalf("%s is not set (scripts/emulators.sh exports it with the emulator's address)", testutil.CloudTasksOIDCIssuerEnv)
	}
	const (
		n           = 400
		shards      = 2
		limit       = 20.0
		targetBurst = 6 // the emulator bursts at least 3 per queue (docs/lld/queue.md, "Shards")
	)
	// The emulator remembers queue ids and task names forever: fresh
	// queues and collection per run.
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	stack := startStack(t, devstack.Options{
		Engine: devstack.EngineGCP, TargetRate: limit, TargetBurst: targetBurst, QueueShards: shards,
		GCP: devstack.GCPOptions{Queue: "shards-" + suffix, Collection: "shards-" + suffix, TasksEndpoint: tasks, OIDCIssuer: issuer},
	})
	checkShards(t, stack, shards, limit)
	sum := sendAll(t, stack, n, 4*limit, 32)
	t.Logf("per shard %v", shardCounts(sum.Accepted, shards))
	waitDistinct(t, stack, n, 3*time.Duration(n/limit)*time.Second)
	first, last := checkDelivered(t, stack, sum.Accepted)
	checkTargetRate(t, stack, limit, targetBurst)
	t.Logf("drain %v, N/limit %v", last.Sub(first), time.Duration(n/limit)*time.Second)
	counts, err := stack.Status.Counts(t.Context())
	if err != nil {
		t.Fatalf("status counts: %v", err)
	}
	if counts[status.Delivered] != n {
		t.Errorf("Firestore has %d delivered records, want %d (%v)", counts[status.Delivered], n, counts)
	}
}

// checkShards checks the stack's queue is shards queues, each at limit /
// shards.
func checkShards(t *testing.T, stack *devstack.Stack, shards int, limit float64) {
	t.Helper()
	sq, ok := stack.Queue.(interface {
		ShardControls(context.Context) []shardedqueue.ShardControl
	})
	if !ok {
		t.Fatalf("the stack's queue %T is not sharded", stack.Queue)
	}
	got := sq.ShardControls(t.Context())
	if len(got) != shards {
		t.Fatalf("the stack's queue has %d shards, want %d", len(got), shards)
	}
	for i, sc := range got {
		if want := queue.ShardName(stack.QueueConfig.Name, i); sc.Err != nil || sc.Name != want || sc.Control.Rate != limit/float64(shards) {
			t.Errorf("shard %d = %+v, want %s at %v/s", i, sc, want, limit/float64(shards))
		}
	}
}

// sendAll sends n events to the stack at rate and requires every one
// accepted.
func sendAll(t *testing.T, stack *devstack.Stack, n int, rate float64, concurrency int) sourcemock.Summary {
	t.Helper()
	sender, err := sourcemock.NewSender(sourcemock.Config{
		IngestURL: stack.IngestURL, Rate: rate, Count: n, Concurrency: concurrency, Deadline: 500 * time.Millisecond,
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
	return sum
}

// shardCounts counts the events each shard carries.
func shardCounts(ids []string, shards int) []int {
	out := make([]int, shards)
	for _, id := range ids {
		out[queue.ShardOf(queue.TaskName(id), shards)]++
	}
	return out
}

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// checkDelivered checks, by the target's record, that every accepted event
// reached it in one call with the default brand and nothing else did; it
// returns when the target first received the first and the last event.
func checkDelivered(t *testing.T, stack *devstack.Stack, accepted []string) (first, last time.Time) {
	t.Helper()
	events, err := stack.Target.Events(t.Context())
	if err != nil {
		t.Fatalf("target events: %v", err)
	}
	byID := make(map[string]int, len(events))
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
	for _, id := range accepted {
		switch calls, ok := byID[id]; {
		case !ok:
			t.Errorf("event %s got a 202 but never reached the target", id)
		case calls != 1:
			t.Errorf("event %s reached the target in %d calls, want 1", id, calls)
		}
	}
	if len(events) != len(accepted) {
		t.Errorf("target stored %d events, want %d", len(events), len(accepted))
	}
	return first, last
}

// checkTargetRate checks, by the target's own record, that it never saw
// more than limit + burst calls in one second, and no duplicate.
func checkTargetRate(t *testing.T, stack *devstack.Stack, limit float64, burst int) {
	t.Helper()
	st, err := stack.Target.Stats(t.Context())
	if err != nil {
		t.Fatalf("target stats: %v", err)
	}
	t.Logf("target: %+v", st)
	if st.MaxCallsPerSecond > int(limit)+burst {
		t.Errorf("target saw %d calls in one second, limit %v + burst %d", st.MaxCallsPerSecond, limit, burst)
	}
	if st.Duplicates != 0 {
		t.Errorf("target saw %d duplicate calls, want 0", st.Duplicates)
	}
}
