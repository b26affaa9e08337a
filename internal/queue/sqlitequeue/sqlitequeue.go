// Package sqlitequeue is the embedded queue engine: a durable, single-process
// stand-in for a Cloud Tasks queue that stores tasks in SQLite
// (modernc.org/sqlite, WAL, busy_timeout) and delivers them over HTTP with
// Cloud Tasks' rate limit, concurrency limit, retry policy and headers.
//
// # What goqite does, and what this package adds
//
// The message table is maragu.dev/goqite's (its v0.4.0 schema, made
// idempotent), driven through its transactional API: ReceiveTx leases the
// first ready message (its "timeout" column is both the schedule time and
// the lease end), ExtendTx reschedules one (backoff, or release after a
// crash) and DeleteTx finishes one. Enqueue writes goqite's rows itself,
// the same columns SendTx writes, as one multi-row insert per group commit:
// SendTx is a statement per message and SQL parsing was Enqueue's main CPU
// cost. goqite knows nothing of task names, Cloud Tasks' counters or leases
// held by a dead process, so a sidecar table, sqlitequeue_tasks, keeps one
// row per task name:
//
//   - the name itself, unique, kept DedupWindow after the task finished, so
//     a second Enqueue of the name returns queue.ErrAlreadyExists;
//   - attempts and executions for X-CloudTasks-TaskRetryCount and
//     -TaskExecutionCount, and first_attempt for MaxRetryDuration (goqite's
//     received counter cannot tell a dispatch from a lease, and its
//     MaxReceive hides messages instead of deleting them);
//   - the headers to send and the ETA;
//   - a leased flag. The engine owns its file, so Run first clears every
//     lease it finds (ExtendTx to now): tasks in flight when the process
//     died are redelivered at once, not after the dispatch deadline, while
//     tasks waiting for a retry keep their backoff.
//
// goqite orders by (priority desc, created), and created has millisecond
// resolution with ties broken by a random id, so a message's priority is
// minus its enqueue time in nanoseconds (strictly increasing in a process):
// ready tasks are dispatched in enqueue order, a retried one keeping its
// place.
//
// # Durability and speed
//
// Enqueue returns after its transaction committed with synchronous=FULL:
// the WAL is fsynced, so an accepted task survives kill -9 and also power
// loss or a kernel crash. synchronous=NORMAL would be enough for kill -9
// (committed WAL frames sit in the OS page cache) and its p99 is lower, but
// FULL stays affordable because concurrent Enqueues are group-committed:
// one writer goroutine takes every request waiting, stores them in one
// transaction with statements prepared once per batch size, and fsyncs
// once. An Enqueue that arrives during a commit waits for it and then for
// its own, so its p99 is about twice the disk's fsync p99. The dispatch
// loop's own writes (lease, outcome, release)
// commit with NORMAL on the same connection: losing one to a power cut
// could only cause a redelivery, and they become durable with the next
// Enqueue's fsync. All writes use one connection, so the process never
// sleeps on SQLITE_BUSY. WAL checkpoints run once a second on a connection
// of their own rather than inside whichever commit crossed SQLite's
// 1,000-page threshold, and between two writes only when the WAL must
// restart (see checkpointer). Message ids are time-ordered (goqite's format, not
// its random value) so inserts touch the last page of the key.
//
// # Delivery
//
// Run takes a concurrency slot (MaxConcurrentDispatches), waits while the
// queue is paused, waits for the next ready task (Enqueue wakes it; the
// poll is a fallback), takes a token from a golang.org/x/time/rate bucket
// (MaxDispatchesPerSecond, MaxBurstSize) and leases the task. A 2xx deletes
// it; any other answer, a timeout (DispatchDeadline) or a transport error
// schedules a retry after Retry.Backoff, and a 429 or 503 also pauses the
// whole queue until its Retry-After (capped at MaxBackoff), or for
// MinBackoff when there is none: one task failing again and again must not
// stall the others for its own growing backoff. The task waits at least its
// backoff either way. After the last attempt (Retry.IsLastAttempt) the task
// is deleted and an ERROR names it.
//
// # Control
//
// Queue is a queue.Controller. SetRate changes the token bucket's rate
// (the burst stays), Pause stops dispatching until Resume (apart from, and
// unlike, the 429/503 pause, it never expires) and both are persisted in a
// one-row table, sqlitequeue_control, committed fully synced: a restart
// keeps a slowed or paused queue slowed or paused, and a persisted rate
// overrides Config.MaxDispatchesPerSecond (New logs it). Run polls the row
// every ControlPollInterval, so a change written by another process on the
// same file (relayctl queue) lands without a restart; Control reads the row
// too.
//
// Queue is also a queue.Inspector: TaskExists reads the file, so it answers
// in any process that opened it, running the queue or not.
//
// One process owns a data file: two Run loops over one file would deliver
// tasks twice. Other processes may add tasks (relayctl replay) and change
// the control row (relayctl queue); the owner's Run picks both up.
package sqlitequeue

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"maragu.dev/goqite"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

