package sqlitequeue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"golang.org/x/time/rate"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

var _ queue.Controller = (*Queue)(nil)

// defaultControlPollInterval is how often Run reads the control row, so a
// change written by another process (relayctl queue) lands without a
// restart.
const defaultControlPollInterval = time.Second

// controlRow is the one row of sqlitequeue_control. A missing row reads as
// the zero value: no rate set, not paused, version 0.
type controlRow struct {
	rate           sql.NullFloat64 // set by SetRate; null: the configured rate
	configuredRate sql.NullFloat64 // the owner's Config rate, written by Run
	// configuredBurst is the owner's Config burst (its limiter's bucket
	// size), written by Run.
	configuredBurst sql.NullInt64
	paused          bool
	by              string
	at              int64 // unix nanos of the last change; 0 if none
	version         int64 // counts changes
}

// control is the dispatch settings this Queue applies (under q.mu).
type control struct {
	rate    float64 // what the limiter runs at
	paused  bool    // the operator's (or governor's) pause: it does not expire
	version int64   // of the row last applied
	// changed is closed, and replaced, whenever the settings change: the
	// dispatch loop waits on it while paused or waiting for a token.
	changed chan struct{}
}

// Control reports the dispatch settings. It reads the control row, so it
// sees a change another process (relayctl queue) made, and applies that
// change here at once if the poll has not yet. Rate is the rate set by
// SetRate, or else the configured rate of the process that runs the queue.
// Burst is the rate limiter's bucket size, the MaxBurstSize of the process
// that runs the queue (SetRate keeps it); a handle whose queue has not run
// reports its own configuration's, as it does the rate.
func (q *Queue) Control(ctx context.Context) (queue.Control, error) {
	row, err := q.readControl(ctx, q.rdb)
	if err != nil {
		return queue.Control{}, err
	}
	q.applyControl(ctx, row)
	return q.controlOf(row), nil
}

// SetRate sets the dispatch rate (tasks per second, > 0 and finite), keeps
// the burst, and persists it so that the queue keeps it across restarts
// (it then overrides Config.MaxDispatchesPerSecond).
func (q *Queue) SetRate(ctx context.Context, perSecond float64, by string) error {
	if !(perSecond > 0) || math.IsInf(perSecond, 0) {
		return fmt.Errorf("sqlitequeue: set rate to %v: %w (want > 0 and finite)", perSecond, queue.ErrInvalidRate)
	}
	return q.changeControl(ctx, "set rate", `rate = excluded.rate`, perSecond, false, by)
}

// Pause stops dispatching until Resume, across restarts; tasks are still
// accepted and kept, and deliveries in flight finish. It is separate from
// the pause a 429 or 503 causes, which ends with its Retry-After.
func (q *Queue) Pause(ctx context.Context, by string) error {
	return q.changeControl(ctx, "pause", `paused = 1`, nil, true, by)
}

// Resume restarts dispatching after Pause. A pause caused by a 429 or 503
// still runs its course.
func (q *Queue) Resume(ctx context.Context, by string) error {
	return q.changeControl(ctx, "resume", `paused = 0`, nil, false, by)
}

// changeControl upserts the control row with set (an SQL assignment),
// records by and the time, and applies the result. The commit is fully
// synced (the write pool's default), like an Enqueue: an acknowledged
// change survives a crash.
func (q *Queue) changeControl(ctx context.Context, what, set string, rateArg any, paused bool, by string) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var row controlRow
	err := q.wdb.QueryRowContext(ctx, `insert into sqlitequeue_control (id, rate, paused, by, at, version)
		values (1, ?, ?, ?, ?, 1)
		on conflict (id) do update set `+set+`, by = excluded.by, at = excluded.at, version = version + 1
		returning `+controlColumns,
		rateArg, paused, by, time.Now().UnixNano()).
		Scan(row.dest()...)
	if err != nil {
		return fmt.Errorf("sqlitequeue: %s: %w", what, err)
	}
	q.applyControl(ctx, row)
	return nil
}

// controlColumns are the columns of a controlRow, in dest's order.
const controlColumns = `rate, configured_rate, configured_burst, paused, by, at, version`

