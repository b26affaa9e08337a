package firestorestatus_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/iterator"

	"eventrelay/internal/status"
	"eventrelay/internal/status/firestorestatus"
	"eventrelay/internal/status/statustest"
	"eventrelay/internal/testutil"
)

// testProject is the emulator project every test uses; each test has a
// collection of its own, so tests run in parallel against one emulator.
const testProject = "eventrelay-test"

// newStore returns a store on a fresh collection of the emulator, and that
// collection's name. The collection is deleted in t.Cleanup.
func newStore(tb testing.TB, ttl time.Duration) (*firestorestatus.Store, string) {
	tb.Helper()
	testutil.Emulator(tb, testutil.FirestoreEmulatorEnv)
	coll := "events-" + rand.Text()
	s, err := firestorestatus.New(tb.Context(), firestorestatus.Options{
		Project:    testProject,
		Collection: coll,
		TTL:        ttl,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		deleteCollection(tb, coll)
	})
	return s, coll
}

// rawClient is a plain Firestore client on the emulator, to look at the
// documents as support would.
func rawClient(tb testing.TB) *firestore.Client {
	tb.Helper()
	c, err := firestore.NewClient(context.Background(), testProject)
	if err != nil {
		tb.Fatalf("firestore.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// deleteCollection removes a test's documents so the shared emulator does not
// grow with every run.
func deleteCollection(tb testing.TB, coll string) {
	tb.Helper()
	ctx := context.WithoutCancel(tb.Context())
	c, err := firestore.NewClient(ctx, testProject)
	if err != nil {
		tb.Errorf("cleanup: %v", err)
		return
	}
	defer c.Close()
	bw := c.BulkWriter(ctx)
	it := c.Collection(coll).DocumentRefs(ctx)
	for {
		ref, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			tb.Errorf("cleanup %s: %v", coll, err)
			break
		}
		if _, err := bw.Delete(ref); err != nil {
			tb.Errorf("cleanup %s: %v", coll, err)
			break
		}
	}
	bw.End()
}

func TestConformance(t *testing.T) {
	t.Parallel()
	statustest.Run(t, func(t *testing.T) status.Store {
		s, _ := newStore(t, firestorestatus.DefaultTTL)
		return s
	})
}

// awkwardIDs are event ids Firestore would refuse as document ids, or that
// are otherwise easy to get wrong.
var awkwardIDs = []struct {
	name string
	id   string
}{
	{name: "plain", id: "evt-123"},
	{name: "slash", id: "a/b/c"},
	{name: "leading slash", id: "/events/x"},
	{name: "dot", id: "."},
	{name: "dot dot", id: ".."},
	{name: "reserved", id: "__x__"},
	{name: "reserved name", id: "__name__"},
	{name: "long", id: strings.Repeat("x", 2000)},
	{name: "unicode", id: "événement-日本語-🚀"},
	{name: "spaces and quotes", id: ` a "b" 'c' `},
	{name: "nul and control", id: "a\x00b\tc"},
}

// TestDocID checks that any event id gives a valid, fixed-length Firestore
// document id, and distinct ids distinct documents.
func TestDocID(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, tc := range awkwardIDs {
		docID := firestorestatus.DocID(tc.id)
		if other, ok := seen[docID]; ok {
			t.Errorf("DocID(%q) = DocID(%q) = %s", tc.id, other, docID)
		}
		seen[docID] = tc.id
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !validDocID(docID) {
				t.Errorf("DocID(%q) = %q, not a valid Firestore document id", tc.id, docID)
			}
			if len(docID) != 64 {
				t.Errorf("len(DocID(%q)) = %d, want 64", tc.id, len(docID))
			}
		})
	}
}

// TestDocIDRoundTrip checks that a record with each awkward id is stored
// under DocID, keeps the raw id in event_id and reads back.
func TestDocIDRoundTrip(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	for _, tc := range awkwardIDs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			created, err := s.Create(t.Context(), statustest.NewRecord(tc.id, time.Now()))
			if err != nil || !created {
				t.Fatalf("Create(%q) = %v, %v; want true, nil", tc.id, created, err)
			}
			got, err := s.Get(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("Get(%q): %v", tc.id, err)
			}
			if got.EventID != tc.id || got.Event.ID != tc.id {
				t.Errorf("Get(%q) returned event_id %q, event.id %q", tc.id, got.EventID, got.Event.ID)
			}
			docID := firestorestatus.DocID(tc.id)
			snap, err := raw.Collection(coll).Doc(docID).Get(t.Context())
			if err != nil {
				t.Fatalf("document %s for %q: %v", docID, tc.id, err)
			}
			if v, _ := snap.DataAt("event_id"); v != tc.id {
				t.Errorf("document %s event_id = %q, want %q", docID, v, tc.id)
			}
		})
	}
}

