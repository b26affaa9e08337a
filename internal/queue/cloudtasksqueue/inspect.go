package cloudtasksqueue

import (
	"context"
	"fmt"
	"time"

	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"eventrelay/internal/queue"
)

var _ queue.Inspector = (*Queue)(nil)

// taskExistsTimeout bounds one TaskExists call. Its caller (the reconciler)
// checks many tasks and tries again on its next run, so a slow answer is
// better given up than waited for.
const taskExistsTimeout = 5 * time.Second

// emulatorGetTaskTries bounds how often TaskExists asks the emulator about
// one task when it answers a garbled message.
const emulatorGetTaskTries = 5

// noRetry replaces the client's default retry of GetTask (on Unavailable
// and DeadlineExceeded, for up to 20s) with a single attempt.
var noRetry = gax.WithRetry(func() gax.Retryer { return nil })

// TaskExists reports whether the task named name (a task id, as Enqueue
// takes it) is on the queue: waiting, scheduled for a retry, or being
// dispatched. It is one GetTask on the full task name with the default
// BASIC view (no body), bounded by 5s (less if ctx says so) and never
// retried. NotFound, what Google answers for a task that was delivered,
// used its last attempt, or was deleted, is false. So is NotFound for a
// queue that does not exist: check the queue name once elsewhere (Control
// does) rather than through this.
//
// On the emulator, FailedPrecondition ("existed recently"), its answer for
// a delivered or deleted task, is false too; and a task it still returns
// after its last attempt failed is false, since the emulator keeps such a
// task instead of deleting it (docs/lld/queue.md, "Emulator differences
// from production"). Any other error is returned: it is never a "no".
func (q *Queue) TaskExists(ctx context.Context, name string) (bool, error) {
	if !taskIDRe.MatchString(name) {
		return false, fmt.Errorf("cloudtasksqueue: task name %q must be 1-500 of [A-Za-z0-9_-]", name)
	}
	ctx, cancel := context.WithTimeout(ctx, taskExistsTimeout)
	defer cancel()
	task, err := q.client.GetTask(ctx, &taskspb.GetTaskRequest{Name: q.TaskPath(name)}, noRetry)
	// The emulator marshals a task while its dispatch goroutine writes to
	// it, and now and then answers a garbled message (Internal, "cannot
	// parse invalid wire-format data"). Ask it again; Google's API has no
	// such race, so there an Internal error is returned as it is.
	for try := 1; q.emulator && try < emulatorGetTaskTries && status.Code(err) == codes.Internal && ctx.Err() == nil; try++ {
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
		task, err = q.client.GetTask(ctx, &taskspb.GetTaskRequest{Name: q.TaskPath(name)}, noRetry)
	}
	switch {
	case err == nil:
	case status.Code(err) == codes.NotFound:
		return false, nil
	case q.emulator && status.Code(err) == codes.FailedPrecondition:
		return false, nil
	default:
		return false, fmt.Errorf("cloudtasksqueue: get task %s: %w", q.TaskPath(name), err)
	}
	if q.emulator {
		return q.emulatorTaskLive(ctx, task)
	}
	return true, nil
}

// emulatorTaskLive tells whether a task the emulator returned will still
// be dispatched: not when its last attempt was answered (the answer was
// not a 2xx, or the task would be gone) and it used the queue's
// max_attempts. It reads the queue only for a task that was answered at
// least once.
func (q *Queue) emulatorTaskLive(ctx context.Context, task *taskspb.Task) (bool, error) {
	last := task.GetLastAttempt()
	if last == nil || last.GetResponseTime() == nil {
		return true, nil // never dispatched, or in flight
	}
	got, err := q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name}, noRetry)
	if err != nil {
		return false, fmt.Errorf("cloudtasksqueue: get queue %s: %w", q.name, err)
	}
	return task.GetDispatchCount() < got.GetRetryConfig().GetMaxAttempts(), nil
}
