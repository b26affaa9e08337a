package shardedqueue_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/testutil"
)

// emulatorShardCount is how many Cloud Tasks emulator queues the
// conformance suite shards over.
const emulatorShardCount = 2

const (
	emulatorProject  = "eventrelay-test"
	emulatorLocation = "us-central1"
)

// emulatorCapabilities is what the Cloud Tasks emulator v1.2.0 does, as
// cloudtasksqueue's conformance test declares it (its comment and
// docs/lld/queue.md, "Capabilities on the emulator", say why the rest is
// missing), less what no sharded queue promises (capabilities).
var emulatorCapabilities = capabilities(queuetest.Capabilities{
	RateLimit:          true,
	MaxConcurrent:      true,
	MaxAttempts:        true,
	DedupAfterDelivery: true,
	Control:            true,
})

// emulatorAdmin returns a Cloud Tasks client on the emulator at host, for
// what cloudtasksqueue does not export: deleting a test's queues.
func emulatorAdmin(t testing.TB, host string) *cloudtasks.Client {
	t.Helper()
	conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("connect to the emulator at %s: %v", host, err)
	}
	c, err := cloudtasks.NewClient(context.Background(), option.WithGRPCConn(conn))
	if err != nil {
		t.Fatalf("cloudtasks.NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = conn.Close()
	})
	return c
}

// emulatorSharded is a sharded queue over emulator queues, adapted to the
// suite as cloudtasksqueue's own harness adapts one emulator queue: it
// hides Stats (the emulator has no statistics, so Stats is an error:
// TestStats_emulator), and it remembers a Pause, because the emulator
// hangs deleting a queue that was ever paused.
type emulatorSharded struct {
	q          *shardedqueue.Queue
	everPaused *atomic.Bool
}

func (e emulatorSharded) Enqueue(ctx context.Context, t queue.Task) error { return e.q.Enqueue(ctx, t) }

func (e emulatorSharded) TaskExists(ctx context.Context, name string) (bool, error) {
	return e.q.TaskExists(ctx, name)
}

func (e emulatorSharded) Control(ctx context.Context) (queue.Control, error) { return e.q.Control(ctx) }

func (e emulatorSharded) SetRate(ctx context.Context, r float64, by string) error {
	return e.q.SetRate(ctx, r, by)
}

func (e emulatorSharded) Pause(ctx context.Context, by string) error {
	e.everPaused.Store(true)
	return e.q.Pause(ctx, by)
}

func (e emulatorSharded) Resume(ctx context.Context, by string) error { return e.q.Resume(ctx, by) }

// newEmulatorSharded creates n emulator queues configured by
// shardedqueue.Configs(cfg, n), POSTing to target, and returns the sharded
// queue over them. The queues are deleted when the test ends (so the
// emulator stops retrying their tasks), unless they were paused.
func newEmulatorSharded(t testing.TB, host string, cfg queue.Config, n int, target string) emulatorSharded {
	t.Helper()
	admin := emulatorAdmin(t, host)
	everPaused := new(atomic.Bool)
	var shards []shardedqueue.Shard
	for _, c := range shardedqueue.Configs(cfg, n) {
		cq, err := cloudtasksqueue.New(context.Background(), cloudtasksqueue.Options{
			Project:          emulatorProject,
			Location:         emulatorLocation,
			Queue:            c.Name,
			Target:           target,
			DispatchDeadline: c.DispatchDeadline,
			Endpoint:         host,
		})
		if err != nil {
			t.Fatalf("cloudtasksqueue.New(%s): %v", c.Name, err)
		}
		t.Cleanup(func() {
			if err := cq.Close(); err != nil {
				t.Errorf("Close %s: %v", c.Name, err)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = cq.EnsureQueue(ctx, c)
		cancel()
		if err != nil {
			t.Fatalf("EnsureQueue(%s): %v", c.Name, err)
		}
		t.Cleanup(func() {
			if everPaused.Load() {
				t.Logf("not deleting %s: the emulator hangs deleting a queue that was ever paused", cq.Name())
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := admin.DeleteQueue(ctx, &taskspb.DeleteQueueRequest{Name: cq.Name()}); err != nil {
				t.Errorf("DeleteQueue(%s): %v", cq.Name(), err)
			}
		})
		shards = append(shards, shardedqueue.Shard{Name: c.Name, Queue: cq})
	}
	q, err := shardedqueue.New(shards)
	if err != nil {
		t.Fatalf("shardedqueue.New: %v", err)
	}
	return emulatorSharded{q: q, everPaused: everPaused}
}

// uniqueQueueName returns a queue id unique to the run, as the suite's
// names are: the emulator remembers every queue it has seen.
func uniqueQueueName(prefix string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return prefix + "-" + hex.EncodeToString(r[:])
}

// TestConformance_emulator runs the conformance suite over two Cloud Tasks
// emulator queues, with the adaptations harness_test.go lists.
func TestConformance_emulator(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, cfg queue.Config, target string) queue.Queue {
			return newEmulatorSharded(t, host, cfg, emulatorShardCount, shardProxy(t, cfg.Name, emulatorShardCount, target))
		},
		Capabilities: emulatorCapabilities,
	})
}

// TestStats_emulator: the emulator has no queue statistics, so the sharded
// Stats is an error wrapping cloudtasksqueue.ErrNoStats, never zeros.
func TestStats_emulator(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	cfg := queuetest.Config()
	cfg.Name = uniqueQueueName("sharded-stats")
	e := newEmulatorSharded(t, host, cfg, emulatorShardCount, "http://127.0.0.1:1/tasks")
	got, err := e.q.Stats(context.Background())
	if !errors.Is(err, cloudtasksqueue.ErrNoStats) || got != (queue.Stats{}) {
		t.Errorf("Stats() = %+v, %v, want zero Stats and an error wrapping ErrNoStats", got, err)
	}
}
