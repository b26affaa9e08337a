package sqlitequeue

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"maragu.dev/goqite"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// purgeInterval is how often Run forgets task names older than DedupWindow.
const purgeInterval = 10 * time.Minute

// task is a leased task on its way to the target.
type task struct {
	id           goqite.ID
	name         string
	body         []byte
	header       http.Header
	attempts     int // including this one
	executions   int
	firstAttempt time.Time
	eta          time.Time
}

// Run dispatches tasks to the target until ctx is done, then cancels the
// deliveries in flight and releases them (ready at once) before returning
// nil. It first releases every task leased by an earlier process, which is
// how a task in flight at kill -9 is redelivered promptly. It returns an
// error only if it cannot start.
func (q *Queue) Run(ctx context.Context) error {
	if !q.running.CompareAndSwap(false, true) {
		return errors.New("sqlitequeue: Run is already running")
	}
	defer q.running.Store(false)
	log := logging.FromContext(ctx)

	n, err := q.releaseLeases(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil // stopped before it started: nothing was dispatched
	case err != nil:
		return fmt.Errorf("sqlitequeue: release leases: %w", err)
	}
	if n > 0 {
		log.Info("queue: redelivering tasks that were in flight at the last stop", "count", n)
	}
	if err := q.recordConfiguredRate(ctx); err != nil {
		// Only another process's Control is the poorer for it.
		log.Warn("queue: could not record the configured rate for relayctl queue show", "error", err)
	}
	if err := q.capGovernorRate(ctx); err != nil && ctx.Err() == nil {
		// The queue then runs at the rate the last run's governor set,
		// which was at most that run's configured rate.
		log.Warn("queue: could not replace the governor's persisted rate with the configured one", "error", err)
	}

	dctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		log.Info("queue: stopped", "queue", q.cfg.Name)
	}()

	wg.Add(2)
	go func() {
		defer wg.Done()
		q.purgeLoop(dctx)
	}()
	go func() {
		defer wg.Done()
		q.controlLoop(dctx)
	}()

	sem := make(chan struct{}, q.cfg.MaxConcurrentDispatches)
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		t, err := q.next(ctx)
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				return nil
			}
			log.Error("queue: receive failed", "error", err)
			sleep(ctx, q.o.PollInterval)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			q.deliver(dctx, t)
		}()
	}
}

// next waits until dispatching is not paused, a task is ready and the rate
// limit allows a dispatch, then leases the task.
func (q *Queue) next(ctx context.Context) (*task, error) {
	for {
		if err := q.waitPause(ctx); err != nil {
			return nil, err
		}
		readyAt, ok, err := q.nextReady(ctx)
		if err != nil {
			return nil, err
		}
		if now := time.Now(); !ok || readyAt.After(now) {
			wait := q.o.PollInterval
			if ok {
				wait = min(wait, readyAt.Sub(now))
			}
			timer := time.NewTimer(wait)
			select {
			case <-q.wake:
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		granted, err := q.waitToken(ctx)
		if err != nil {
			return nil, err
		}
		if !granted || q.paused(time.Now()) {
			continue // new settings, or a pause began while we waited for the token
		}
		t, err := q.receive(ctx)
		if err != nil || t != nil {
			return t, err
		}
	}
}

// nextReady returns when the earliest message becomes ready (leased ones
// become "ready" when their lease ends, which Run prevents by finishing
// them first).
func (q *Queue) nextReady(ctx context.Context) (time.Time, bool, error) {
	var s string
	err := q.rdb.QueryRowContext(ctx, `select timeout from goqite indexed by sqlitequeue_goqite_ready_idx
		where queue = ? and priority < 0 order by timeout limit 1`, q.cfg.Name).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next ready: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next ready: parse %q: %w", s, err)
	}
	return t, true, nil
}

// receive leases the first ready task in enqueue order and counts the
// attempt, or returns nil if none is ready.
func (q *Queue) receive(ctx context.Context) (*task, error) {
	var t *task
	err := q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		t = nil
		m, err := q.gq.ReceiveTx(ctx, tx)
		if err != nil || m == nil {
			return err
		}
		q.mu.Lock()
		busy := q.inflight[m.ID]
		q.mu.Unlock()
		if busy {
			// Its lease ran out while this process still delivers it (the
			// outcome write is stuck): ReceiveTx renewed the lease, keep it.
			return nil
		}
		lt := &task{id: m.ID, body: m.Body}
		var hdr []byte
		var first, eta int64
		err = tx.QueryRowContext(ctx, `update sqlitequeue_tasks
			set attempts = attempts + 1, first_attempt = coalesce(first_attempt, ?), leased = 1
			where message_id = ?
			returning name, header, attempts, executions, first_attempt, eta`,
			time.Now().UnixNano(), string(m.ID)).Scan(&lt.name, &hdr, &lt.attempts, &lt.executions, &first, &eta)
		if errors.Is(err, sql.ErrNoRows) {
			// A message without its task row cannot be delivered by name.
			return q.gq.DeleteTx(ctx, tx, m.ID)
		}
		if err != nil {
			return fmt.Errorf("lease task: %w", err)
		}
		if err := json.Unmarshal(hdr, &lt.header); err != nil {
			return fmt.Errorf("task %s: decode header: %w", lt.name, err)
		}
		lt.firstAttempt, lt.eta = time.Unix(0, first), time.Unix(0, eta)
		t = lt
		return nil
	})
	if err != nil || t == nil {
		return nil, err
	}
	q.mu.Lock()
	q.inflight[t.id] = true
	q.mu.Unlock()
	return t, nil
}

