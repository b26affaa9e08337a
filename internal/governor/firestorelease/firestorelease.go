// Package firestorelease is the rate governor's lease on Firestore (ADR
// 0010): one document per queue, taken or renewed in a transaction by each
// dispatcher instance once a window. The instance that holds it is the only
// one that changes the queue's rate; the document also keeps the governor's
// state (the ceiling, the last rate it set, the hold after ops took over) so
// that the next holder goes on from there after a scale-in or a crash.
//
// The document, <collection>/<queue>:
//
//	holder         string     the holding instance ("" once released)
//	expires        timestamp  the holder's clock + the lease's TTL
//	ceiling        number     the rate ops gave the queue (0: unknown)
//	last_rate_set  number     the rate the governor last set (0: none)
//	hold_until     timestamp  the governor leaves the queue alone until then
//	updated_at     timestamp  the last write
package firestorelease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"eventrelay/internal/governor"
)

// DefaultCollection holds the lease documents.
const DefaultCollection = "governor"

// txAttempts bounds the retries of one contended transaction.
const txAttempts = 5

// ErrNotHolder is returned by Save when another instance holds the lease.
var ErrNotHolder = errors.New("firestorelease: the lease is held by another instance")

var _ governor.Lease = (*Lease)(nil)

// Options locate the lease document.
type Options struct {
	// Project is the GCP project; empty detects it from the environment.
	Project string
	// Database is the Firestore database id; empty means "(default)".
	Database string
	// Collection holds the lease documents (default DefaultCollection).
	Collection string
	// Queue names the governed queue: the lease document's id. Required.
	Queue string
	// ClientOptions are passed to the Firestore client (tests).
	ClientOptions []option.ClientOption
}

// Lease is the governor's lease on one Firestore document. It is safe for
// concurrent use.
type Lease struct {
	client *firestore.Client
	doc    *firestore.DocumentRef
}

// doc is the lease document.
type doc struct {
	Holder      string    `firestore:"holder"`
	Expires     time.Time `firestore:"expires"`
	Ceiling     float64   `firestore:"ceiling"`
	LastRateSet float64   `firestore:"last_rate_set"`
	HoldUntil   time.Time `firestore:"hold_until"`
	UpdatedAt   time.Time `firestore:"updated_at"`
}

// New connects to Firestore.
func New(ctx context.Context, o Options) (*Lease, error) {
	if o.Queue == "" {
		return nil, errors.New("firestorelease: the queue name is required")
	}
	if o.Project == "" {
		o.Project = firestore.DetectProjectID
	}
	if o.Database == "" {
		o.Database = firestore.DefaultDatabaseID
	}
	if o.Collection == "" {
		o.Collection = DefaultCollection
	}
	client, err := firestore.NewClientWithDatabase(ctx, o.Project, o.Database, o.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("firestorelease: connect to database %s: %w", o.Database, err)
	}
	return &Lease{client: client, doc: client.Collection(o.Collection).Doc(o.Queue)}, nil
}

// Close closes the Firestore client.
func (l *Lease) Close() error { return l.client.Close() }

// read reads the document in tx; a missing document is the zero doc.
func (l *Lease) read(tx *firestore.Transaction) (doc, error) {
	var d doc
	snap, err := tx.Get(l.doc)
	if status.Code(err) == codes.NotFound {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if err := snap.DataTo(&d); err != nil {
		return d, fmt.Errorf("decode the lease document: %w", err)
	}
	return d, nil
}

// Acquire takes the lease for holder until now+ttl when it is free, expired
// or holder's, and returns the state kept with it; held is false while
// another holder's lease runs.
func (l *Lease) Acquire(ctx context.Context, holder string, now time.Time, ttl time.Duration) (governor.State, bool, error) {
	var (
		st   governor.State
		held bool
	)
	err := l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := l.read(tx)
		if err != nil {
			return err
		}
		st, held = governor.State{Ceiling: d.Ceiling, LastRate: d.LastRateSet, HoldUntil: d.HoldUntil}, false
		if d.Holder != "" && d.Holder != holder && now.Before(d.Expires) {
			return nil
		}
		held = true
		d.Holder, d.Expires, d.UpdatedAt = holder, now.Add(ttl), now
		return tx.Set(l.doc, d)
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return governor.State{}, false, fmt.Errorf("firestorelease: acquire %s: %w", l.doc.Path, err)
	}
	return st, held, nil
}

// Save stores st with the lease while holder holds it (ErrNotHolder
// otherwise).
func (l *Lease) Save(ctx context.Context, holder string, st governor.State) error {
	err := l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := l.read(tx)
		if err != nil {
			return err
		}
		if d.Holder != holder {
			return ErrNotHolder
		}
		d.Ceiling, d.LastRateSet, d.HoldUntil, d.UpdatedAt = st.Ceiling, st.LastRate, st.HoldUntil, time.Now()
		return tx.Set(l.doc, d)
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return fmt.Errorf("firestorelease: save %s: %w", l.doc.Path, err)
	}
	return nil
}

// Release ends holder's lease now, keeping the state, so another instance
// takes over at its next window instead of waiting for the expiry.
func (l *Lease) Release(ctx context.Context, holder string) error {
	err := l.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := l.read(tx)
		if err != nil {
			return err
		}
		if d.Holder != holder {
			return nil
		}
		d.Holder, d.Expires, d.UpdatedAt = "", time.Time{}, time.Now()
		return tx.Set(l.doc, d)
	}, firestore.MaxAttempts(txAttempts))
	if err != nil {
		return fmt.Errorf("firestorelease: release %s: %w", l.doc.Path, err)
	}
	return nil
}