// validDocID applies Firestore's rules for document ids.
func validDocID(id string) bool {
	return id != "" && len(id) <= 1500 && !strings.Contains(id, "/") &&
		id != "." && id != ".." && !(strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"))
}

// TestDocIDStable pins the derivation: changing it would orphan every
// stored document.
func TestDocIDStable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, id, want string
	}{
		{name: "empty", id: "", want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{name: "abc", id: "abc", want: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := firestorestatus.DocID(tc.id); got != tc.want {
				t.Errorf("DocID(%q) = %s, want %s", tc.id, got, tc.want)
			}
		})
	}
}

// TestExpireAt checks expire_at = received_at + TTL, on records made by
// Create and by Apply, and its absence when TTL is 0.
func TestExpireAt(t *testing.T) {
	t.Parallel()
	received := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	cases := []struct {
		name string
		ttl  time.Duration
	}{
		{name: "default", ttl: firestorestatus.DefaultTTL},
		{name: "one hour", ttl: time.Hour},
		{name: "disabled", ttl: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, coll := newStore(t, tc.ttl)
			raw := rawClient(t)
			if _, err := s.Create(t.Context(), statustest.NewRecord("created", received)); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := s.Apply(t.Context(), "applied", status.Update{
				Status: status.Delivering, At: received, Event: statustest.NewEvent("applied"),
			}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			// A later Apply keeps expire_at anchored on received_at.
			if _, err := s.Apply(t.Context(), "created", status.Update{Status: status.Delivered, At: received.Add(time.Hour)}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, id := range []string{"created", "applied"} {
				snap, err := raw.Collection(coll).Doc(firestorestatus.DocID(id)).Get(t.Context())
				if err != nil {
					t.Fatalf("read %s: %v", id, err)
				}
				v, err := snap.DataAt("expire_at")
				if tc.ttl == 0 {
					if err == nil {
						t.Errorf("%s: expire_at = %v with TTL 0, want no field", id, v)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: expire_at: %v", id, err)
				}
				got, ok := v.(time.Time)
				if !ok {
					t.Fatalf("%s: expire_at is a %T, want a timestamp", id, v)
				}
				if want := received.Add(tc.ttl); !got.Equal(want) {
					t.Errorf("%s: expire_at = %v, want %v", id, got, want)
				}
			}
		})
	}
}

// TestNegativeTTL checks that a negative TTL is refused rather than
// expiring every record at once.
func TestNegativeTTL(t *testing.T) {
	t.Parallel()
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	s, err := firestorestatus.New(t.Context(), firestorestatus.Options{Project: testProject, TTL: -time.Hour})
	if err == nil {
		_ = s.Close()
		t.Fatal("New with a negative TTL succeeded, want an error")
	}
}

// TestDocumentReadable checks the document as support sees it in the
// console: named fields of native Firestore types, not an encoded blob.
func TestDocumentReadable(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, firestorestatus.DefaultTTL)
	raw := rawClient(t)
	received := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
	delivered := received.Add(3 * time.Second)
	if _, err := s.Create(t.Context(), statustest.NewRecord("readable", received)); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Apply(t.Context(), "readable", status.Update{
		Status: status.Delivered,
		At:     delivered,
		Attempt: &status.Attempt{
			Number: 1, At: received.Add(time.Second), Outcome: status.OutcomeDelivered,
			HTTPStatus: 200, Duration: 1500 * time.Microsecond, TaskName: "ev-abc", TraceID: "trace-1",
		},
	}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	snap, err := raw.Collection(coll).Doc(firestorestatus.DocID("readable")).Get(t.Context())
	if err != nil {
		t.Fatalf("read document: %v", err)
	}
	want := map[string]any{
		"event_id":     "readable",
		"status":       "delivered",
		"received_at":  received,
		"updated_at":   delivered,
		"delivered_at": delivered,
		"trace_id":     "4bf92f3577b34da6a3ce929d0e0e4736",
		"reason":       "",
		"expire_at":    received.Add(firestorestatus.DefaultTTL),
		"event": map[string]any{
			"id":        "readable",
			"name":      "test event",
			"body":      "test body",
			"timestamp": time.Date(2026, 3, 14, 15, 0, 0, 123456000, time.UTC),
		},
		"attempts": []any{map[string]any{
			"number":      int64(1),
			"at":          received.Add(time.Second),
			"outcome":     "delivered",
			"http_status": int64(200),
			"error":       "",
			"duration_ns": int64(1500 * time.Microsecond),
			"task_name":   "ev-abc",
			"trace_id":    "trace-1",
		}},
	}
	if diff := cmp.Diff(want, snap.Data()); diff != "" {
		t.Errorf("document fields (-want +got):\n%s", diff)
	}

	// A record not yet delivered shows delivered_at as null, not a zero date.
	if _, err := s.Create(t.Context(), statustest.NewRecord("pending", received)); err != nil {
		t.Fatalf("Create: %v", err)
	}
	snap, err = raw.Collection(coll).Doc(firestorestatus.DocID("pending")).Get(t.Context())
	if err != nil {
		t.Fatalf("read document: %v", err)
	}
	if v, err := snap.DataAt("delivered_at"); err != nil || v != nil {
		t.Errorf("pending delivered_at = %v, %v; want null", v, err)
	}
	if v, err := snap.DataAt("attempts"); err != nil || v == nil {
		t.Errorf("pending attempts = %v, %v; want an empty array", v, err)
	}
}

// TestApplyKeepsUnknownFields checks that Apply writes only the fields it
// changes, so a field added by hand or by a later version survives.
func TestApplyKeepsUnknownFields(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	if _, err := s.Create(t.Context(), statustest.NewRecord("annotated", time.Now())); err != nil {
		t.Fatalf("Create: %v", err)
	}
	ref := raw.Collection(coll).Doc(firestorestatus.DocID("annotated"))
	if _, err := ref.Update(t.Context(), []firestore.Update{{Path: "note", Value: "ticket 42"}}); err != nil {
		t.Fatalf("annotate: %v", err)
	}
	if _, err := s.Apply(t.Context(), "annotated", status.Update{Status: status.Delivering}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	snap, err := ref.Get(t.Context())
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if v, err := snap.DataAt("note"); err != nil || v != "ticket 42" {
		t.Errorf("note after Apply = %v, %v; want ticket 42", v, err)
	}
}

// TestGetRefusesForeignDocument checks that Get does not return a document
// whose event_id is not the one asked for.
func TestGetRefusesForeignDocument(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	if _, err := s.Create(t.Context(), statustest.NewRecord("one", time.Now())); err != nil {
		t.Fatalf("Create: %v", err)
	}
	ref := raw.Collection(coll).Doc(firestorestatus.DocID("one"))
	if _, err := ref.Update(t.Context(), []firestore.Update{{Path: "event_id", Value: "two"}}); err != nil {
		t.Fatalf("tamper: %v", err)
	}
	if _, err := s.Get(t.Context(), "one"); err == nil {
		t.Error("Get returned a document holding another event id, want an error")
	}
}

// newStoreOn opens another store on an existing collection: another
// process, as far as Firestore can tell (its own client and connection).
func newStoreOn(tb testing.TB, coll string) *firestorestatus.Store {
	tb.Helper()
	s, err := firestorestatus.New(tb.Context(), firestorestatus.Options{Project: testProject, Collection: coll})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConcurrentApplyAcrossStores checks what the in-process queue cannot
// do: Applies from several stores (dispatcher instances) on one document
// contend in Firestore, and the transactions keep every attempt. On a
// missing record they also race to create it.
func TestConcurrentApplyAcrossStores(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		create bool
	}{
		{name: "existing", create: true},
		{name: "missing", create: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first, coll := newStore(t, 0)
			stores := []*firestorestatus.Store{first, newStoreOn(t, coll), newStoreOn(t, coll)}
			const perStore = 3
			id := "across-" + tc.name
			if tc.create {
				if _, err := first.Create(t.Context(), statustest.NewRecord(id, time.Now())); err != nil {
					t.Fatalf("Create: %v", err)
				}
			}
			var (
				wg   sync.WaitGroup
				errs = make(chan error, len(stores)*perStore)
			)
			for i, s := range stores {
				for j := range perStore {
					n := i*perStore + j + 1
					wg.Go(func() {
						_, err := s.Apply(t.Context(), id, status.Update{
							Status:  status.Retrying,
							Attempt: &status.Attempt{Number: n, At: time.Now(), Outcome: status.OutcomeRetryable},
							Event:   statustest.NewEvent(id),
						})
						errs <- err
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("Apply: %v", err)
				}
			}
			rec, err := first.Get(t.Context(), id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			var got []int
			for _, a := range rec.Attempts {
				got = append(got, a.Number)
			}
			slices.Sort(got)
			want := make([]int, len(stores)*perStore)
			for i := range want {
				want[i] = i + 1
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("attempt numbers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateDuringApplyAcrossStores checks ingest's Create racing the
// dispatcher's Apply in another process: neither fails, the record is
// created once and keeps the attempt.
func TestCreateDuringApplyAcrossStores(t *testing.T) {
	t.Parallel()
	dispatcher, coll := newStore(t, 0)
	ingest := newStoreOn(t, coll)
	const id = "raced"
	var (
		wg        sync.WaitGroup
		created   bool
		createErr error
		applyErr  error
	)
	wg.Go(func() {
		created, createErr = ingest.Create(t.Context(), statustest.NewRecord(id, time.Now()))
	})
	wg.Go(func() {
		_, applyErr = dispatcher.Apply(t.Context(), id, status.Update{
			Status:  status.Delivering,
			Attempt: &status.Attempt{Number: 1, At: time.Now(), Outcome: status.OutcomeRetryable},
			Event:   statustest.NewEvent(id),
		})
	})
	wg.Wait()
	if createErr != nil {
		t.Errorf("Create: %v", createErr)
	}
	if applyErr != nil {
		t.Errorf("Apply: %v", applyErr)
	}
	rec, err := ingest.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if rec.Status != status.Delivering || len(rec.Attempts) != 1 {
		t.Errorf("record = %s with %d attempts (Create reported %v), want delivering with 1", rec.Status, len(rec.Attempts), created)
	}
}

// TestCreateWaitsForTransaction checks Create on a document another
// process's transaction has read and is about to create: Create must report
// the existing record, not fail. The emulator aborts the waiting Create with
// "Transaction lock timeout" after 2 seconds; the transaction here holds its
// lock longer, so Create's retry is what makes it pass there.
func TestCreateWaitsForTransaction(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	const id = "held"
	ref := raw.Collection(coll).Doc(firestorestatus.DocID(id))
	read := make(chan struct{})
	txErr := make(chan error, 1)
	go func() {
		first := true
		txErr <- raw.RunTransaction(context.WithoutCancel(t.Context()), func(ctx context.Context, tx *firestore.Transaction) error {
			if _, err := tx.Get(ref); err == nil {
				return errors.New("document exists before the transaction created it")
			}
			if first {
				first = false
				close(read)
				time.Sleep(2500 * time.Millisecond) // longer than the emulator's lock timeout
			}
			return tx.Create(ref, map[string]any{"event_id": id, "status": "delivering"})
		}, firestore.MaxAttempts(3))
	}()
	<-read
	created, err := s.Create(t.Context(), statustest.NewRecord(id, time.Now()))
	if err := <-txErr; err != nil {
		t.Fatalf("transaction: %v", err)
	}
	if err != nil || created {
		t.Errorf("Create while a transaction creates the record = %v, %v; want false, nil", created, err)
	}
}

// benchParallelism is goroutines per GOMAXPROCS in the benchmarks: a
// service has many calls in flight, each waiting on the network.
const benchParallelism = 4

// BenchmarkCreate measures ingest's write: one Create per event.
func BenchmarkCreate(b *testing.B) {
	s, _ := newStore(b, firestorestatus.DefaultTTL)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("bench-%d", n.Add(1))
			if _, err := s.Create(ctx, statustest.NewRecord(id, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkApply measures the dispatcher's writes: each op is one Apply (one
// transaction) in the life of an event, delivering → retrying → delivering →
// delivered, each with an attempt. Each goroutine walks its own events, so
// documents do not contend; the first events exist, later ones are created
// by their first Apply.
func BenchmarkApply(b *testing.B) {
	s, _ := newStore(b, firestorestatus.DefaultTTL)
	ctx := context.Background()
	const events = 500
	for i := range events {
		if _, err := s.Create(ctx, statustest.NewRecord(fmt.Sprintf("bench-%d", i), time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	life := []status.Status{status.Delivering, status.Retrying, status.Delivering, status.Delivered}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var (
			id   string
			step int
		)
		for pb.Next() {
			if step%len(life) == 0 {
				id = fmt.Sprintf("bench-%d", n.Add(1)-1)
			}
			now := time.Now()
			if _, err := s.Apply(ctx, id, status.Update{
				Status:  life[step%len(life)],
				At:      now,
				Attempt: &status.Attempt{Number: step%len(life) + 1, At: now, Outcome: status.OutcomeRetryable},
				Event:   statustest.NewEvent(id),
			}); err != nil {
				b.Fatal(err)
			}
			step++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}
