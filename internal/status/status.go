// Package status is the port to the per-event status record support reads:
// one record per event, moving forward only, with every delivery attempt.
// Engines live in sibling packages (sqlitestatus is the embedded one,
// firestorestatus the GCP one) and all pass the suite in statustest.
package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"eventrelay/internal/event"
)

// Status is where an event is in its life.
type Status string

// The statuses, in the order an event moves through them:
//
//	queued → delivering ⇄ retrying → delivered | failed | dead_lettered
const (
	// Queued: ingest's queue accepted the event (the 202 was earned).
	Queued Status = "queued"
	// Delivering: an attempt to call the target is in progress.
	Delivering Status = "delivering"
	// Retrying: an attempt failed in a way worth retrying; the queue will retry.
	Retrying Status = "retrying"
	// Delivered: the target accepted the event. Terminal.
	Delivered Status = "delivered"
	// Failed: the target rejected the event permanently. Terminal.
	Failed Status = "failed"
	// DeadLettered: the last allowed attempt failed (the dispatcher's
	// budget), or the reconciler found its task gone and its policy says
	// dead-letter; the payload is kept for replay. Terminal until an
	// operator replays it.
	DeadLettered Status = "dead_lettered"
)

// All lists every status, for flags and validation.
var All = []Status{Queued, Delivering, Retrying, Delivered, Failed, DeadLettered}

// rank orders statuses; a record never moves to a lower rank, and a terminal
// record (rank 2) does not move at all.
func (s Status) rank() int {
	switch s {
	case Queued:
		return 0
	case Delivering, Retrying:
		return 1
	case Delivered, Failed, DeadLettered:
		return 2
	default:
		return -1
	}
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s.rank() >= 0 }

// Terminal reports whether no further transition is allowed.
func (s Status) Terminal() bool { return s.rank() == 2 }

// CanMove reports whether a record in status from may move to status to.
// Moving to the same non-terminal status is allowed (e.g. a second retry).
func CanMove(from, to Status) bool {
	if !from.Valid() || !to.Valid() || from.Terminal() {
		return false
	}
	return to.rank() >= from.rank()
}

// Outcome classifies one delivery attempt.
type Outcome string

const (
	OutcomeDelivered    Outcome = "delivered"
	OutcomeRateLimited  Outcome = "rate_limited"
	OutcomeRetryable    Outcome = "retryable"
	OutcomePermanent    Outcome = "permanent"
	OutcomeDeadLettered Outcome = "dead_lettered"
	// OutcomeSkipped: the event was already delivered; the target was not called.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeReplayed marks an operator's replay of a failed or dead-lettered
	// event in its history: not a delivery attempt, the point where a new
	// round of attempts began. Its Error keeps the reason the round before
	// ended with.
	OutcomeReplayed Outcome = "replayed"
	// OutcomeReconciled marks the reconciler's action in a record's history:
	// the task carrying the event was gone from the queue while the record
	// was not final. Not a delivery attempt. Its TaskName is the new task
	// the event was enqueued under (empty when it was dead-lettered), and
	// its Error says which task was missing.
	OutcomeReconciled Outcome = "reconciled"
)

// Attempt is one delivery attempt as the dispatcher saw it.
type Attempt struct {
	// Number is the attempt's 1-based number (X-CloudTasks-TaskRetryCount + 1).
	Number     int           `json:"number"`
	At         time.Time     `json:"at"`
	Outcome    Outcome       `json:"outcome"`
	HTTPStatus int           `json:"http_status,omitempty"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	TaskName   string        `json:"task_name,omitempty"`
	TraceID    string        `json:"trace_id,omitempty"`
}

// Record is everything known about one event.
type Record struct {
	EventID string `json:"event_id"`
	Status  Status `json:"status"`
	// Event is the event as accepted, kept so a failed or dead-lettered event
	// can be inspected and replayed.
	Event       event.Event `json:"event"`
	ReceivedAt  time.Time   `json:"received_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	DeliveredAt *time.Time  `json:"delivered_at,omitempty"`
	// Reason says why the record is failed or dead-lettered.
	Reason   string    `json:"reason,omitempty"`
	TraceID  string    `json:"trace_id,omitempty"`
	Attempts []Attempt `json:"attempts"`
}

