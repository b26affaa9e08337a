// Package firestorelease is the rate governor's lease on Firestore (ADR
// 0010): one document per queue, taken or renewed in a transaction by each
// dispatcher instance once a window. The instance that holds it is the only
// one that changes the queue's rate; the document also keeps the governor's
// state (the ceiling, the last rate it set, the hold after ops took over) so
// that the next holder goes on from there after a scale-in or a crash.
//
// A queue is named by its full resource name,
// projects/P/locations/L/queues/Q: every region's stack has a queue of the
// same short name (ADR 0006), and all of them share one Firestore database,
// so a short name would give two regions one lease. A document ID cannot
// contain '/', so the ID is the name path-escaped (DocumentID: '/' becomes
// %2F, '%' %25), which url.PathUnescape reverses; the name is also stored
// in the document.
//
// The document, <collection>/<DocumentID(queue)>:
//
//	queue          string     the queue's full name
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
	"net/url"
	"regexp"
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
	// Queue names the governed queue uniquely among every queue whose
	// governor uses the database: on Cloud Tasks its full resource name,
	// projects/P/locations/L/queues/Q. Required; DocumentID makes the
	// lease document's ID from it.
	Queue string
	// ClientOptions are passed to the Firestore client (tests).
	ClientOptions []option.ClientOption
}

// Lease is the governor's lease on one Firestore document. It is safe for
// concurrent use.
type Lease struct {
	client *firestore.Client
	queue  string // the queue's full name, stored in the document
	doc    *firestore.DocumentRef
}

// doc is the lease document.
type doc struct {
	Queue       string    `firestore:"queue"`
	Holder      string    `firestore:"holder"`
	Expires     time.Time `firestore:"expires"`
	Ceiling     float64   `firestore:"ceiling"`
	LastRateSet float64   `firestore:"last_rate_set"`
	HoldUntil   time.Time `firestore:"hold_until"`
	UpdatedAt   time.Time `firestore:"updated_at"`
}

// maxDocumentID is Firestore's limit on a document ID, in bytes.
const maxDocumentID = 1500

// reservedID matches the document IDs Firestore reserves.
var reservedID = regexp.MustCompile(`^__.*__$`)

// DocumentID returns the ID of queue's lease document: queue path-escaped
// (url.PathEscape: '/' becomes %2F and '%' %25, so url.PathUnescape gives
// the name back and two names never share an ID). It fails for a name whose
// ID Firestore would refuse: an ID must be valid UTF-8 (escaping makes it
// ASCII), at most 1,500 bytes, without '/', not "." or "..", and must not
// match __.*__ (https://cloud.google.com/firestore/quotas#collections_documents_and_fields).
func DocumentID(queue string) (string, error) {
	if queue == "" {
		return "", errors.New("firestorelease: the queue name is required")
	}
	id := url.PathEscape(queue)
	switch {
	case len(id) > maxDocumentID:
		return "", fmt.Errorf("firestorelease: a queue name of %d bytes makes a document ID longer than %d bytes", len(queue), maxDocumentID)
	case id == "." || id == ".." || reservedID.MatchString(id):
		return "", fmt.Errorf("firestorelease: queue name %q makes a document ID Firestore reserves", queue)
	}
	return id, nil
}

// New connects to Firestore.
func New(ctx context.Context, o Options) (*Lease, error) {
	id, err := DocumentID(o.Queue)
	if err != nil {
		return nil, err
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
	return &Lease{client: client, queue: o.Queue, doc: client.Collection(o.Collection).Doc(id)}, nil
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
		d.Queue, d.Holder, d.Expires, d.UpdatedAt = l.queue, holder, now.Add(ttl), now
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
