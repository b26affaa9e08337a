// Package firestorestatus is the GCP engine of the status.Store port: one
// Firestore document per event, in one collection (default "events").
//
// # Document id
//
// The document id is DocID(eventID): the lowercase hex SHA-256 of the event
// id, 64 characters. Event ids come from the source and may hold anything a
// Firestore id may not ('/', ".", "..", "__x__", more than 1,500 bytes); a
// hash has none of those whatever the input, has a fixed length, and spreads
// writes evenly over the key space, where ids that grow monotonically (time
// based, sequential) would hot-spot one tablet. base64url of the id would be
// reversible, but it keeps the input's order (so its hot spots), grows with
// the id and can still spell "__x__". The raw id is kept in the event_id
// field, so support finds a document with the console filter
// event_id == "<id>" (event_id keeps its single-field index) or computes the id
// (relayctl status does it through Get). It is the hex part of the queue's
// task name (queue.TaskName is "ev-" + the same hash) for the first
// enqueue.
//
// # Document
//
//	event_id      string     the event id as received
//	shard         integer    0 to Shards-1, ShardOf(event_id) when last written: spreads the indexes List uses
//	status        string     queued, delivering, retrying, delivered, failed, dead_lettered
//	received_at   timestamp  ingest's handler start (or the dispatcher's time if it created the record)
//	updated_at    timestamp  the last change
//	delivered_at  timestamp  set on the move to delivered; null before
//	trace_id      string     W3C trace id of the request that created the record ("" if none)
//	reason        string     why failed / dead_lettered ("" if none)
//	event         map        {id, name, body, timestamp}: the event as accepted
//	attempts      array      of maps {number, at, outcome, http_status, error, duration_ns, task_name, trace_id}, in order
//	expire_at     timestamp  received_at + Options.TTL, for a TTL policy; absent when TTL is 0
//
// Timestamps are stored with Firestore's microsecond precision.
//
// # Indexes production needs
//
// Firestore limits a collection whose documents carry an indexed field
// with sequential values (a timestamp that grows with time) to 500 writes
// per second; every received_at, updated_at, delivered_at and expire_at is
// such a value. So the single-field indexes of every field but event_id
// (support's console lookup) and status (Counts) are exempted, and the two
// indexes List needs put shard before received_at, so that each index
// range growing with time takes 1/Shards of the writes:
//
//	collection: events   fields: status ASC, shard ASC, received_at DESC   (List with a status)
//	collection: events   fields: shard ASC, received_at DESC               (List without one)
//
// terraform/modules/firestore declares both, the exemptions and the TTL
// policy on expire_at; docs/lld/status.md gives the reasoning and Google's
// documents. The emulator runs every query without indexes and has no
// index configuration, so only the Terraform tests check them.
//
// # Transactions and contention
//
// Apply runs in a read-write transaction: read, check status.CanMove, write
// only shard, status, updated_at, delivered_at, reason and attempts (an Update, so
// fields this engine does not know survive). Firestore transactions lock
// what they read; two that read one document and then both write it
// conflict, one is aborted and the client runs it again after a random
// pause (up to 1 s, doubling to 30 s). The emulator resolves that conflict
// only by a 2-second lock timeout ("Transaction lock timeout", ABORTED), so
// twenty concurrent Applies on one document took 7 to 50 seconds there.
// Applies and Creates of one event within a Store are therefore queued in
// the process first (a lock per event id, released when the call returns,
// waiting honours the context): only calls from different processes (Cloud
// Run instances) contend in Firestore, and a transaction is tried up to
// txAttempts times. A
// non-transactional Create that meets another process's transaction may
// fail with ABORTED too (it is not retried by the client); Create retries
// it, which is safe because a create of an existing document changes
// nothing.
package firestorestatus

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"eventrelay/internal/event"
	"eventrelay/internal/status"
)

var _ status.Store = (*Store)(nil)

