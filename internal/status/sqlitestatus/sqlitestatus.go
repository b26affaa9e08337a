// Package sqlitestatus is the embedded engine of the status.Store port: one
// SQLite file (modernc.org/sqlite, pure Go) in WAL mode.
//
// Each event is one row in status_records. The columns support reads by hand
// (sqlite3 data/status.db "select event_id, status from status_records"):
// event_id, status, received_at, updated_at, delivered_at, trace_id and reason
// are plain columns, times are fixed-width UTC RFC 3339 text with nanoseconds
// (so they sort as text and read as times), and the event and its attempts are
// JSON columns (json_each(attempts) lists the attempts).
//
// Attempts live in a JSON column rather than a table of their own because
// Apply reads the record anyway to check the transition, a record has a
// bounded number of attempts (the queue's max attempts), Get and List then
// read one row per record with no join, and the row has the same shape as the
// Firestore document the GCP engine stores.
//
// Writes go through one connection, so they queue in Go rather than spin in
// SQLite's busy handler, and every write transaction starts with BEGIN
// IMMEDIATE so that a writer in another process (relayctl) is serialised too;
// reads use a separate pool and never block writes (WAL). synchronous=NORMAL
// keeps every committed transaction across a process crash (kill -9); only
// an operating-system crash or power loss can lose the last commits.
//
// Creates are group-committed: ingest writes one record per event, and a
// transaction per record wrote each record's table and index pages to the
// WAL again and again (a sixth of ingest's CPU at 1,000 events/s). One
// goroutine takes every Create waiting and inserts them in one
// transaction; Create still returns only once its own row is committed,
// and reports whether it was the one that created the record.
package sqlitestatus

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"eventrelay/internal/event"
	"eventrelay/internal/status"
)

var _ status.Store = (*Store)(nil)

// defaultListLimit is the page size when Query.Limit is not positive.
const defaultListLimit = 100

// maxReaders bounds the read pool; reads are short and the machine is small.
const maxReaders = 4

const (
	// maxCreateBatch bounds one group commit of Creates.
	maxCreateBatch = 256
	// createTimeout bounds one group commit: the Creates in it have left
	// their callers' contexts behind.
	createTimeout = 10 * time.Second
)

// timeFormat is fixed width (unlike time.RFC3339Nano, which trims zeros), so
// stored times sort correctly as text.
const timeFormat = "2006-01-02T15:04:05.000000000Z07:00"

const schema = `
CREATE TABLE IF NOT EXISTS status_records (
	event_id     TEXT PRIMARY KEY NOT NULL,
	status       TEXT NOT NULL,
	received_at  TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	delivered_at TEXT,
	trace_id     TEXT NOT NULL DEFAULT '',
	reason       TEXT NOT NULL DEFAULT '',
	event        TEXT NOT NULL,
	attempts     TEXT NOT NULL DEFAULT '[]'
) STRICT;
CREATE INDEX IF NOT EXISTS status_records_by_received ON status_records (received_at, event_id);
CREATE INDEX IF NOT EXISTS status_records_by_status ON status_records (status, received_at, event_id);
`

const columns = `event_id, status, received_at, updated_at, delivered_at, trace_id, reason, event, attempts`