// deliver makes one attempt and records its outcome. Every line it logs
// names the task and the event (read from the body).
func (q *Queue) deliver(ctx context.Context, t *task) {
	log := logging.FromContext(ctx).With("task_name", t.name, "event_id", eventID(t.body))
	defer func() {
		q.mu.Lock()
		delete(q.inflight, t.id)
		q.mu.Unlock()
	}()
	// Outcomes are written even when Run is stopping.
	wctx := context.WithoutCancel(ctx)

	status, retryAfter, err := q.post(ctx, t)
	responded := err == nil
	if responded && status >= 200 && status < 300 {
		if err := q.finish(wctx, t, t.executions+1); err != nil {
			log.Error("queue: record delivery failed; the task will be redelivered", "error", err)
		}
		return
	}
	if ctx.Err() != nil {
		// Run is stopping: this attempt was cut short, not failed.
		if err := q.release(wctx, t); err != nil {
			log.Error("queue: release failed; the next Run redelivers the task", "error", err)
		}
		return
	}

	executions := t.executions
	if responded && status < 500 {
		executions++ // as Cloud Tasks: 5xx answers are not executions
	}
	attrs := []any{"retry_count", t.attempts - 1, "http_status", status}
	if err != nil {
		attrs = append(attrs, "reason", "no answer from the dispatcher: "+err.Error())
	} else {
		attrs = append(attrs, "reason", fmt.Sprintf("the dispatcher answered HTTP %d", status))
	}
	now := time.Now()
	if q.cfg.Retry.IsLastAttempt(t.attempts-1, t.firstAttempt, now) {
		log.Error("queue: task dropped after its last attempt failed", attrs...)
		if err := q.finish(wctx, t, executions); err != nil {
			log.Error("queue: delete dropped task failed", "error", err)
		}
		return
	}
	delay := q.cfg.Retry.Backoff(t.attempts)
	if responded && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		// The target is overloaded as a whole: pause every dispatch, for as
		// long as it asked, or briefly (MinBackoff) when it did not say. The
		// task's own, growing backoff is not used here: one event failing
		// again and again must not stall every other event for minutes.
		pause := q.cfg.Retry.MinBackoff
		if retryAfter > 0 {
			pause = min(retryAfter, q.cfg.Retry.MaxBackoff)
		}
		delay = max(delay, pause)
		q.pause(now.Add(pause))
		attrs = append(attrs, "queue_paused_for", pause.String())
	}
	attrs = append(attrs, "backoff", delay.String())
	log.Warn("queue: task attempt failed; will retry", attrs...)
	if err := q.retry(wctx, t, delay, executions); err != nil {
		log.Error("queue: record retry failed; the task will be redelivered", "error", err)
	}
}