// Update moves a record forward and optionally appends an attempt.
type Update struct {
	Status  Status
	Attempt *Attempt
	// Reason replaces the record's reason when non-empty.
	Reason string
	// At is when the update happened; DeliveredAt is set from it when
	// Status is Delivered.
	At time.Time
	// Event and TraceID let the engine create the record if ingest's
	// best-effort Create never landed.
	Event   event.Event
	TraceID string
	// Reopen allows the one backward move there is: a failed or
	// dead-lettered record back to Queued, for a replay (see Replay).
	Reopen bool
}

// Allowed reports whether u may be applied to a record in status from.
func (u Update) Allowed(from Status) bool {
	if u.Reopen {
		return (from == Failed || from == DeadLettered) && u.Status == Queued
	}
	return CanMove(from, u.Status)
}

// ApplyTo is the one implementation of Apply's change, which every engine
// runs inside its own transaction on the record it read: it checks the move
// and sets the fields. A refused move returns a *TransitionError and leaves
// r unchanged.
func (u Update) ApplyTo(r *Record) error {
	if !u.Allowed(r.Status) {
		return &TransitionError{EventID: r.EventID, From: r.Status, To: u.Status}
	}
	r.Status = u.Status
	r.UpdatedAt = u.At
	if u.Reason != "" {
		r.Reason = u.Reason
	}
	if u.Status == Delivered {
		at := u.At
		r.DeliveredAt = &at
	}
	if u.Attempt != nil {
		a := *u.Attempt
		a.At = a.At.UTC()
		r.Attempts = append(r.Attempts, a)
	}
	return nil
}

// Replay reopens a failed or dead-lettered event for a new round of
// delivery: the record moves back to Queued with its history kept and a
// "replayed" entry appended that remembers why the last round ended. The
// caller then enqueues a task under a new name (queue.ReplayTaskName). Any other
// status is refused with a *TransitionError (ErrConflict).
func Replay(ctx context.Context, s Store, id string, at time.Time) (Record, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	return s.Apply(ctx, id, Update{
		Status:  Queued,
		Reopen:  true,
		At:      at,
		Reason:  "replayed after: " + rec.Reason,
		Attempt: &Attempt{At: at, Outcome: OutcomeReplayed, Error: rec.Reason},
	})
}

// Replays counts the replays in r's history.
func (r Record) Replays() int {
	n := 0
	for _, a := range r.Attempts {
		if a.Outcome == OutcomeReplayed {
			n++
		}
	}
	return n
}

var (
	// ErrNotFound: no record for that event id.
	ErrNotFound = errors.New("status: record not found")
	// ErrConflict: the update would move the record backwards or out of a
	// terminal status. The record is unchanged.
	ErrConflict = errors.New("status: transition not allowed")
)

// TransitionError tells which transition was refused; it wraps ErrConflict.
type TransitionError struct {
	EventID  string
	From, To Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("status: event %q cannot move from %s to %s", e.EventID, e.From, e.To)
}

func (e *TransitionError) Unwrap() error { return ErrConflict }

// Query selects records for listing, newest received first.
type Query struct {
	// Status filters by status; empty means any.
	Status Status
	// Limit caps the result; <= 0 means a default of 100.
	Limit int
	// Before, when set, returns only records received before it (paging).
	Before time.Time
}

// Store is the status port.
type Store interface {
	// Create stores a new record in status Queued. It reports created=false,
	// and changes nothing, when a record for the id already exists.
	Create(ctx context.Context, r Record) (created bool, err error)
	// Get returns the record for id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Apply moves the record for id forward in one transaction: it checks
	// CanMove, appends the attempt and sets the fields. When the record does
	// not exist it is created from u.Event first. A refused move returns a
	// *TransitionError and changes nothing.
	Apply(ctx context.Context, id string, u Update) (Record, error)
	// List returns records matching q, newest received first.
	List(ctx context.Context, q Query) ([]Record, error)
	// Counts returns how many records are in each status.
	Counts(ctx context.Context) (map[Status]int64, error)
}