// dest is where a query's controlColumns are scanned to.
func (row *controlRow) dest() []any {
	return []any{&row.rate, &row.configuredRate, &row.configuredBurst, &row.paused, &row.by, &row.at, &row.version}
}

// readControl reads the control row on db.
func (q *Queue) readControl(ctx context.Context, db *sql.DB) (controlRow, error) {
	var row controlRow
	err := db.QueryRowContext(ctx, `select `+controlColumns+` from sqlitequeue_control where id = 1`).
		Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return controlRow{}, nil
	}
	if err != nil {
		return controlRow{}, fmt.Errorf("sqlitequeue: read control: %w", err)
	}
	return row, nil
}

// controlOf is the queue.Control a row describes.
func (q *Queue) controlOf(row controlRow) queue.Control {
	c := queue.Control{Rate: q.cfg.MaxDispatchesPerSecond, Burst: q.cfg.MaxBurstSize, Paused: row.paused, By: row.by}
	switch {
	case row.rate.Valid:
		c.Rate = row.rate.Float64
	case row.configuredRate.Valid:
		c.Rate = row.configuredRate.Float64
	}
	if row.configuredBurst.Valid {
		c.Burst = int(row.configuredBurst.Int64)
	}
	if row.at != 0 {
		c.At = time.Unix(0, row.at)
	}
	return c
}

// applyControl makes the queue run by row if row is newer than what it
// runs by, logging what changed, and wakes the dispatch loop.
func (q *Queue) applyControl(ctx context.Context, row controlRow) {
	r := q.cfg.MaxDispatchesPerSecond
	if row.rate.Valid {
		r = row.rate.Float64
	}
	q.mu.Lock()
	old := q.ctl
	if row.version <= old.version {
		q.mu.Unlock()
		return
	}
	if r != old.rate {
		q.limiter.SetLimit(rate.Limit(r))
	}
	q.ctl.rate, q.ctl.paused, q.ctl.version = r, row.paused, row.version
	close(q.ctl.changed)
	q.ctl.changed = make(chan struct{})
	q.mu.Unlock()

	log := logging.FromContext(ctx)
	attrs := []any{"queue", q.cfg.Name, "by", row.by, "changed_at", time.Unix(0, row.at).UTC()}
	if r != old.rate {
		log.Info("queue: dispatch rate changed", append(attrs, "previous_rate", old.rate, "rate", r)...)
	}
	switch {
	case row.paused && !old.paused:
		log.Warn("queue: dispatching paused; it stays paused, across restarts, until resumed", append(attrs, "rate", r)...)
	case !row.paused && old.paused:
		log.Info("queue: dispatching resumed", append(attrs, "rate", r)...)
	}
}

// loadControl applies the persisted settings when the queue opens, saying
// so: a persisted rate was set by ops or the governor and overrides the
// configured one (ADR 0005), and a persisted pause holds until Resume.
func (q *Queue) loadControl(ctx context.Context) error {
	if err := addConfiguredBurst(ctx, q.wdb); err != nil {
		return err
	}
	row, err := q.readControl(ctx, q.wdb)
	if err != nil {
		return err
	}
	if row.version == 0 {
		return nil
	}
	q.applyControl(logging.WithLogger(ctx, slog.New(slog.DiscardHandler)), row)
	log := logging.FromContext(ctx)
	attrs := []any{"queue", q.cfg.Name, "by", row.by, "changed_at", time.Unix(0, row.at).UTC()}
	if row.rate.Valid && row.rate.Float64 != q.cfg.MaxDispatchesPerSecond {
		log.Info("queue: the dispatch rate set at runtime overrides the configured rate (change it with relayctl queue rate)",
			append(attrs, "rate", row.rate.Float64, "configured_rate", q.cfg.MaxDispatchesPerSecond)...)
	}
	if row.paused {
		log.Warn("queue: dispatching is paused since before this start; it stays paused until resumed (relayctl queue resume)", attrs...)
	}
	return nil
}

