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
		"shard":        int64(firestorestatus.ShardOf("readable")),
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

// TestShardOf pins the derivation (a changed one would move every record
// to another index range at its next Apply) and checks that ordinary ids
// use every shard.
func TestShardOf(t *testing.T) {
	t.Parallel()
	if firestorestatus.Shards != 32 {
		t.Fatalf("Shards = %d, want 32: the pinned values below are for 32", firestorestatus.Shards)
	}
	cases := []struct {
		name string
		id   string
		want int
	}{
		{name: "empty", id: "", want: 2},   // SHA-256 e3b0c442…: 0xe3b0c442 mod 32
		{name: "abc", id: "abc", want: 31}, // SHA-256 ba7816bf…: 0xba7816bf mod 32 (15 under 16 shards)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := firestorestatus.ShardOf(tc.id); got != tc.want {
				t.Errorf("ShardOf(%q) = %d, want %d", tc.id, got, tc.want)
			}
		})
	}
	seen := map[int]int{}
	for i := range 400 {
		shard := firestorestatus.ShardOf(fmt.Sprintf("evt-%d", i))
		if shard < 0 || shard >= firestorestatus.Shards {
			t.Fatalf("ShardOf(evt-%d) = %d, out of [0, %d)", i, shard, firestorestatus.Shards)
		}
		seen[shard]++
	}
	if len(seen) != firestorestatus.Shards {
		t.Errorf("400 ids fall in %d shards, want all %d: %v", len(seen), firestorestatus.Shards, seen)
	}
}

// TestListAcrossShards pages by 5 through more than Shards*5 records whose
// ids fall in every shard (7 a shard on average: evt-000 to evt-220 are
// the first to reach all 32), received one millisecond apart: every page
// must be the next five newest whatever shard holds them. Each document
// carries its shard, whether Create or Apply wrote it.
func TestListAcrossShards(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	const (
		n        = 7*firestorestatus.Shards + 13
		pageSize = 5
	)
	var want []string // newest first
	shards := map[int]bool{}
	for i := range n {
		id := fmt.Sprintf("evt-%03d", i)
		at := base.Add(time.Duration(i) * time.Millisecond)
		if i%4 == 0 { // created by the dispatcher's Apply
			if _, err := s.Apply(t.Context(), id, status.Update{Status: status.Queued, At: at, Event: statustest.NewEvent(id)}); err != nil {
				t.Fatalf("Apply(%s): %v", id, err)
			}
		} else if _, err := s.Create(t.Context(), statustest.NewRecord(id, at)); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
		want = append(want, id)
		shards[firestorestatus.ShardOf(id)] = true
	}
	slices.Reverse(want)
	if len(shards) != firestorestatus.Shards {
		t.Fatalf("the ids fall in %d shards, want all %d", len(shards), firestorestatus.Shards)
	}

	var (
		got         []string
		before      time.Time
		mixedPages  int
		total, full int
	)
	for {
		page, err := s.List(t.Context(), status.Query{Limit: pageSize, Before: before})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page) == 0 {
			break
		}
		if total++; total > n {
			t.Fatal("paging does not end")
		}
		if len(page) == pageSize {
			full++
		}
		inPage := map[int]bool{}
		for _, r := range page {
			inPage[firestorestatus.ShardOf(r.EventID)] = true
		}
		if len(inPage) > 1 {
			mixedPages++
		}
		got = append(got, ids(page)...)
		before = page[len(page)-1].ReceivedAt
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids, newest first (-want +got):\n%s", diff)
	}
	if wantFull := n / pageSize; full != wantFull {
		t.Errorf("%d full pages, want %d", full, wantFull)
	}
	if mixedPages == 0 {
		t.Error("no page mixed records of two shards: the test does not exercise the merge")
	}

	for _, id := range []string{"evt-000", "evt-001"} { // by Apply, by Create
		snap, err := raw.Collection(coll).Doc(firestorestatus.DocID(id)).Get(t.Context())
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		if v, err := snap.DataAt("shard"); err != nil || v != int64(firestorestatus.ShardOf(id)) {
			t.Errorf("%s: shard = %v, %v; want %d", id, v, err, firestorestatus.ShardOf(id))
		}
	}
}