//go:embed schema.sql
var schema string

var (
	_ queue.Queue       = (*Queue)(nil)
	_ queue.StatsReader = (*Queue)(nil)
)

const (
	defaultPollInterval = 50 * time.Millisecond
	defaultDedupWindow  = 7 * 24 * time.Hour
	// leaseMargin is added to the dispatch deadline for goqite's lease, to
	// cover writing the outcome. Leases only matter inside one process: Run
	// clears them all at start.
	leaseMargin = time.Minute
	// writeTimeout bounds one write transaction.
	writeTimeout = 10 * time.Second
	// checkpointInterval is how often the WAL is copied to the database.
	checkpointInterval = time.Second
	// walRestartFrames is the WAL length (frames of a 4 KiB page) past which
	// the checkpointer also checkpoints between two writes, so that the
	// next write restarts the WAL from its start: 16 MiB, a few seconds of
	// writes at 1,000 tasks/s.
	walRestartFrames = 4096
	// maxBatch bounds one group commit.
	maxBatch = 512
)

// Options configure a Queue.
type Options struct {
	// Path is the SQLite file (created if missing), e.g. DATA_DIR/queue.db.
	Path string
	// Config is the Cloud Tasks-like queue configuration.
	Config queue.Config
	// Target is the URL the tasks are POSTed to.
	Target string
	// Client sends the deliveries; nil is a client with no overall timeout
	// (each request is bounded by Config.DispatchDeadline).
	Client *http.Client
	// Token, when set, returns the bearer token for the Authorization header.
	Token func(ctx context.Context) (string, error)
	// PollInterval is the fallback poll of the dispatch loop (default 50ms);
	// Enqueue wakes the loop at once.
	PollInterval time.Duration
	// DedupWindow is how long a task name is remembered after its task
	// finished (default 7 days).
	DedupWindow time.Duration
	// ControlPollInterval is how often Run reads the persisted dispatch
	// settings (Controller) to apply a change another process made, e.g.
	// relayctl queue (default 1s).
	ControlPollInterval time.Duration

	// Tests shorten the checkpointer's interval and WAL length.
	checkpointInterval time.Duration
	walRestartFrames   int
}

// Queue is the embedded engine. Enqueue and Stats are safe for concurrent
// use; Run runs once at a time.
type Queue struct {
	o       Options
	cfg     queue.Config
	target  string
	client  *http.Client
	wdb     *sql.DB // one connection: every write
	rdb     *sql.DB // reads
	cdb     *sql.DB // one connection: the background checkpoint
	gq      *goqite.Queue
	limiter *rate.Limiter

	reqs     chan *request
	stop     chan struct{}
	stopOnce sync.Once
	closeErr error
	writerWG sync.WaitGroup // writer and checkpointer
	wake     chan struct{}
	running  atomic.Bool

	lastPrio atomic.Int64 // last enqueue nanos handed out

	mu         sync.Mutex
	pauseUntil time.Time          // Retry-After on 429/503 pauses dispatching
	inflight   map[goqite.ID]bool // leased by this process now
	ctl        control            // SetRate, Pause, Resume: see control.go
}

// New opens (or creates) the database at o.Path and its schema. It does not
// dispatch; call Run for that.
func New(ctx context.Context, o Options) (*Queue, error) {
	if o.Path == "" {
		return nil, errors.New("sqlitequeue: path is required")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("sqlitequeue: config: %w", err)
	}
	if u, err := url.Parse(o.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sqlitequeue: target %q is not an http(s) URL", o.Target)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = defaultDedupWindow
	}
	if o.ControlPollInterval <= 0 {
		o.ControlPollInterval = defaultControlPollInterval
	}
	client := o.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = o.Config.MaxConcurrentDispatches
		client = &http.Client{Transport: tr}
	}

	// temp_store(MEMORY): the multi-row upsert of a large batch needs a
	// statement journal, which would otherwise spill to a temporary file
	// (open, writes, close) inside the transaction. It holds no committed
	// data: durability is the WAL's.
	wdb, err := open(o.Path, "wal_autocheckpoint(0)", "journal_size_limit(67108864)", "cache_size(-32768)", "temp_store(MEMORY)")
	if err != nil {
		return nil, err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	if _, err := wdb.ExecContext(ctx, schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlitequeue: create schema in %s: %w", o.Path, err)
	}
	rdb, err := open(o.Path)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	rdb.SetMaxOpenConns(4)
	cdb, err := open(o.Path, "wal_autocheckpoint(0)")
	if err != nil {
		return nil, errors.Join(err, wdb.Close(), rdb.Close())
	}
	cdb.SetMaxOpenConns(1)
	cdb.SetMaxIdleConns(1)
	if o.checkpointInterval <= 0 {
		o.checkpointInterval = checkpointInterval
	}
	if o.walRestartFrames <= 0 {
		o.walRestartFrames = walRestartFrames
	}

	q := &Queue{
		o:      o,
		cfg:    o.Config,
		target: o.Target,
		client: client,
		wdb:    wdb,
		rdb:    rdb,
		cdb:    cdb,
		gq: goqite.New(goqite.NewOpts{
			DB:         wdb,
			Name:       o.Config.Name,
			MaxReceive: 1 << 30, // attempts are counted and limited here, not by goqite
			Timeout:    o.Config.DispatchDeadline + leaseMargin,
		}),
		limiter:  rate.NewLimiter(rate.Limit(o.Config.MaxDispatchesPerSecond), o.Config.MaxBurstSize),
		reqs:     make(chan *request),
		stop:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		inflight: make(map[goqite.ID]bool),
		ctl:      control{rate: o.Config.MaxDispatchesPerSecond, changed: make(chan struct{})},
	}
	if err := q.loadControl(ctx); err != nil {
		return nil, errors.Join(err, wdb.Close(), rdb.Close(), cdb.Close())
	}
	q.writerWG.Add(2)
	go q.writer()
	go q.checkpointer(logging.FromContext(ctx))
	return q, nil
}