// post sends the task and returns the response status and Retry-After.
func (q *Queue) post(ctx context.Context, t *task) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, q.cfg.DispatchDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.target, bytes.NewReader(t.body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range t.header { // canonical keys, so the Sets below win
		k = http.CanonicalHeaderKey(k)
		req.Header[k] = append(req.Header[k], vs...)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(queue.HeaderTaskName, t.name)
	req.Header.Set(queue.HeaderQueueName, q.cfg.Name)
	req.Header.Set(queue.HeaderRetryCount, strconv.Itoa(t.attempts-1))
	req.Header.Set(queue.HeaderExecutionCount, strconv.Itoa(t.executions))
	req.Header.Set(queue.HeaderETA, strconv.FormatFloat(float64(t.eta.UnixMicro())/1e6, 'f', 6, 64))
	if q.o.Token != nil {
		tok, err := q.o.Token(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("get token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// eventID reads the event id of a task body (the event as JSON) for the
// logs; "" when the body has none.
func eventID(body []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return ""
	}
	return ev.ID
}

// parseRetryAfter reads delay-seconds or an HTTP date; zero if absent or
// unusable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// finish deletes a delivered or dropped task, remembering its name.
func (q *Queue) finish(ctx context.Context, t *task, executions int) error {
	return q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := q.gq.DeleteTx(ctx, tx, t.id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `update sqlitequeue_tasks
			set message_id = null, leased = 0, executions = ?, finished_at = ? where name = ?`,
			executions, time.Now().UnixNano(), t.name)
		return err
	})
}

// retry schedules the next attempt after delay.
func (q *Queue) retry(ctx context.Context, t *task, delay time.Duration, executions int) error {
	eta := time.Now().Add(delay)
	return q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// goqite stores milliseconds, truncated: round up so the task is
		// never ready before its backoff ends.
		if err := q.gq.ExtendTx(ctx, tx, t.id, delay+time.Millisecond); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `update sqlitequeue_tasks
			set leased = 0, executions = ?, eta = ? where name = ?`,
			executions, eta.UnixNano(), t.name)
		return err
	})
}

// release makes a leased task ready at once.
func (q *Queue) release(ctx context.Context, t *task) error {
	err := q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := q.gq.ExtendTx(ctx, tx, t.id, 0); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `update sqlitequeue_tasks set leased = 0 where name = ?`, t.name)
		return err
	})
	return err
}

// releaseLeases makes every task leased by an earlier Run ready at once.
// Tasks waiting for a retry are not leased and keep their schedule.
func (q *Queue) releaseLeases(ctx context.Context) (int, error) {
	var n int
	err := q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `select message_id from sqlitequeue_tasks where leased = 1 and message_id is not null`)
		if err != nil {
			return err
		}
		var ids []goqite.ID
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, goqite.ID(id))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, id := range ids {
			if err := q.gq.ExtendTx(ctx, tx, id, 0); err != nil {
				return err
			}
		}
		n = len(ids)
		_, err = tx.ExecContext(ctx, `update sqlitequeue_tasks set leased = 0 where leased = 1`)
		return err
	})
	return n, err
}

// purgeLoop forgets finished task names older than DedupWindow.
func (q *Queue) purgeLoop(ctx context.Context) {
	tick := time.NewTicker(purgeInterval)
	defer tick.Stop()
	for {
		if err := q.purge(ctx); err != nil && ctx.Err() == nil {
			logging.FromContext(ctx).Warn("queue: purge of old task names failed", "error", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (q *Queue) purge(ctx context.Context) error {
	cutoff := time.Now().Add(-q.o.DedupWindow).UnixNano()
	for {
		var n int64
		err := q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `delete from sqlitequeue_tasks where rowid in (
				select rowid from sqlitequeue_tasks where finished_at is not null and finished_at < ? limit 1000)`, cutoff)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil || n < 1000 {
			return err
		}
	}
}

// write runs fn in a bounded write transaction on the write connection,
// committed with synchronous=NORMAL: these are the dispatch loop's writes
// (lease, outcome, release, purge), which a power loss could only undo into
// a redelivery. They become durable with the next Enqueue's fsync. Enqueue's
// own commits keep synchronous=FULL: they carry the promise.
func (q *Queue) write(ctx context.Context, fn func(context.Context, *sql.Tx) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	conn, err := q.wdb.Conn(ctx) // the only one: nobody commits in between
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `pragma synchronous = NORMAL`); err != nil {
		return err
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), `pragma synchronous = FULL`); rerr != nil {
			// Never hand Enqueue a connection that does not fsync.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, rerr)
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (q *Queue) pause(until time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if until.After(q.pauseUntil) {
		q.pauseUntil = until
	}
}

// paused reports whether dispatching is paused: by Pause, or by a 429/503.
func (q *Queue) paused(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ctl.paused || now.Before(q.pauseUntil)
}

// waitPause returns when dispatching is not paused: neither by Pause (which
// lasts until Resume) nor by a 429/503 (which lasts until its time).
func (q *Queue) waitPause(ctx context.Context) error {
	for {
		q.mu.Lock()
		opPaused, changed := q.ctl.paused, q.ctl.changed
		d := time.Until(q.pauseUntil)
		q.mu.Unlock()
		if opPaused {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if d <= 0 {
			return nil
		}
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// sleep waits d or until ctx is done, reporting whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