const (
	sqlInsert = `INSERT INTO status_records (` + columns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`
	sqlSelect = `SELECT ` + columns + ` FROM status_records WHERE event_id = ?`
	sqlUpdate = `UPDATE status_records SET status = ?, updated_at = ?, delivered_at = ?,
		reason = ?, attempts = ? WHERE event_id = ?`
)

// Store is the SQLite status store. It is safe for concurrent use.
type Store struct {
	w *sql.DB // one connection: every write
	r *sql.DB // the read pool

	// Statements prepared once: parsing SQL is a fifth of a write's cost.
	insert, selectW, update, get *sql.Stmt

	creates   chan *createReq // to the group-commit writer
	stop      chan struct{}
	stopOnce  sync.Once
	writerWG  sync.WaitGroup
	closeErrs error
}

// Create request states: the writer takes a pending request, or Create
// abandons it when its context ends first; exactly one of the two wins.
const (
	createPending int32 = iota
	createTaken
	createAbandoned
)

// createReq is one Create waiting for the group commit.
type createReq struct {
	id    string
	args  []any
	state atomic.Int32
	done  chan createResult // buffered; the writer answers every request it took
}

type createResult struct {
	created bool
	err     error
}

// Open opens (creating if needed) the status database at path and its schema.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestatus: path is required")
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open status db %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if _, err := w.ExecContext(ctx, schema); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("create status schema in %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open status db %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	s := &Store{w: w, r: r, creates: make(chan *createReq, maxCreateBatch), stop: make(chan struct{})}
	for _, p := range []struct {
		db    *sql.DB
		query string
		stmt  **sql.Stmt
	}{
		{w, sqlInsert, &s.insert},
		{w, sqlSelect, &s.selectW},
		{w, sqlUpdate, &s.update},
		{r, sqlSelect, &s.get},
	} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.query); err != nil {
			return nil, errors.Join(fmt.Errorf("open status db %s: prepare: %w", path, err), s.Close())
		}
	}
	s.writerWG.Add(1)
	go s.createWriter()
	return s, nil
}

// dsn builds the modernc DSN: a file: URI (so any path works) with the
// pragmas every connection needs.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?" + q.Encode()
}

// Close stops the Create writer (after the batch it is committing; a
// Create still waiting then fails) and closes both pools. Calls after the
// first return the first's result.
func (s *Store) Close() error {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.writerWG.Wait()
		var errs []error
		for _, st := range []*sql.Stmt{s.insert, s.selectW, s.update, s.get} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		s.closeErrs = errors.Join(append(errs, s.r.Close(), s.w.Close())...)
	})
	return s.closeErrs
}

// Create stores r as a new record in status Queued, whatever r.Status says.
// It reports created=false, and changes nothing, when the id exists. The id
// is r.EventID, or r.Event.ID when EventID is empty. A zero ReceivedAt is
// now; a zero UpdatedAt is ReceivedAt.
func (s *Store) Create(ctx context.Context, r status.Record) (bool, error) {
	if r.EventID == "" {
		r.EventID = r.Event.ID
	}
	if r.EventID == "" {
		return false, errors.New("sqlitestatus: create: record has no event id")
	}
	if r.Event.ID != "" && r.Event.ID != r.EventID {
		return false, fmt.Errorf("sqlitestatus: create %s: event id %q does not match", r.EventID, r.Event.ID)
	}
	r.Status = status.Queued
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.ReceivedAt
	}
	row, err := toRow(r)
	if err != nil {
		return false, fmt.Errorf("create status %s: %w", r.EventID, err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("create status %s: %w", r.EventID, err)
	}
	req := &createReq{id: r.EventID, args: row.args(), done: make(chan createResult, 1)}
	select {
	case s.creates <- req:
	case <-s.stop:
		return false, fmt.Errorf("create status %s: store closed", r.EventID)
	case <-ctx.Done():
		return false, fmt.Errorf("create status %s: %w", r.EventID, ctx.Err())
	}
	select {
	case res := <-req.done:
		return res.created, res.err
	case <-s.stop:
		if req.state.CompareAndSwap(createPending, createAbandoned) {
			return false, fmt.Errorf("create status %s: store closed", r.EventID)
		}
		// The writer took it before it stopped, and answers it.
		res := <-req.done
		return res.created, res.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(createPending, createAbandoned) {
			return false, fmt.Errorf("create status %s: %w", r.EventID, ctx.Err())
		}
		// The writer is committing it: the record may still be stored.
		return false, fmt.Errorf("create status %s: outcome unknown: %w", r.EventID, ctx.Err())
	}
}

// createWriter group-commits Create requests until Close.
func (s *Store) createWriter() {
	defer s.writerWG.Done()
	batch := make([]*createReq, 0, maxCreateBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.creates:
			batch = append(batch, r)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < maxCreateBatch {
			select {
			case r := <-s.creates:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		taken := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(createPending, createTaken) {
				taken = append(taken, r)
			}
		}
		if len(taken) == 0 {
			continue
		}
		results := s.commitCreates(taken)
		for i, r := range taken {
			r.done <- results[i]
		}
	}
}

// commitCreates inserts batch in one transaction and returns each
// request's result. If the transaction fails, each request is inserted on
// its own instead, so one bad record fails only its own Create.
func (s *Store) commitCreates(batch []*createReq) []createResult {
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	results := make([]createResult, len(batch))
	if len(batch) > 1 {
		if err := s.insertAll(ctx, batch, results); err == nil {
			return results
		}
	}
	for i, r := range batch {
		results[i] = s.insertOne(ctx, s.insert, r)
	}
	return results
}

// insertAll inserts every request in one transaction, filling results,
// or returns an error (and has stored nothing).
func (s *Store) insertAll(ctx context.Context, batch []*createReq, results []createResult) error {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see dsn)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	insert := tx.StmtContext(ctx, s.insert)
	for i, r := range batch {
		if results[i] = s.insertOne(ctx, insert, r); results[i].err != nil {
			return results[i].err
		}
	}
	return tx.Commit()
}

// insertOne runs the insert for r with stmt.
func (s *Store) insertOne(ctx context.Context, stmt *sql.Stmt, r *createReq) createResult {
	res, err := stmt.ExecContext(ctx, r.args...)
	if err != nil {
		return createResult{err: fmt.Errorf("create status %s: %w", r.id, err)}
	}
	n, err := res.RowsAffected()
	if err != nil {
		return createResult{err: fmt.Errorf("create status %s: %w", r.id, err)}
	}
	return createResult{created: n == 1}
}

// Get returns the record for id, or an error wrapping status.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (status.Record, error) {
	rec, err := scanRecord(s.get.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return status.Record{}, fmt.Errorf("get status %s: %w", id, status.ErrNotFound)
	}
	if err != nil {
		return status.Record{}, fmt.Errorf("get status %s: %w", id, err)
	}
	return rec, nil
}

// Apply moves the record for id forward in one IMMEDIATE transaction; see
// status.Store. A missing record is created from u.Event (queued, received
// at u.At, with u.TraceID) and then moved; without u.Event the error wraps
// status.ErrNotFound. A zero u.At is now.
func (s *Store) Apply(ctx context.Context, id string, u status.Update) (rec status.Record, err error) {
	if !u.Status.Valid() {
		return status.Record{}, fmt.Errorf("apply status %s: unknown status %q", id, u.Status)
	}
	if u.At.IsZero() {
		u.At = time.Now()
	}
	u.At = u.At.UTC()

	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see dsn)
	if err != nil {
		return status.Record{}, fmt.Errorf("apply status %s: begin: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	exists := true
	rec, err = scanRecord(tx.StmtContext(ctx, s.selectW).QueryRowContext(ctx, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if u.Event.ID == "" {
			return status.Record{}, fmt.Errorf("apply status %s: no record and no event to create it from: %w", id, status.ErrNotFound)
		}
		if u.Event.ID != id {
			return status.Record{}, fmt.Errorf("apply status %s: event id %q does not match", id, u.Event.ID)
		}
		exists = false
		rec = status.Record{
			EventID:    id,
			Status:     status.Queued,
			Event:      u.Event,
			ReceivedAt: u.At,
			UpdatedAt:  u.At,
			TraceID:    u.TraceID,
		}
	case err != nil:
		return status.Record{}, fmt.Errorf("apply status %s: read: %w", id, err)
	}

	if err := u.ApplyTo(&rec); err != nil {
		return status.Record{}, err
	}

	row, err := toRow(rec)
	if err != nil {
		return status.Record{}, fmt.Errorf("apply status %s: %w", id, err)
	}
	if exists {
		_, err = tx.StmtContext(ctx, s.update).ExecContext(ctx,
			row.status, row.updatedAt, row.deliveredAt, row.reason, row.attempts, id)
	} else {
		_, err = tx.StmtContext(ctx, s.insert).ExecContext(ctx, row.args()...)
	}
	if err != nil {
		return status.Record{}, fmt.Errorf("apply status %s: write: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return status.Record{}, fmt.Errorf("apply status %s: commit: %w", id, err)
	}
	return rec, nil
}

// List returns records matching q, newest received first. Paging by Before
// is by time only: records received in the same nanosecond as the last one
// of a page are skipped.
func (s *Store) List(ctx context.Context, q status.Query) ([]status.Record, error) {
	if q.Status != "" && !q.Status.Valid() {
		return nil, fmt.Errorf("list status: unknown status %q", q.Status)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	var (
		where []string
		args  []any
	)
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, string(q.Status))
	}
	if !q.Before.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, formatTime(q.Before))
	}
	query := `SELECT ` + columns + ` FROM status_records`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY received_at DESC, event_id DESC LIMIT ?"
	args = append(args, limit)

	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list status: %w", err)
	}
	defer rows.Close()
	out := make([]status.Record, 0, min(limit, defaultListLimit))
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list status: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list status: %w", err)
	}
	return out, nil
}

// Counts returns how many records are in each status; every known status is
// present, zero when no record has it.
func (s *Store) Counts(ctx context.Context) (map[status.Status]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT status, COUNT(*) FROM status_records GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count status: %w", err)
	}
	defer rows.Close()
	out := make(map[status.Status]int64, len(status.All))
	for _, st := range status.All {
		out[st] = 0
	}
	for rows.Next() {
		var (
			st string
			n  int64
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count status: %w", err)
		}
		out[status.Status(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count status: %w", err)
	}
	return out, nil
}

// row is a record as stored.
type row struct {
	eventID, status       string
	receivedAt, updatedAt string
	deliveredAt           sql.NullString
	traceID, reason       string
	event, attempts       string
}

func (r row) args() []any {
	return []any{r.eventID, r.status, r.receivedAt, r.updatedAt, r.deliveredAt, r.traceID, r.reason, r.event, r.attempts}
}

// storedEvent decodes the event column without event.Parse's validation, so
// that whatever was stored reads back as it was.
type storedEvent struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Body      string    `json:"body"`
	Timestamp time.Time `json:"timestamp"`
}

func toRow(r status.Record) (row, error) {
	ev, err := json.Marshal(r.Event)
	if err != nil {
		return row{}, fmt.Errorf("encode event: %w", err)
	}
	attempts := r.Attempts
	if attempts == nil {
		attempts = []status.Attempt{}
	}
	at, err := json.Marshal(attempts)
	if err != nil {
		return row{}, fmt.Errorf("encode attempts: %w", err)
	}
	out := row{
		eventID:    r.EventID,
		status:     string(r.Status),
		receivedAt: formatTime(r.ReceivedAt),
		updatedAt:  formatTime(r.UpdatedAt),
		traceID:    r.TraceID,
		reason:     r.Reason,
		event:      string(ev),
		attempts:   string(at),
	}
	if r.DeliveredAt != nil {
		out.deliveredAt = sql.NullString{String: formatTime(*r.DeliveredAt), Valid: true}
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (status.Record, error) {
	var r row
	if err := sc.Scan(&r.eventID, &r.status, &r.receivedAt, &r.updatedAt, &r.deliveredAt,
		&r.traceID, &r.reason, &r.event, &r.attempts); err != nil {
		return status.Record{}, err
	}
	rec := status.Record{
		EventID: r.eventID,
		Status:  status.Status(r.status),
		Reason:  r.reason,
		TraceID: r.traceID,
	}
	var err error
	if rec.ReceivedAt, err = parseTime(r.receivedAt); err != nil {
		return status.Record{}, fmt.Errorf("record %s: received_at: %w", r.eventID, err)
	}
	if rec.UpdatedAt, err = parseTime(r.updatedAt); err != nil {
		return status.Record{}, fmt.Errorf("record %s: updated_at: %w", r.eventID, err)
	}
	if r.deliveredAt.Valid {
		t, err := parseTime(r.deliveredAt.String)
		if err != nil {
			return status.Record{}, fmt.Errorf("record %s: delivered_at: %w", r.eventID, err)
		}
		rec.DeliveredAt = &t
	}
	var ev storedEvent
	if err := json.Unmarshal([]byte(r.event), &ev); err != nil {
		return status.Record{}, fmt.Errorf("record %s: event: %w", r.eventID, err)
	}
	rec.Event = event.Event{ID: ev.ID, Name: ev.Name, Body: ev.Body, Timestamp: ev.Timestamp.UTC()}
	if err := json.Unmarshal([]byte(r.attempts), &rec.Attempts); err != nil {
		return status.Record{}, fmt.Errorf("record %s: attempts: %w", r.eventID, err)
	}
	for i := range rec.Attempts {
		rec.Attempts[i].At = rec.Attempts[i].At.UTC()
	}
	return rec, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}
