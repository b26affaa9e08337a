package cloudtasksqueue

import (
	"context"

	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"

	"eventrelay/internal/queue"
)

// Request exposes the CreateTaskRequest Enqueue sends.
func (q *Queue) Request(t queue.Task) *taskspb.CreateTaskRequest { return q.request(t) }

// QueueProto exposes the queue EnsureQueue asks for.
func (q *Queue) QueueProto(cfg queue.Config) *taskspb.Queue { return q.queueProto(cfg) }

// GetQueue reads the queue as the server has it.
func (q *Queue) GetQueue(ctx context.Context) (*taskspb.Queue, error) {
	return q.client.GetQueue(ctx, &taskspb.GetQueueRequest{Name: q.name})
}

// GetTask reads one task as the server has it.
func (q *Queue) GetTask(ctx context.Context, taskID string) (*taskspb.Task, error) {
	return q.client.GetTask(ctx, &taskspb.GetTaskRequest{Name: q.TaskPath(taskID)})
}

// DeleteQueue deletes the queue, which stops the emulator from retrying its
// tasks once a test is over.
func (q *Queue) DeleteQueue(ctx context.Context) error {
	return q.client.DeleteQueue(ctx, &taskspb.DeleteQueueRequest{Name: q.name})
}
