package sqlitequeue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"maragu.dev/goqite"

	"eventrelay/internal/queue"
)

// Request states: the writer takes a pending request, or Enqueue abandons it
// when its context ends first; exactly one of the two wins.
const (
	statePending int32 = iota
	stateTaken
	stateAbandoned
)

// request is one Enqueue waiting for the group commit.
type request struct {
	task   queue.Task
	header []byte
	state  atomic.Int32
	done   chan error // buffered; the writer answers every request it took
}

// Enqueue stores t durably. It returns nil once the task is committed (and
// fsynced), an error wrapping queue.ErrAlreadyExists if a task with the same
// name is remembered, or an error wrapping queue.ErrUnavailable if ctx ended
// or the database failed first. Concurrent calls share one transaction.
func (q *Queue) Enqueue(ctx context.Context, t queue.Task) error {
	if t.Name == "" {
		return errors.New("sqlitequeue: enqueue: task name is required")
	}
	if err := ctx.Err(); err != nil {
		return unavailable(t.Name, err)
	}
	hdr, err := json.Marshal(t.Header)
	if err != nil {
		return fmt.Errorf("sqlitequeue: enqueue task %s: encode header: %w", t.Name, err)
	}
	r := &request{task: t, header: hdr, done: make(chan error, 1)}
	select {
	case q.reqs <- r:
	case <-q.stop:
		return unavailable(t.Name, errors.New("queue closed"))
	case <-ctx.Done():
		return unavailable(t.Name, ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(statePending, stateAbandoned) {
			return unavailable(t.Name, ctx.Err())
		}
		// The writer is committing it: the caller's deadline wins, and the
		// task may still be stored, as with a Cloud Tasks CreateTask call
		// that times out. A retry with the same name is then deduplicated.
		return unavailable(t.Name, fmt.Errorf("outcome unknown: %w", ctx.Err()))
	}
}

func unavailable(name string, cause error) error {
	return fmt.Errorf("sqlitequeue: enqueue task %s: %w: %w", name, queue.ErrUnavailable, cause)
}

// writer group-commits Enqueue requests until Close.
func (q *Queue) writer() {
	defer q.writerWG.Done()
	batch := make([]*request, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-q.reqs:
			batch = append(batch, r)
		case <-q.stop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-q.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		taken := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(statePending, stateTaken) {
				taken = append(taken, r)
			}
		}
		if len(taken) == 0 {
			continue
		}
		results := q.commit(taken)
		for i, r := range taken {
			r.done <- results[i]
		}
		q.signal()
	}
}

// commit stores the batch in one transaction and returns each request's
// result. If the transaction fails, every request fails with ErrUnavailable.
func (q *Queue) commit(batch []*request) []error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	results := make([]error, len(batch))
	fail := func(err error) []error {
		for i, r := range batch {
			results[i] = unavailable(r.task.Name, err)
		}
		return results
	}
	tx, err := q.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	now := time.Now()
	cutoff := now.Add(-q.o.DedupWindow).UnixNano()
	for i, r := range batch {
		created, err := q.insert(ctx, tx, r, now, cutoff)
		if err != nil {
			return fail(err)
		}
		if !created {
			results[i] = fmt.Errorf("sqlitequeue: enqueue task %s: %w", r.task.Name, queue.ErrAlreadyExists)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return results
}

// insert adds one task unless its name is remembered. An expired name (past
// the dedup window but not yet purged) is reused as if new.
func (q *Queue) insert(ctx context.Context, tx *sql.Tx, r *request, now time.Time, cutoff int64) (bool, error) {
	prio := q.nextPriority(now)
	body := r.task.Body
	if body == nil {
		body = []byte{}
	}
	id, err := q.gq.SendAndGetIDTx(ctx, tx, goqite.Message{Body: body, Priority: -int(prio)})
	if err != nil {
		return false, fmt.Errorf("send message: %w", err)
	}
	var one int
	err = tx.QueryRowContext(ctx, `insert into sqlitequeue_tasks (name, message_id, header, enqueued_at, eta)
		values (?, ?, ?, ?, ?)
		on conflict (name) do update set
			message_id = excluded.message_id, header = excluded.header,
			enqueued_at = excluded.enqueued_at, eta = excluded.eta,
			attempts = 0, executions = 0, first_attempt = null, leased = 0, finished_at = null
		where sqlitequeue_tasks.finished_at is not null and sqlitequeue_tasks.finished_at < ?
		returning 1`,
		r.task.Name, string(id), r.header, prio, prio, cutoff).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := q.gq.DeleteTx(ctx, tx, id); err != nil {
			return false, fmt.Errorf("delete duplicate message: %w", err)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("insert task: %w", err)
	}
	return true, nil
}

// signal wakes the dispatch loop without blocking.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