const (
	// DefaultCollection is the collection used when Options.Collection is empty.
	DefaultCollection = "events"
	// DefaultTTL is the retention the services configure by default: a
	// record expires 30 days after it was received.
	DefaultTTL = 30 * 24 * time.Hour
	// defaultListLimit is the page size when Query.Limit is not positive.
	defaultListLimit = 100
	// txAttempts bounds how often Apply's transaction is tried when it
	// loses a conflict; see the package doc.
	txAttempts = 10
	// createAttempts bounds how often Create is tried when it is aborted by
	// a concurrent transaction on the document.
	createAttempts = 5
	// Shards is how many values the shard field takes (0 to Shards-1). Every
	// index holding received_at starts with shard, so each index range that
	// grows with time takes 1/Shards of the writes; List runs one query per
	// shard. 32 keeps every range under Firestore's 500 writes/s at the
	// 9,000 status writes/s of docs/capacity.md's largest cell (≈ 280 each).
	//
	// Changing it moves records between shards: a document keeps the value
	// it was written with until Apply rewrites it, and List reads every value
	// 0 to Shards-1, so Shards may only grow. Doubling it keeps each record's
	// value or adds the old Shards to it (h mod 2n is h mod n or h mod n + n).
	Shards = 32
	// addShardsPage is how many documents AddShards reads per query.
	addShardsPage = 500
)

// Options configure a Store.
type Options struct {
	// Project is the GCP project; empty means detect it from the
	// environment (credentials or the metadata server).
	Project string
	// Database is the Firestore database id; empty means "(default)".
	Database string
	// Collection holds one document per event; empty means "events".
	Collection string
	// TTL sets expire_at = ReceivedAt + TTL on every document, for a
	// Firestore TTL policy on expire_at. 0 disables it (no expire_at field);
	// the services' configuration defaults it to DefaultTTL.
	TTL time.Duration
	// ClientOptions are passed to the Firestore client (credentials,
	// endpoint). With FIRESTORE_EMULATOR_HOST set the client talks to the
	// emulator without them.
	ClientOptions []option.ClientOption
}

// Store is the Firestore status store. It is safe for concurrent use.
type Store struct {
	client *firestore.Client
	coll   *firestore.CollectionRef
	ttl    time.Duration
	locks  keyLocks
}

// New connects to Firestore. It makes no request: a wrong project or
// missing permission shows on the first call.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Project == "" {
		o.Project = firestore.DetectProjectID
	}
	if o.Database == "" {
		o.Database = firestore.DefaultDatabaseID
	}
	if o.Collection == "" {
		o.Collection = DefaultCollection
	}
	if o.TTL < 0 {
		return nil, fmt.Errorf("firestorestatus: TTL must not be negative, got %s", o.TTL)
	}
	client, err := firestore.NewClientWithDatabase(ctx, o.Project, o.Database, o.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("firestorestatus: connect to database %s: %w", o.Database, err)
	}
	return &Store{client: client, coll: client.Collection(o.Collection), ttl: o.TTL}, nil
}

// Close closes the client.
func (s *Store) Close() error { return s.client.Close() }

// DocID is the id of the document holding the record of eventID: the hex
// SHA-256 of the id (see the package doc for why).
func DocID(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(sum[:])
}

func (s *Store) doc(eventID string) *firestore.DocumentRef { return s.coll.Doc(DocID(eventID)) }

