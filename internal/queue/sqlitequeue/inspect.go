package sqlitequeue

import (
	"context"
	"fmt"

	"eventrelay/internal/queue"
)

var _ queue.Inspector = (*Queue)(nil)

// TaskExists reports whether the task named name is in the queue: its
// sidecar row is not finished and its goqite message is there, waiting,
// scheduled for a retry or leased. A delivered or dropped task's row, kept
// DedupWindow for deduplication, has finished_at set and no message: its
// name is remembered, the task does not exist. It reads the file through
// the read pool, so it answers alike in the process that runs the queue and
// in one that only opened the file (relayctl).
func (q *Queue) TaskExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	err := q.rdb.QueryRowContext(ctx, `select exists(
		select 1 from sqlitequeue_tasks t join goqite m on m.id = t.message_id
		where t.name = ? and t.finished_at is null)`, name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("sqlitequeue: task %s exists: %w", name, err)
	}
	return exists, nil
}
