package targetmock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Outcome is what the target did with one receiveEvent call.
type Outcome string

// The outcomes of a receiveEvent call, as recorded and as the GraphQL
// Call.outcome field spells them.
const (
	// OutcomeAccepted: the first call with this id; the event was stored.
	OutcomeAccepted Outcome = "accepted"
	// OutcomeDuplicate: the id was stored before; nothing changed.
	OutcomeDuplicate Outcome = "duplicate"
	// OutcomeRateLimited: over the token bucket; answered 429 or RATE_LIMITED.
	OutcomeRateLimited Outcome = "rate_limited"
	// OutcomeRejected: permanently refused (bad input, unsupported request).
	OutcomeRejected Outcome = "rejected"
	// OutcomeFault: an injected fault; answered HTTP 500.
	OutcomeFault Outcome = "fault"
)

// ErrNotFound is returned by Server.Event for an id the target never accepted.
var ErrNotFound = errors.New("targetmock: event not found")

// Call is one receiveEvent call the target saw, whatever its outcome.
type Call struct {
	// EventID is input.id as sent ("" when the request did not carry one).
	EventID string
	// At is when the call reached the target (the rate-limit decision time).
	At      time.Time
	Outcome Outcome
	Brand   string
	// Traceparent and IdempotencyKey are the request headers ("" = absent).
	Traceparent    string
	IdempotencyKey string
	// Detail says why a call was rejected; empty otherwise.
	Detail string
}

// ReceivedEvent is one event the target accepted: the side effect.
type ReceivedEvent struct {
	ID        string
	Name      string
	Body      string
	Timestamp string
	Brand     string
	// FirstReceivedAt is when the accepting call reached the target.
	FirstReceivedAt time.Time
	// Calls counts the accepted and duplicate calls that carried this id:
	// 1 means the event was never delivered twice.
	Calls int
}

// SecondCount counts calls in one wall-clock (UTC Unix) second.
type SecondCount struct {
	Second   int64
	Calls    int
	Accepted int
}

// Stats summarises every call the target saw.
type Stats struct {
	// Calls is the number of receiveEvent calls of any outcome.
	Calls       int
	Accepted    int
	Duplicates  int
	RateLimited int
	Rejected    int
	Faults      int
	// DistinctEvents is the number of stored events (side effects).
	DistinctEvents int
	// MaxAcceptedPerSecond is the most accepted calls in one wall-clock second.
	MaxAcceptedPerSecond int
	// MaxCallsPerSecond is the most calls of any outcome in one wall-clock second.
	MaxCallsPerSecond int
}

// CallFilter selects calls for Server.Calls.
type CallFilter struct {
	// EventID, when set, keeps only calls that carried this id.
	EventID string
	// Limit caps the number of calls returned (oldest first); 0 = no cap.
	Limit int
}

// store keeps the record of calls and the idempotency set in SQLite: a file
// in WAL mode, so that both survive kill -9, or an in-memory database. One
// connection serialises every statement, which makes the idempotency check
// atomic and never meets SQLITE_BUSY inside the process.
type store struct {
	db *sql.DB
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS events (
	id                TEXT PRIMARY KEY,
	name              TEXT NOT NULL,
	body              TEXT NOT NULL,
	timestamp         TEXT NOT NULL,
	brand             TEXT NOT NULL,
	first_received_at INTEGER NOT NULL, -- Unix nanoseconds
	calls             INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
	seq             INTEGER PRIMARY KEY,
	event_id        TEXT NOT NULL,
	at              INTEGER NOT NULL, -- Unix nanoseconds
	outcome         TEXT NOT NULL,
	brand           TEXT NOT NULL,
	traceparent     TEXT NOT NULL,
	idempotency_key TEXT NOT NULL,
	detail          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_event ON calls (event_id, seq);
CREATE TABLE IF NOT EXISTS seconds (
	second   INTEGER PRIMARY KEY, -- Unix seconds
	calls    INTEGER NOT NULL,
	accepted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
	outcome TEXT PRIMARY KEY,
	n       INTEGER NOT NULL
);
`

// openStore opens (creating when needed) the store at path, or an in-memory
// store when path is empty.
func openStore(ctx context.Context, path string) (*store, error) {
	dsn := ":memory:"
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		// NORMAL in WAL mode: a commit survives a crash of the process (the
		// crash test kills it with -9); only power loss can drop the last ones.
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "busy_timeout(5000)")
		dsn = path + "?" + q.Encode()
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	// One connection, never recycled: an in-memory database lives exactly as
	// long as its connection, and a single writer needs no lock retries.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
		return nil, errors.Join(fmt.Errorf("create schema in %q: %w", path, err), db.Close())
	}
	return &store{db: db}, nil
}

func (st *store) close() error { return st.db.Close() }

// receive stores ev unless its id is stored already, and records the call c
// in the same transaction. It returns the outcome (accepted or duplicate) and
// when the id was first received.
func (st *store) receive(ctx context.Context, ev ReceivedEvent, c Call) (Outcome, time.Time, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	res, err := tx.ExecContext(ctx, `INSERT INTO events (id, name, body, timestamp, brand, first_received_at, calls)
		VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Name, ev.Body, ev.Timestamp, ev.Brand, c.At.UnixNano())
	if err != nil {
		return "", time.Time{}, fmt.Errorf("insert event: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("insert event: %w", err)
	}
	c.Outcome = OutcomeAccepted
	first := c.At
	if n == 0 {
		c.Outcome = OutcomeDuplicate
		var nanos int64
		err := tx.QueryRowContext(ctx, `UPDATE events SET calls = calls + 1 WHERE id = ? RETURNING first_received_at`,
			ev.ID).Scan(&nanos)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("count duplicate: %w", err)
		}
		first = time.Unix(0, nanos).UTC()
	}
	if err := insertCall(ctx, tx, c); err != nil {
		return "", time.Time{}, err
	}
	if err := tx.Commit(); err != nil {
		return "", time.Time{}, fmt.Errorf("commit: %w", err)
	}
	return c.Outcome, first, nil
}