// checkpointer copies the WAL into the database file every second instead
// of SQLite's automatic checkpoint, which would run inside whichever commit
// crossed 1,000 pages: an Enqueue's.
//
// The copy and the database file's fsync (5–20 ms on a small virtual disk)
// run on a connection of their own, alongside the writes: on the write
// connection they held every Enqueue waiting once a second, which was the
// queue's p99. A checkpoint that overlaps writes never copies the frames
// they append, though, and the WAL only restarts from its start when a
// write finds every frame copied, so under a steady stream it would grow
// without bound. Once the WAL is longer than walRestartFrames, the
// checkpointer therefore also checkpoints on the write connection, between
// two transactions: it copies only the frames appended since the
// background one (one fsync of a few pages), and the next write restarts
// the WAL.
//
// A failing checkpoint is retried every tick; it is logged once when
// checkpoints start failing (the WAL then grows until one succeeds) and
// once when they work again.
func (q *Queue) checkpointer(log *slog.Logger) {
	defer q.writerWG.Done()
	tick := time.NewTicker(q.o.checkpointInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-tick.C:
		case <-q.stop:
			return
		}
		var busy, frames, copied int
		err := q.cdb.QueryRow(`pragma wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		if err == nil && frames >= q.o.walRestartFrames {
			_, err = q.wdb.Exec(`pragma wal_checkpoint(PASSIVE)`)
		}
		switch {
		case err != nil && !failing:
			log.Warn("queue: WAL checkpoint failed; retried every interval, the WAL grows until one succeeds",
				"path", q.o.Path, "wal_frames", frames, "error", err.Error())
		case err == nil && failing:
			log.Info("queue: WAL checkpoints work again", "path", q.o.Path, "wal_frames", frames)
		}
		failing = err != nil
	}
}

// open returns a pool on path with WAL, a busy timeout (for other processes
// reading the file), synchronous=FULL and the extra pragmas.
func open(path string, pragmas ...string) (*sql.DB, error) {
	v := url.Values{}
	for _, p := range pragmas {
		v.Add("_pragma", p)
	}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "busy_timeout(5000)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", path, err)
	}
	return db, nil
}

// Close stops accepting tasks and closes the database. Stop Run (cancel its
// context) first; Close does not wait for it.
func (q *Queue) Close() error {
	q.stopOnce.Do(func() {
		close(q.stop)
		q.writerWG.Wait()
		q.closeErr = errors.Join(q.wdb.Close(), q.rdb.Close(), q.cdb.Close())
	})
	return q.closeErr
}

// Stats reports the backlog (tasks not finished), the tasks in flight and
// the age of the oldest unfinished task.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	var s queue.Stats
	var oldest sql.NullInt64
	err := q.rdb.QueryRowContext(ctx, `select
		(select count(*) from goqite where queue = ?),
		(select count(*) from sqlitequeue_tasks where leased = 1),
		(select min(enqueued_at) from sqlitequeue_tasks where finished_at is null)`,
		q.cfg.Name).Scan(&s.Backlog, &s.InFlight, &oldest)
	if err != nil {
		return queue.Stats{}, fmt.Errorf("sqlitequeue: stats: %w", err)
	}
	if oldest.Valid {
		s.OldestAge = max(time.Since(time.Unix(0, oldest.Int64)), 0)
	}
	return s, nil
}

// nextPriority returns the enqueue time in nanoseconds, strictly increasing
// within the process so that it orders tasks even within one clock tick.
func (q *Queue) nextPriority(now time.Time) int64 {
	n := now.UnixNano()
	for {
		last := q.lastPrio.Load()
		v := max(n, last+1)
		if q.lastPrio.CompareAndSwap(last, v) {
			return v
		}
	}
}