// TestListSkewedShards pages through records most of which sit in one
// shard, newest first, with a few newer and older ones elsewhere: List
// must read on in the full shard, round after round, and still interleave
// the others where they belong.
func TestListSkewedShards(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 0)
	const hot = 3
	var inHot, elsewhere []string
	for i := 0; len(inHot) < 40 || len(elsewhere) < 6; i++ {
		id := fmt.Sprintf("skew-%d", i)
		if firestorestatus.ShardOf(id) == hot {
			if len(inHot) < 40 {
				inHot = append(inHot, id)
			}
		} else if len(elsewhere) < 6 {
			elsewhere = append(elsewhere, id)
		}
	}
	// Received order, oldest first: 2 elsewhere, 20 hot, 2 elsewhere, 20 hot, 2 elsewhere.
	order := slices.Concat(elsewhere[:2], inHot[:20], elsewhere[2:4], inHot[20:], elsewhere[4:])
	for i, id := range order {
		if _, err := s.Create(t.Context(), statustest.NewRecord(id, base.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	want := slices.Clone(order)
	slices.Reverse(want)
	for _, pageSize := range []int{1, 7, 25, 100} {
		t.Run(fmt.Sprintf("page %d", pageSize), func(t *testing.T) {
			t.Parallel()
			var (
				got    []string
				before time.Time
			)
			for range len(want) + 1 {
				page, err := s.List(t.Context(), status.Query{Limit: pageSize, Before: before})
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if len(page) == 0 {
					break
				}
				if len(page) > pageSize {
					t.Fatalf("page of %d records, limit %d", len(page), pageSize)
				}
				got = append(got, ids(page)...)
				before = page[len(page)-1].ReceivedAt
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("paged ids, newest first (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListTies checks that records received in the same microsecond come
// in event id order, descending, as in the embedded engine, even when
// Firestore's order (document id) in their shard differs.
func TestListTies(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 0)
	var all []string
	for i := 0; len(all) < 12; i++ {
		id := fmt.Sprintf("tie-%02d", i)
		if firestorestatus.ShardOf(id) == 5 || i%7 == 0 {
			all = append(all, id)
			if _, err := s.Create(t.Context(), statustest.NewRecord(id, base)); err != nil {
				t.Fatalf("Create(%s): %v", id, err)
			}
		}
	}
	slices.Sort(all)
	slices.Reverse(all)
	got, err := s.List(t.Context(), status.Query{Limit: 4})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff(all[:4], ids(got)); diff != "" {
		t.Errorf("List(limit 4) of 12 records received at once (-want +got):\n%s", diff)
	}
}

// TestAddShards checks records written before shards existed (no shard
// field): List does not see them, Apply gives one its shard, AddShards the
// rest of a status, once.
func TestAddShards(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	legacy := []string{"old-a", "old-b", "old-c", "old-d", "old-e"}
	for i, id := range legacy {
		if _, err := s.Create(t.Context(), statustest.NewRecord(id, base.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatalf("Create: %v", err)
		}
		ref := raw.Collection(coll).Doc(firestorestatus.DocID(id))
		if _, err := ref.Update(t.Context(), []firestore.Update{{Path: "shard", Value: firestore.Delete}}); err != nil {
			t.Fatalf("drop shard of %s: %v", id, err)
		}
	}
	list := func(q status.Query) []string {
		t.Helper()
		got, err := s.List(t.Context(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		return ids(got)
	}
	if got := list(status.Query{}); len(got) != 0 {
		t.Fatalf("List without shards = %v, want none", got)
	}
	if _, err := s.Get(t.Context(), "old-a"); err != nil {
		t.Errorf("Get of a record without a shard: %v", err)
	}

	if _, err := s.Apply(t.Context(), "old-a", status.Update{Status: status.Delivering}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff([]string{"old-a"}, list(status.Query{})); diff != "" {
		t.Errorf("List after Apply (-want +got):\n%s", diff)
	}

	n, err := s.AddShards(t.Context(), status.Queued)
	if err != nil || n != 4 {
		t.Errorf("AddShards(queued) = %d, %v; want 4, nil", n, err)
	}
	if n, err := s.AddShards(t.Context(), status.Queued); err != nil || n != 0 {
		t.Errorf("AddShards(queued) again = %d, %v; want 0, nil", n, err)
	}
	if diff := cmp.Diff([]string{"old-e", "old-d", "old-c", "old-b"}, list(status.Query{Status: status.Queued})); diff != "" {
		t.Errorf("List(queued) after AddShards (-want +got):\n%s", diff)
	}
	if got := list(status.Query{}); len(got) != len(legacy) {
		t.Errorf("List after AddShards = %v, want all %d", got, len(legacy))
	}
	if _, err := s.AddShards(t.Context(), "lost"); err == nil {
		t.Error("AddShards of an unknown status succeeded, want an error")
	}
}

// TestListShardsOfSixteen is the upgrade from 16 shards: documents written
// then hold h mod 16, which for half of them (ShardOf >= 16 now) is not
// ShardOf. List must still find them, in order, with and without a status;
// AddShards must leave them (they have a shard); their next Apply must move
// them to ShardOf.
func TestListShardsOfSixteen(t *testing.T) {
	t.Parallel()
	s, coll := newStore(t, 0)
	raw := rawClient(t)
	shardAt := func(id string) any {
		t.Helper()
		snap, err := raw.Collection(coll).Doc(firestorestatus.DocID(id)).Get(t.Context())
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		v, err := snap.DataAt("shard")
		if err != nil {
			t.Fatalf("%s: shard: %v", id, err)
		}
		return v
	}
	var all, moved []string // received order, oldest first
	for i, same := 0, 0; len(moved) < 5 || same < 3; i++ {
		if i == 1000 {
			t.Fatalf("1,000 ids give %d with ShardOf >= 16 and %d below, want 5 and 3 (Shards = %d)", len(moved), same, firestorestatus.Shards)
		}
		id := fmt.Sprintf("up-%d", i)
		shard := firestorestatus.ShardOf(id)
		if shard < 16 && same == 3 || shard >= 16 && len(moved) == 5 {
			continue
		}
		if _, err := s.Create(t.Context(), statustest.NewRecord(id, base.Add(time.Duration(len(all))*time.Millisecond))); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
		all = append(all, id)
		if shard < 16 {
			same++
			continue
		}
		moved = append(moved, id)
		// What the 16-shard binary wrote: h mod 16 = (h mod 32) mod 16.
		ref := raw.Collection(coll).Doc(firestorestatus.DocID(id))
		if _, err := ref.Update(t.Context(), []firestore.Update{{Path: "shard", Value: shard % 16}}); err != nil {
			t.Fatalf("set the 16-shard value of %s: %v", id, err)
		}
		if v := shardAt(id); v != int64(shard-16) {
			t.Fatalf("%s: stored shard %v, want %d (ShardOf %d)", id, v, shard-16, shard)
		}
	}
	want := slices.Clone(all)
	slices.Reverse(want)
	for _, q := range []status.Query{{}, {Status: status.Queued}} {
		var (
			got    []string
			before time.Time
		)
		for range len(want) + 1 { // by 2: several rounds and pages
			q.Limit, q.Before = 2, before
			page, err := s.List(t.Context(), q)
			if err != nil {
				t.Fatalf("List(%+v): %v", q, err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, ids(page)...)
			before = page[len(page)-1].ReceivedAt
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List(status %q) paged by 2, 16-shard values (-want +got):\n%s", q.Status, diff)
		}
	}

	if n, err := s.AddShards(t.Context(), status.Queued); err != nil || n != 0 {
		t.Errorf("AddShards(queued) = %d, %v; want 0, nil (every record has a shard)", n, err)
	}
	if v, want := shardAt(moved[0]), int64(firestorestatus.ShardOf(moved[0])-16); v != want {
		t.Errorf("%s after AddShards: shard %v, want %d kept", moved[0], v, want)
	}

	if _, err := s.Apply(t.Context(), moved[0], status.Update{Status: status.Delivering}); err != nil {
		t.Fatalf("Apply(%s): %v", moved[0], err)
	}
	if v, want := shardAt(moved[0]), int64(firestorestatus.ShardOf(moved[0])); v != want {
		t.Errorf("%s after Apply: shard %v, want ShardOf %d", moved[0], v, want)
	}
	got, err := s.List(t.Context(), status.Query{Status: status.Delivering})
	if err != nil {
		t.Fatalf("List(delivering): %v", err)
	}
	if diff := cmp.Diff([]string{moved[0]}, ids(got)); diff != "" {
		t.Errorf("List(delivering) after Apply (-want +got):\n%s", diff)
	}
	if got, err := s.List(t.Context(), status.Query{Limit: 100}); err != nil || len(got) != len(all) {
		t.Errorf("List after Apply = %d records, %v; want all %d", len(got), err, len(all))
	}
}

// base is the received time of a test's first record.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func ids(rs []status.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	return out
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