// ShardOf is the shard of the record of eventID: the first four bytes of
// the id's SHA-256 (the document id's hash), big-endian, modulo Shards.
// Create and every Apply write it. A document written under a smaller
// Shards may hold another value until its next Apply; List finds it there.
func ShardOf(eventID string) int {
	sum := sha256.Sum256([]byte(eventID))
	return int(binary.BigEndian.Uint32(sum[:4]) % Shards)
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
		return false, errors.New("firestorestatus: create: record has no event id")
	}
	if r.Event.ID != "" && r.Event.ID != r.EventID {
		return false, fmt.Errorf("firestorestatus: create %s: event id %q does not match", r.EventID, r.Event.ID)
	}
	r.Status = status.Queued
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = time.Now()
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = r.ReceivedAt
	}
	unlock, err := s.locks.lock(ctx, r.EventID)
	if err != nil {
		return false, fmt.Errorf("create status %s: %w", r.EventID, err)
	}
	defer unlock()
	ref, d := s.doc(r.EventID), s.toDoc(r)
	for try := 1; ; try++ {
		_, err = ref.Create(ctx, d)
		if grpcstatus.Code(err) != codes.Aborted || try == createAttempts {
			break
		}
		if err := sleep(ctx, time.Duration(try)*100*time.Millisecond); err != nil {
			return false, fmt.Errorf("create status %s: %w", r.EventID, err)
		}
	}
	if grpcstatus.Code(err) == codes.AlreadyExists {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create status %s: %w", r.EventID, err)
	}
	return true, nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the record for id, or an error wrapping status.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (status.Record, error) {
	snap, err := s.doc(id).Get(ctx)
	if grpcstatus.Code(err) == codes.NotFound {
		return status.Record{}, fmt.Errorf("get status %s: %w", id, status.ErrNotFound)
	}
	if err != nil {
		return status.Record{}, fmt.Errorf("get status %s: %w", id, err)
	}
	rec, err := fromSnapshot(snap)
	if err != nil {
		return status.Record{}, fmt.Errorf("get status %s: %w", id, err)
	}
	if rec.EventID != id {
		return status.Record{}, fmt.Errorf("get status %s: document %s holds event %q", id, snap.Ref.ID, rec.EventID)
	}
	return rec, nil
}

// Apply moves the record for id forward in one transaction; see
// status.Store. A missing record is created from u.Event (queued, received
// at u.At, with u.TraceID) and then moved; without u.Event the error wraps
// status.ErrNotFound. A zero u.At is now.
func (s *Store) Apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	if !u.Status.Valid() {
		return status.Record{}, fmt.Errorf("apply status %s: unknown status %q", id, u.Status)
	}
	if u.At.IsZero() {
		u.At = time.Now()
	}
	u.At = u.At.UTC()
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return status.Record{}, fmt.Errorf("apply status %s: %w", id, err)
	}
	defer unlock()
	ref := s.doc(id)

	var rec status.Record
	txn := func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		exists := true
		switch {
		case grpcstatus.Code(err) == codes.NotFound:
			if u.Event.ID == "" {
				return fmt.Errorf("no record and no event to create it from: %w", status.ErrNotFound)
			}
			if u.Event.ID != id {
				return fmt.Errorf("event id %q does not match", u.Event.ID)
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
			return fmt.Errorf("read: %w", err)
		default:
			if rec, err = fromSnapshot(snap); err != nil {
				return err
			}
		}

		if err := u.ApplyTo(&rec); err != nil {
			return err
		}

		if !exists {
			// The read saw no document, so the transaction conflicts with
			// any concurrent creation of it: Create cannot overwrite one.
			return tx.Create(ref, s.toDoc(rec))
		}
		d := s.toDoc(rec)
		return tx.Update(ref, []firestore.Update{
			// ShardOf: sets it on a record written before shards, or moves
			// one written under another Shards to its current shard.
			{Path: "shard", Value: d.Shard},
			{Path: "status", Value: d.Status},
			{Path: "updated_at", Value: d.UpdatedAt},
			{Path: "delivered_at", Value: d.DeliveredAt},
			{Path: "reason", Value: d.Reason},
			{Path: "attempts", Value: d.Attempts},
		})
	}

	// A Create that lost to a concurrent creation fails with AlreadyExists
	// rather than Aborted, which RunTransaction does not retry: run it again,
	// and it now reads the document.
	for range 3 {
		err = s.client.RunTransaction(ctx, txn, firestore.MaxAttempts(txAttempts))
		if grpcstatus.Code(err) != codes.AlreadyExists {
			break
		}
	}
	if err != nil {
		var te *status.TransitionError
		if errors.As(err, &te) {
			return status.Record{}, err // says which event and move already
		}
		return status.Record{}, fmt.Errorf("apply status %s: %w", id, err)
	}
	return rec, nil
}

