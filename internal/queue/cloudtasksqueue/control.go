package cloudtasksqueue

import (
	"context"
	"fmt"
	"math"

	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

var _ queue.Controller = (*Queue)(nil)

// MaxRate is the highest max_dispatches_per_second Cloud Tasks accepts.
const MaxRate = 500

// Control reports the queue's live rate (rate_limits.max_dispatches_per_second),
// burst and whether it is paused (state PAUSED), from GetQueue. Burst is
// rate_limits.max_burst_size, which Cloud Tasks picks from the rate (the
// field is output only:
// https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits).
// On the emulator it is the burst the emulator delivers, max_burst_size + 2
// (see emulatorBurst), so that on both Rate + Burst is the most the queue
// sends in its first second after an idle spell. By and At are empty:
// Cloud Tasks keeps no record of who changed a queue (Cloud Audit Logs do,
// and SetRate, Pause and Resume log it).
func (q *Queue) Control(ctx context.Context) (queue.Control, error) {
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	got, err := q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name})
	if err != nil {
		return queue.Control{}, fmt.Errorf("cloudtasksqueue: read the dispatch settings of %s: %w", q.name, err)
	}
	return queue.Control{
		Rate:   got.GetRateLimits().GetMaxDispatchesPerSecond(),
		Burst:  q.liveBurst(got.GetRateLimits().GetMaxBurstSize()),
		Paused: got.GetState() == taskspb.Queue_PAUSED,
	}, nil
}

// liveBurst is the burst a queue reporting max_burst_size delivers: that
// on Google, max_burst_size + 2 on the emulator (emulatorBurst's inverse),
// 0 when the server reports none.
func (q *Queue) liveBurst(maxBurstSize int32) int {
	if maxBurstSize <= 0 {
		return 0
	}
	if q.emulator {
		return int(maxBurstSize) + 2
	}
	return int(maxBurstSize)
}

// SetRate sets the queue's max_dispatches_per_second (UpdateQueue with that
// one field in the mask, so nothing else changes). Cloud Tasks accepts
// 0 < perSecond <= 500; anything else is queue.ErrInvalidRate, without a
// call. The Cloud Tasks emulator does not implement UpdateQueue: there the
// error says so and wraps the Unimplemented status.
func (q *Queue) SetRate(ctx context.Context, perSecond float64, by string) error {
	if !(perSecond > 0) || perSecond > MaxRate || math.IsInf(perSecond, 0) {
		return fmt.Errorf("cloudtasksqueue: set the rate of %s to %v: %w (want > 0 and <= %d)", q.name, perSecond, queue.ErrInvalidRate, MaxRate)
	}
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	_, err := q.client.UpdateQueue(ctx, &taskspb.UpdateQueueRequest{
		Queue: &taskspb.Queue{
			Name:       q.name,
			RateLimits: &taskspb.RateLimits{MaxDispatchesPerSecond: perSecond},
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rate_limits.max_dispatches_per_second"}},
	})
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("cloudtasksqueue: set the rate of %s to %v: UpdateQueue is unimplemented by this server (the Cloud Tasks emulator cannot change a queue's rate): %w", q.name, perSecond, err)
	}
	if err != nil {
		return fmt.Errorf("cloudtasksqueue: set the rate of %s to %v: %w", q.name, perSecond, err)
	}
	logging.FromContext(ctx).Info("queue: dispatch rate changed", "queue", q.name, "rate", perSecond, "by", by)
	return nil
}

// Pause pauses the queue (PauseQueue): Cloud Tasks stops dispatching and
// keeps accepting tasks; deliveries in flight finish.
func (q *Queue) Pause(ctx context.Context, by string) error {
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	if err := q.emulatorQueueExists(ctx); err != nil {
		return fmt.Errorf("cloudtasksqueue: pause %s: %w", q.name, err)
	}
	if _, err := q.client.PauseQueue(ctx, &taskspb.PauseQueueRequest{Name: q.name}); err != nil {
		return fmt.Errorf("cloudtasksqueue: pause %s: %w", q.name, err)
	}
	logging.FromContext(ctx).Warn("queue: dispatching paused; it stays paused until resumed", "queue", q.name, "by", by)
	return nil
}

// Resume resumes a paused queue (ResumeQueue).
func (q *Queue) Resume(ctx context.Context, by string) error {
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	if err := q.emulatorQueueExists(ctx); err != nil {
		return fmt.Errorf("cloudtasksqueue: resume %s: %w", q.name, err)
	}
	if _, err := q.client.ResumeQueue(ctx, &taskspb.ResumeQueueRequest{Name: q.name}); err != nil {
		return fmt.Errorf("cloudtasksqueue: resume %s: %w", q.name, err)
	}
	logging.FromContext(ctx).Info("queue: dispatching resumed", "queue", q.name, "by", by)
	return nil
}

// emulatorQueueExists, on the emulator, checks the queue exists first: the
// emulator dereferences a missing queue in PauseQueue and ResumeQueue and
// crashes. On Google it does nothing (Google answers NotFound itself).
func (q *Queue) emulatorQueueExists(ctx context.Context) error {
	if !q.emulator {
		return nil
	}
	_, err := q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name})
	return err
}
