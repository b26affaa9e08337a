package cloudtasksqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"eventrelay/internal/queue"
)

// queueMask lists the fields EnsureQueue sets. max_burst_size is not among
// them: it is output-only on Google (derived from the rate).
var queueMask = []string{
	"rate_limits.max_dispatches_per_second",
	"rate_limits.max_concurrent_dispatches",
	"retry_config.max_attempts",
	"retry_config.max_retry_duration",
	"retry_config.min_backoff",
	"retry_config.max_backoff",
	"retry_config.max_doublings",
}

// purgeMargin: on the emulator, Purge refuses while a task is due within
// this margin (it may be handed to a worker during the purge).
const purgeMargin = 2 * time.Second

// EnsureQueue creates the queue with cfg's rate limits and retry policy, or
// updates an existing queue to them. cfg.Name must be the queue id of the
// Options (it is what deliveries carry in X-CloudTasks-QueueName).
//
// It is for tests and the local stack: in production Terraform owns the
// queue. On the emulator it also sets max_burst_size, sends MaxAttempts -1
// as math.MaxInt32, refuses a rate below 1/s, and reports an existing queue
// with a different configuration as an error; why is in docs/lld/queue.md,
// "Emulator differences from production".
func (q *Queue) EnsureQueue(ctx context.Context, cfg queue.Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cloudtasksqueue: ensure queue %s: %w", q.name, err)
	}
	if want := q.name[len(q.parent+"/queues/"):]; cfg.Name != want {
		return fmt.Errorf("cloudtasksqueue: ensure queue %s: config name %q must be the queue id %q", q.name, cfg.Name, want)
	}
	if q.emulator && cfg.MaxDispatchesPerSecond < 1 {
		return fmt.Errorf("cloudtasksqueue: ensure queue %s: the emulator crashes on a rate below 1/s, got %v", q.name, cfg.MaxDispatchesPerSecond)
	}
	want := q.queueProto(cfg)
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()

	_, err := q.client.CreateQueue(ctx, &taskspb.CreateQueueRequest{Parent: q.parent, Queue: want})
	if status.Code(err) != codes.AlreadyExists {
		if err != nil {
			return fmt.Errorf("cloudtasksqueue: create queue %s: %w", q.name, err)
		}
		return nil
	}
	got, err := q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name})
	if err != nil {
		return fmt.Errorf("cloudtasksqueue: get queue %s: %w", q.name, err)
	}
	if q.sameConfig(got, want) {
		return nil
	}
	_, err = q.client.UpdateQueue(ctx, &taskspb.UpdateQueueRequest{
		Queue:      want,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: queueMask},
	})
	if q.emulator && status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("cloudtasksqueue: queue %s exists with another configuration and the emulator cannot update queues (use a new queue id): %w", q.name, err)
	}
	if err != nil {
		return fmt.Errorf("cloudtasksqueue: update queue %s: %w", q.name, err)
	}
	return nil
}

// queueProto is the queue cfg describes.
func (q *Queue) queueProto(cfg queue.Config) *taskspb.Queue {
	attempts := int32(cfg.Retry.MaxAttempts)
	if cfg.Retry.MaxAttempts > math.MaxInt32 || (q.emulator && cfg.Retry.MaxAttempts == -1) {
		attempts = math.MaxInt32
	}
	rl := &taskspb.RateLimits{
		MaxDispatchesPerSecond:  cfg.MaxDispatchesPerSecond,
		MaxConcurrentDispatches: int32(min(cfg.MaxConcurrentDispatches, math.MaxInt32)),
	}
	if q.emulator {
		rl.MaxBurstSize = emulatorBurst(cfg.MaxBurstSize)
	}
	return &taskspb.Queue{
		Name:       q.name,
		RateLimits: rl,
		RetryConfig: &taskspb.RetryConfig{
			MaxAttempts:      attempts,
			MaxRetryDuration: durationpb.New(cfg.Retry.MaxRetryDuration),
			MinBackoff:       durationpb.New(cfg.Retry.MinBackoff),
			MaxBackoff:       durationpb.New(cfg.Retry.MaxBackoff),
			MaxDoublings:     int32(min(cfg.Retry.MaxDoublings, math.MaxInt32)),
		},
	}
}

// emulatorBurst is the max_burst_size that makes the emulator deliver a
// burst of b: its dispatcher holds one token while it waits for a task and
// its token generator one more while the bucket is full, so it delivers up
// to max_burst_size+2 at once. It cannot go below 1 (0 means 100), so the
// emulator's smallest burst is 3.
func emulatorBurst(b int) int32 {
	return int32(min(max(b-2, 1), math.MaxInt32))
}

// sameConfig reports whether got already has the fields EnsureQueue sets
// to want's values.
func (q *Queue) sameConfig(got, want *taskspb.Queue) bool {
	g, w := got.GetRateLimits(), want.GetRateLimits()
	if g.GetMaxDispatchesPerSecond() != w.GetMaxDispatchesPerSecond() ||
		g.GetMaxConcurrentDispatches() != w.GetMaxConcurrentDispatches() ||
		(q.emulator && g.GetMaxBurstSize() != w.GetMaxBurstSize()) {
		return false
	}
	gr, wr := got.GetRetryConfig(), want.GetRetryConfig()
	return gr.GetMaxAttempts() == wr.GetMaxAttempts() &&
		gr.GetMaxRetryDuration().AsDuration() == wr.GetMaxRetryDuration().AsDuration() &&
		proto.Equal(gr.GetMinBackoff(), wr.GetMinBackoff()) &&
		proto.Equal(gr.GetMaxBackoff(), wr.GetMaxBackoff()) &&
		gr.GetMaxDoublings() == wr.GetMaxDoublings()
}

// Purge deletes every task of the queue. On Google it is asynchronous and
// task names stay taken for about an hour. On the emulator started with
// -hard-reset-on-purge-queue it is synchronous and forgets the names, so
// they can be enqueued again; there, Purge refuses while a task is due or
// being delivered (docs/lld/queue.md, "Emulator differences from
// production").
func (q *Queue) Purge(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	// The emulator dereferences a missing queue and crashes: check first.
	if _, err := q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name}); err != nil {
		return fmt.Errorf("cloudtasksqueue: purge %s: %w", q.name, err)
	}
	if q.emulator {
		if err := q.idle(ctx); err != nil {
			return fmt.Errorf("cloudtasksqueue: purge %s: %w", q.name, err)
		}
	}
	if _, err := q.client.PurgeQueue(ctx, &taskspb.PurgeQueueRequest{Name: q.name}); err != nil {
		return fmt.Errorf("cloudtasksqueue: purge %s: %w", q.name, err)
	}
	return nil
}

// idle returns an error if a task of the queue is due within purgeMargin:
// it may be waiting for a dispatch slot or in flight, which the emulator's
// hard reset cannot cancel.
func (q *Queue) idle(ctx context.Context) error {
	// The emulator lists every unfinished task in one page.
	resp := q.client.ListTasks(ctx, &taskspb.ListTasksRequest{Parent: q.name})
	soon := time.Now().Add(purgeMargin)
	busy := 0
	for {
		t, err := resp.Next()
		if err != nil {
			if errors.Is(err, iterator.Done) {
				break
			}
			return fmt.Errorf("list tasks: %w", err)
		}
		if t.GetScheduleTime().AsTime().Before(soon) {
			busy++
		}
	}
	if busy > 0 {
		return fmt.Errorf("%d tasks are due or in flight; the emulator's hard reset would crash on them: wait for them to finish", busy)
	}
	return nil
}