// recordConfiguredRate writes the owner's configured rate and burst into
// the control row, so that another process's Control (relayctl queue
// show) reports the rate the running queue uses when none was set, and
// its burst. It is not a change.
func (q *Queue) recordConfiguredRate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_, err := q.wdb.ExecContext(ctx, `insert into sqlitequeue_control (id, configured_rate, configured_burst) values (1, ?, ?)
		on conflict (id) do update set configured_rate = excluded.configured_rate, configured_burst = excluded.configured_burst`,
		q.cfg.MaxDispatchesPerSecond, q.cfg.MaxBurstSize)
	if err != nil {
		return fmt.Errorf("record configured rate and burst: %w", err)
	}
	return nil
}

// addConfiguredBurst adds the configured_burst column to a control table
// made without it (schema.sql's create table does not change an existing
// table). Another process may add it meanwhile: the column then exists,
// which is all that counts.
func addConfiguredBurst(ctx context.Context, db *sql.DB) error {
	has := func() (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, `select count(*) from pragma_table_info('sqlitequeue_control') where name = 'configured_burst'`).Scan(&n)
		return n > 0, err
	}
	ok, err := has()
	if err == nil && !ok {
		if _, aerr := db.ExecContext(ctx, `alter table sqlitequeue_control add column configured_burst integer`); aerr != nil {
			if ok, err = has(); err == nil && !ok {
				err = aerr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("sqlitequeue: add the control table's configured_burst column: %w", err)
	}
	return nil
}

// ByConfig names the owner's configuration in the control row, when Run
// drops a rate the governor had set at or above the configured rate.
const ByConfig = "config"

// capGovernorRate runs in the owner (Run): a rate the governor persisted
// (it holds a queue slowed across a restart, ADR 0010) at or above the
// configured rate is dropped for the configured one. The governor never
// goes above its ceiling, and on this engine the ceiling is the configured
// rate: a lower --target-rate / QUEUE_MAX_DISPATCHES_PER_SECOND at this
// start must win over the rate the last run's governor had raised back
// to. A rate set by an operator is left alone (ops have the last word).
func (q *Queue) capGovernorRate(ctx context.Context) error {
	row, err := q.readControl(ctx, q.wdb)
	if err != nil {
		return err
	}
	if row.by != queue.ByGovernor || !row.rate.Valid || row.rate.Float64 < q.cfg.MaxDispatchesPerSecond {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var next controlRow
	err = q.wdb.QueryRowContext(ctx, `update sqlitequeue_control
		set rate = null, by = ?, at = ?, version = version + 1 where id = 1
		returning `+controlColumns, ByConfig, time.Now().UnixNano()).
		Scan(next.dest()...)
	if err != nil {
		return fmt.Errorf("drop the governor's rate for the configured one: %w", err)
	}
	q.applyControl(ctx, next)
	return nil
}

// controlLoop applies changes to the control row made by other processes
// every ControlPollInterval until ctx ends.
func (q *Queue) controlLoop(ctx context.Context) {
	tick := time.NewTicker(q.o.ControlPollInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		row, err := q.readControl(ctx, q.rdb)
		if err != nil {
			if ctx.Err() == nil && !failing {
				logging.FromContext(ctx).Warn("queue: reading the dispatch settings failed; retrying every poll", "error", err)
			}
			failing = true
			continue
		}
		failing = false
		q.applyControl(ctx, row)
	}
}

// controlState returns whether the operator pause is on and the channel
// closed at the next change.
func (q *Queue) controlState() (paused bool, changed <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ctl.paused, q.ctl.changed
}

// waitToken waits for a token of the rate limiter. It reports false, with
// the token given back, when the settings change meanwhile (a new rate or
// a pause): the caller starts over, so a lowered rate never leaves it
// waiting for a token reserved at the old one.
func (q *Queue) waitToken(ctx context.Context) (bool, error) {
	_, changed := q.controlState()
	r := q.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return true, nil
	}
	if d == rate.InfDuration {
		return false, errors.New("rate limiter: no token can ever be granted")
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-changed:
		r.Cancel()
		return false, nil
	case <-ctx.Done():
		r.Cancel()
		return false, ctx.Err()
	}
}