// record records a call that stored nothing (rate limited, rejected, fault).
func (st *store) record(ctx context.Context, c Call) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := insertCall(ctx, tx, c); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func insertCall(ctx context.Context, tx *sql.Tx, c Call) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO calls (event_id, at, outcome, brand, traceparent, idempotency_key, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.EventID, c.At.UnixNano(), string(c.Outcome), c.Brand, c.Traceparent, c.IdempotencyKey, c.Detail); err != nil {
		return fmt.Errorf("insert call: %w", err)
	}
	accepted := 0
	if c.Outcome == OutcomeAccepted {
		accepted = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO seconds (second, calls, accepted) VALUES (?, 1, ?)
		ON CONFLICT (second) DO UPDATE SET calls = calls + 1, accepted = accepted + excluded.accepted`,
		c.At.Unix(), accepted); err != nil {
		return fmt.Errorf("count call per second: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO outcomes (outcome, n) VALUES (?, 1)
		ON CONFLICT (outcome) DO UPDATE SET n = n + 1`, string(c.Outcome)); err != nil {
		return fmt.Errorf("count outcome: %w", err)
	}
	return nil
}

func (st *store) stats(ctx context.Context) (Stats, error) {
	var s Stats
	rows, err := st.db.QueryContext(ctx, `SELECT outcome, n FROM outcomes`)
	if err != nil {
		return Stats{}, fmt.Errorf("count outcomes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		var n int
		if err := rows.Scan(&o, &n); err != nil {
			return Stats{}, fmt.Errorf("count outcomes: %w", err)
		}
		s.Calls += n
		switch Outcome(o) {
		case OutcomeAccepted:
			s.Accepted = n
		case OutcomeDuplicate:
			s.Duplicates = n
		case OutcomeRateLimited:
			s.RateLimited = n
		case OutcomeRejected:
			s.Rejected = n
		case OutcomeFault:
			s.Faults = n
		}
	}
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("count outcomes: %w", err)
	}
	err = st.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM events),
		(SELECT coalesce(max(accepted), 0) FROM seconds),
		(SELECT coalesce(max(calls), 0) FROM seconds)`).
		Scan(&s.DistinctEvents, &s.MaxAcceptedPerSecond, &s.MaxCallsPerSecond)
	if err != nil {
		return Stats{}, fmt.Errorf("count events: %w", err)
	}
	return s, nil
}

func (st *store) perSecond(ctx context.Context) ([]SecondCount, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT second, calls, accepted FROM seconds ORDER BY second`)
	if err != nil {
		return nil, fmt.Errorf("list seconds: %w", err)
	}
	defer rows.Close()
	out := []SecondCount{}
	for rows.Next() {
		var c SecondCount
		if err := rows.Scan(&c.Second, &c.Calls, &c.Accepted); err != nil {
			return nil, fmt.Errorf("list seconds: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list seconds: %w", err)
	}
	return out, nil
}

func (st *store) calls(ctx context.Context, f CallFilter) ([]Call, error) {
	q := `SELECT event_id, at, outcome, brand, traceparent, idempotency_key, detail FROM calls`
	var args []any
	if f.EventID != "" {
		q += ` WHERE event_id = ?`
		args = append(args, f.EventID)
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := st.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list calls: %w", err)
	}
	defer rows.Close()
	out := []Call{}
	for rows.Next() {
		var c Call
		var at int64
		var outcome string
		if err := rows.Scan(&c.EventID, &at, &outcome, &c.Brand, &c.Traceparent, &c.IdempotencyKey, &c.Detail); err != nil {
			return nil, fmt.Errorf("list calls: %w", err)
		}
		c.At = time.Unix(0, at).UTC()
		c.Outcome = Outcome(outcome)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list calls: %w", err)
	}
	return out, nil
}

const eventColumns = `id, name, body, timestamp, brand, first_received_at, calls`

func scanEvent(sc interface{ Scan(...any) error }) (ReceivedEvent, error) {
	var e ReceivedEvent
	var first int64
	if err := sc.Scan(&e.ID, &e.Name, &e.Body, &e.Timestamp, &e.Brand, &first, &e.Calls); err != nil {
		return ReceivedEvent{}, err
	}
	e.FirstReceivedAt = time.Unix(0, first).UTC()
	return e, nil
}

func (st *store) event(ctx context.Context, id string) (ReceivedEvent, error) {
	e, err := scanEvent(st.db.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ReceivedEvent{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ReceivedEvent{}, fmt.Errorf("read event %s: %w", id, err)
	}
	return e, nil
}

func (st *store) events(ctx context.Context) ([]ReceivedEvent, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM events ORDER BY first_received_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	out := []ReceivedEvent{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}