// List returns records matching q, newest received first. Records
// received in the same microsecond are ordered by event id, descending, as
// in the embedded engine.
//
// Every index holding received_at starts with shard, so List reads each
// shard newest first and merges them, in rounds: the first reads a little
// more than its share of q.Limit from every shard, concurrently; a later
// round reads on (from where it stopped, twice as many) only in the shards
// whose last record read is not older than the q.Limit-th newest so far,
// the only ones that may still hold a record of the result. Spread evenly,
// a page reads about q.Limit + 2*Shards documents in one or two rounds;
// at worst (all of a page in one shard) about 3*q.Limit + 2*Shards, in
// up to log2(q.Limit) rounds.
//
// Times are kept to the microsecond, so Before is too: a record received
// in the same microsecond as Before is not listed, and paging by Before
// skips records received in the same microsecond as the last one of a
// page.
//
// The queries need the composite indexes (status ASC, shard ASC,
// received_at DESC) and (shard ASC, received_at DESC) in production; see
// the package doc. List reads a record in the shard its document holds,
// which need not be ShardOf of its id: one written under a smaller Shards
// keeps its value, within 0 to Shards-1, until Apply rewrites it. A
// document without a shard field (written before shards existed) is in
// neither index and is not listed; AddShards gives it one.
func (s *Store) List(ctx context.Context, q status.Query) ([]status.Record, error) {
	if q.Status != "" && !q.Status.Valid() {
		return nil, fmt.Errorf("list status: unknown status %q", q.Status)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	base := s.coll.Query
	if q.Status != "" {
		base = base.Where("status", "==", string(q.Status))
	}
	if !q.Before.IsZero() {
		// Stored times are truncated to the microsecond; truncate the bound
		// too, so that a record never sorts before a bound equal to its own
		// received time.
		base = base.Where("received_at", "<", q.Before.UTC().Truncate(time.Microsecond))
	}

	type shardRead struct {
		q    firestore.Query
		next int                         // how many to read in the next round; 0 = done
		last *firestore.DocumentSnapshot // cursor: the last document read
		recs []status.Record
	}
	shards := make([]*shardRead, Shards)
	for i := range shards {
		shards[i] = &shardRead{
			q:    base.Where("shard", "==", i).OrderBy("received_at", firestore.Desc),
			next: min(limit, limit/Shards+2),
		}
	}
	var merged []status.Record
	for {
		g, gctx := errgroup.WithContext(ctx)
		for i, sh := range shards {
			if sh.next == 0 {
				continue
			}
			g.Go(func() error {
				fq := sh.q.Limit(sh.next)
				if sh.last != nil {
					fq = fq.StartAfter(sh.last)
				}
				recs, last, err := s.query(gctx, fq)
				if err != nil {
					return fmt.Errorf("list status (shard %d): %w", i, err)
				}
				sh.recs = append(sh.recs, recs...)
				if len(recs) < sh.next {
					sh.next = 0 // the shard has no more
				} else {
					sh.last, sh.next = last, min(limit, 2*sh.next)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		merged = merged[:0]
		for _, sh := range shards {
			merged = append(merged, sh.recs...)
		}
		slices.SortFunc(merged, newestFirst)
		if len(merged) < limit {
			// Every shard with more to read may hold a record of the page.
			if !slices.ContainsFunc(shards, func(sh *shardRead) bool { return sh.next > 0 }) {
				return merged, nil
			}
			continue
		}
		// A shard may still hold a record of the page only if the last
		// one read from it is not older than the page's last.
		bound := merged[limit-1].ReceivedAt
		more := false
		for _, sh := range shards {
			if sh.next > 0 && sh.recs[len(sh.recs)-1].ReceivedAt.Before(bound) {
				sh.next = 0
			}
			more = more || sh.next > 0
		}
		if !more {
			return merged[:limit], nil
		}
	}
}

// newestFirst orders records by received_at, then event id, both
// descending: List's order.
func newestFirst(a, b status.Record) int {
	if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
		return c
	}
	return strings.Compare(b.EventID, a.EventID)
}

// query reads every record fq returns, and the last document.
func (s *Store) query(ctx context.Context, fq firestore.Query) ([]status.Record, *firestore.DocumentSnapshot, error) {
	it := fq.Documents(ctx)
	defer it.Stop()
	var (
		out  []status.Record
		last *firestore.DocumentSnapshot
	)
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, last, nil
		}
		if err != nil {
			return nil, nil, err
		}
		rec, err := fromSnapshot(snap)
		if err != nil {
			return nil, nil, err
		}
		out, last = append(out, rec), snap
	}
}

// AddShards sets the shard field on every record in status st that has
// none: records written before shards existed, which List does not see.
// It reads every record in st (by the single-field index on status, in
// document id order) and writes only those without the field; it is safe
// to run while the services write (the value is the one they would write)
// and to run again. It returns how many records it changed. A record that
// has a value from a smaller Shards is left as it is: List finds it there,
// and its next Apply moves it.
func (s *Store) AddShards(ctx context.Context, st status.Status) (int, error) {
	if !st.Valid() {
		return 0, fmt.Errorf("add shards: unknown status %q", st)
	}
	bw := s.client.BulkWriter(ctx)
	var (
		jobs []*firestore.BulkWriterJob
		last *firestore.DocumentSnapshot
	)
	for {
		q := s.coll.Where("status", "==", string(st)).OrderBy(firestore.DocumentID, firestore.Asc).Limit(addShardsPage)
		if last != nil {
			q = q.StartAfter(last)
		}
		snaps, err := q.Documents(ctx).GetAll()
		if err != nil {
			bw.End()
			return 0, fmt.Errorf("add shards %s: %w", st, err)
		}
		for _, snap := range snaps {
			if _, err := snap.DataAt("shard"); err == nil {
				continue
			}
			id, err := snap.DataAt("event_id")
			eventID, ok := id.(string)
			if err != nil || !ok {
				bw.End()
				return 0, fmt.Errorf("add shards %s: document %s has no event_id", st, snap.Ref.ID)
			}
			job, err := bw.Update(snap.Ref, []firestore.Update{{Path: "shard", Value: ShardOf(eventID)}})
			if err != nil {
				bw.End()
				return 0, fmt.Errorf("add shards %s: %w", st, err)
			}
			jobs = append(jobs, job)
		}
		if len(snaps) < addShardsPage {
			break
		}
		last = snaps[len(snaps)-1]
	}
	bw.End()
	n := 0
	var errs []error
	for _, job := range jobs {
		_, err := job.Results()
		switch {
		case err == nil:
			n++
		case grpcstatus.Code(err) == codes.NotFound:
			// Deleted (TTL) since it was read: nothing to list.
		default:
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("add shards %s: %w", st, err)
	}
	return n, nil
}

// Counts returns how many records are in each status; every known status is
// present, zero when no record has it. It runs one COUNT aggregation query
// per status, concurrently (an aggregation bills one read per 1,000 index
// entries counted, not one per document).
func (s *Store) Counts(ctx context.Context) (map[status.Status]int64, error) {
	counts := make([]int64, len(status.All))
	g, ctx := errgroup.WithContext(ctx)
	for i, st := range status.All {
		g.Go(func() error {
			q := s.coll.Where("status", "==", string(st))
			res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
			if err != nil {
				return fmt.Errorf("count status %s: %w", st, err)
			}
			n, err := countOf(res, "n")
			if err != nil {
				return fmt.Errorf("count status %s: %w", st, err)
			}
			counts[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[status.Status]int64, len(status.All))
	for i, st := range status.All {
		out[st] = counts[i]
	}
	return out, nil
}

// countOf reads the COUNT aggregation named alias.
func countOf(res firestore.AggregationResult, alias string) (int64, error) {
	v, ok := res.Data()[alias]
	if !ok {
		return 0, fmt.Errorf("no %q in the aggregation result", alias)
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("aggregation %q is a %T, want int64", alias, v)
	}
	return n, nil
}

// document is a record as stored; see the package doc.
type document struct {
	EventID     string       `firestore:"event_id"`
	Shard       int64        `firestore:"shard"`
	Status      string       `firestore:"status"`
	ReceivedAt  time.Time    `firestore:"received_at"`
	UpdatedAt   time.Time    `firestore:"updated_at"`
	DeliveredAt *time.Time   `firestore:"delivered_at"`
	TraceID     string       `firestore:"trace_id"`
	Reason      string       `firestore:"reason"`
	Event       eventDoc     `firestore:"event"`
	Attempts    []attemptDoc `firestore:"attempts"`
	ExpireAt    *time.Time   `firestore:"expire_at,omitempty"`
}

// eventDoc is the event as accepted; stored without validation so that what
// was stored reads back as it was.
type eventDoc struct {
	ID        string    `firestore:"id"`
	Name      string    `firestore:"name"`
	Body      string    `firestore:"body"`
	Timestamp time.Time `firestore:"timestamp"`
}

type attemptDoc struct {
	Number     int64     `firestore:"number"`
	At         time.Time `firestore:"at"`
	Outcome    string    `firestore:"outcome"`
	HTTPStatus int64     `firestore:"http_status"`
	Error      string    `firestore:"error"`
	DurationNS int64     `firestore:"duration_ns"`
	TaskName   string    `firestore:"task_name"`
	TraceID    string    `firestore:"trace_id"`
}

func (s *Store) toDoc(r status.Record) document {
	d := document{
		EventID:    r.EventID,
		Shard:      int64(ShardOf(r.EventID)),
		Status:     string(r.Status),
		ReceivedAt: r.ReceivedAt.UTC(),
		UpdatedAt:  r.UpdatedAt.UTC(),
		TraceID:    r.TraceID,
		Reason:     r.Reason,
		Event: eventDoc{
			ID:        r.Event.ID,
			Name:      r.Event.Name,
			Body:      r.Event.Body,
			Timestamp: r.Event.Timestamp.UTC(),
		},
		Attempts: make([]attemptDoc, 0, len(r.Attempts)),
	}
	if r.DeliveredAt != nil {
		t := r.DeliveredAt.UTC()
		d.DeliveredAt = &t
	}
	if s.ttl > 0 {
		t := r.ReceivedAt.Add(s.ttl).UTC()
		d.ExpireAt = &t
	}
	for _, a := range r.Attempts {
		d.Attempts = append(d.Attempts, attemptDoc{
			Number:     int64(a.Number),
			At:         a.At.UTC(),
			Outcome:    string(a.Outcome),
			HTTPStatus: int64(a.HTTPStatus),
			Error:      a.Error,
			DurationNS: int64(a.Duration),
			TaskName:   a.TaskName,
			TraceID:    a.TraceID,
		})
	}
	return d
}

func fromSnapshot(snap *firestore.DocumentSnapshot) (status.Record, error) {
	var d document
	if err := snap.DataTo(&d); err != nil {
		return status.Record{}, fmt.Errorf("decode document %s: %w", snap.Ref.ID, err)
	}
	r := status.Record{
		EventID:    d.EventID,
		Status:     status.Status(d.Status),
		ReceivedAt: d.ReceivedAt.UTC(),
		UpdatedAt:  d.UpdatedAt.UTC(),
		TraceID:    d.TraceID,
		Reason:     d.Reason,
		Event: event.Event{
			ID:        d.Event.ID,
			Name:      d.Event.Name,
			Body:      d.Event.Body,
			Timestamp: d.Event.Timestamp.UTC(),
		},
	}
	if d.DeliveredAt != nil {
		t := d.DeliveredAt.UTC()
		r.DeliveredAt = &t
	}
	if len(d.Attempts) > 0 {
		r.Attempts = make([]status.Attempt, 0, len(d.Attempts))
	}
	for _, a := range d.Attempts {
		r.Attempts = append(r.Attempts, status.Attempt{
			Number:     int(a.Number),
			At:         a.At.UTC(),
			Outcome:    status.Outcome(a.Outcome),
			HTTPStatus: int(a.HTTPStatus),
			Error:      a.Error,
			Duration:   time.Duration(a.DurationNS),
			TaskName:   a.TaskName,
			TraceID:    a.TraceID,
		})
	}
	return r, nil
}

// keyLocks queues callers per key within the process. Entries are removed
// when no caller holds or waits for them, so the map stays as small as the
// number of events in flight.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters; guarded by keyLocks.mu
}

// lock waits until key is free or ctx is done, and returns the unlock.
func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		return func() {
			<-l.ch
			k.release(key, l)
		}, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyLocks) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(k.m, key)
	}
}
