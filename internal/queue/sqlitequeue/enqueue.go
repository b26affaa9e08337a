package sqlitequeue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

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
// A task with a future t.NotBefore is kept until then (its goqite timeout
// and its ETA are NotBefore); among ready tasks it keeps its enqueue-order
// place.
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
	stmts := make(batchStmts)
	defer stmts.close()
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
		results := q.commit(stmts, taken)
		for i, r := range taken {
			r.done <- results[i]
		}
		q.signal()
	}
}

// Statements of the two batch inserts, for one batch size.
const (
	insertMessages = `insert into goqite (id, queue, body, timeout, priority) values `
	// A remembered name makes its row a no-op; an expired one (past the
	// dedup window, not yet purged) is reused as if new. RETURNING names
	// the rows written.
	insertTasks = `insert into sqlitequeue_tasks (name, message_id, header, enqueued_at, eta)
		values %s
		on conflict (name) do update set
			message_id = excluded.message_id, header = excluded.header,
			enqueued_at = excluded.enqueued_at, eta = excluded.eta,
			attempts = 0, executions = 0, first_attempt = null, leased = 0, finished_at = null
		where sqlitequeue_tasks.finished_at is not null and sqlitequeue_tasks.finished_at < ?
		returning message_id`
	// maxPreparedBatch is the largest batch whose statements are kept
	// prepared: the sizes a steady load produces. A larger batch (a burst)
	// prepares its own, once per many tasks.
	maxPreparedBatch = 64
)

// batchStmts are the writer's prepared batch inserts by batch size, so that
// a commit parses no SQL inside the write transaction, which every Enqueue
// waits behind. Only the writer goroutine uses it.
type batchStmts map[int][2]*sql.Stmt

// get returns the statements for a batch of n, preparing them at first use;
// nil ones for a batch too large to keep.
func (s batchStmts) get(ctx context.Context, db *sql.DB, n int) ([2]*sql.Stmt, error) {
	if n > maxPreparedBatch {
		return [2]*sql.Stmt{}, nil
	}
	if st, ok := s[n]; ok {
		return st, nil
	}
	msgs, err := db.PrepareContext(ctx, insertMessages+placeholders(n, 5))
	if err != nil {
		return [2]*sql.Stmt{}, err
	}
	tasks, err := db.PrepareContext(ctx, fmt.Sprintf(insertTasks, placeholders(n, 5)))
	if err != nil {
		return [2]*sql.Stmt{}, errors.Join(err, msgs.Close())
	}
	s[n] = [2]*sql.Stmt{msgs, tasks}
	return s[n], nil
}

func (s batchStmts) close() {
	for _, st := range s {
		_ = st[0].Close()
		_ = st[1].Close()
	}
}

// commit stores the batch in one transaction and returns each request's
// result. If the transaction fails, every request fails with ErrUnavailable.
//
// It writes goqite's rows itself, exactly as goqite's SendTx would (plus an
// id chosen here in goqite's format), so that a whole batch is two
// statements, prepared once per batch size, instead of two per task: this
// is ingest's hot path, and every Enqueue waiting for the writer waits for
// whatever CPU a commit spends while it holds the connection.
func (q *Queue) commit(stmts batchStmts, batch []*request) []error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	results := make([]error, len(batch))
	fail := func(err error) []error {
		for i, r := range batch {
			results[i] = unavailable(r.task.Name, err)
		}
		return results
	}

	now := time.Now()
	ready := now.UTC().Format(goqiteTime)
	ids := make([]string, len(batch))
	msgs := make([]any, 0, 5*len(batch))
	tasks := make([]any, 0, 5*len(batch)+1)
	for i, r := range batch {
		prio := q.nextPriority(now)
		ids[i] = newMessageID(prio)
		body := r.task.Body
		if body == nil {
			body = []byte{}
		}
		at, eta := ready, prio
		if nb := r.task.NotBefore; nb.After(now) {
			at, eta = scheduleTime(nb), nb.UnixNano()
		}
		msgs = append(msgs, ids[i], q.cfg.Name, body, at, -prio)
		tasks = append(tasks, r.task.Name, ids[i], r.header, prio, eta)
	}
	tasks = append(tasks, now.Add(-q.o.DedupWindow).UnixNano())

	st, err := stmts.get(ctx, q.wdb, len(batch))
	if err != nil {
		return fail(fmt.Errorf("prepare: %w", err))
	}
	tx, err := q.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var rows *sql.Rows
	if st[0] != nil {
		_, err = tx.StmtContext(ctx, st[0]).ExecContext(ctx, msgs...)
	} else {
		_, err = tx.ExecContext(ctx, insertMessages+placeholders(len(batch), 5), msgs...)
	}
	if err != nil {
		return fail(fmt.Errorf("insert messages: %w", err))
	}
	if st[1] != nil {
		rows, err = tx.StmtContext(ctx, st[1]).QueryContext(ctx, tasks...)
	} else {
		rows, err = tx.QueryContext(ctx, fmt.Sprintf(insertTasks, placeholders(len(batch), 5)), tasks...)
	}
	if err != nil {
		return fail(fmt.Errorf("insert tasks: %w", err))
	}
	stored := make(map[string]bool, len(batch))
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fail(fmt.Errorf("insert tasks: %w", err))
		}
		stored[id] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fail(fmt.Errorf("insert tasks: %w", err))
	}
	var dups []any
	for i, r := range batch {
		if !stored[ids[i]] {
			dups = append(dups, ids[i])
			results[i] = fmt.Errorf("sqlitequeue: enqueue task %s: %w", r.task.Name, queue.ErrAlreadyExists)
		}
	}
	if len(dups) > 0 {
		if _, err := tx.ExecContext(ctx, `delete from goqite where id in `+placeholders(1, len(dups)), dups...); err != nil {
			return fail(fmt.Errorf("delete duplicate messages: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return results
}

// goqiteTime is goqite's timestamp format (its rfc3339Milli).
const goqiteTime = "2006-01-02T15:04:05.000Z07:00"

// scheduleTime formats a task's NotBefore for goqite's timeout column,
// rounded up to the millisecond goqite keeps, so the task is never ready
// before it.
func scheduleTime(t time.Time) string {
	if r := t.Truncate(time.Millisecond); r.Before(t) {
		t = r.Add(time.Millisecond)
	}
	return t.UTC().Format(goqiteTime)
}

// newMessageID returns an id in goqite's format, m_ and 32 hex digits, but
// time-ordered (8 bytes of enqueue nanos, 8 random) rather than random, so
// inserts append to the primary key's last page instead of dirtying a
// random one: fewer pages per commit and per checkpoint.
func newMessageID(prio int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(prio))
	_, _ = rand.Read(b[8:]) // never fails
	return "m_" + hex.EncodeToString(b[:])
}

// placeholders returns rows of (?, ?, ...) groups of width cols.
func placeholders(rows, cols int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", rows), ", ")
}

// signal wakes the dispatch loop without blocking.
func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
