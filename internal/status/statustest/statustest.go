// Package statustest is the conformance suite of the status.Store port. Every
// engine's tests call Run, so that the embedded and the GCP engines cannot
// drift apart:
//
//	func TestConformance(t *testing.T) {
//		statustest.Run(t, func(t *testing.T) status.Store { return newStore(t) })
//	}
//
// newStore must return an empty store and close it in t.Cleanup. Times are
// compared to the millisecond, the coarsest precision an engine may keep.
package statustest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"eventrelay/internal/event"
	"eventrelay/internal/status"
)

// base is the received time of the first record in a test; the suite picks
// its own times so that ordering does not depend on the clock.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// cmpOpts compare records the way the port promises to keep them: times to
// the millisecond (whatever their location), empty and nil slices alike.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool {
		return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
	}),
	cmpopts.EquateEmpty(),
}

// Run runs the conformance suite against the engine newStore builds.
func Run(t *testing.T, newStore func(t *testing.T) status.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) status.Store)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateTwice", testCreateTwice},
		{"ConcurrentCreate", testConcurrentCreate},
		{"GetUnknown", testGetUnknown},
		{"Transitions", testTransitions},
		{"TerminalRefusesEverything", testTerminalRefusesEverything},
		{"ApplySetsFields", testApplySetsFields},
		{"AttemptsInOrder", testAttemptsInOrder},
		{"ApplyMissingCreates", testApplyMissingCreates},
		{"ApplyMissingWithoutEvent", testApplyMissingWithoutEvent},
		{"ConcurrentApply", testConcurrentApply},
		{"ConcurrentApplyMissing", testConcurrentApplyMissing},
		{"ConcurrentCreateAndApply", testConcurrentCreateAndApply},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"ListPagingMany", testListPagingMany},
		{"ListDefaultLimit", testListDefaultLimit},
		{"Counts", testCounts},
		{"Replay", testReplay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

// NewEvent returns a valid event with the given id, timestamp with
// nanoseconds.
func NewEvent(id string) event.Event {
	return event.Event{
		ID:        id,
		Name:      "test event",
		Body:      "test body",
		Timestamp: time.Date(2026, 3, 14, 15, 0, 0, 123456789, time.UTC),
	}
}

// NewRecord returns a record ready for Create, received at received.
func NewRecord(id string, received time.Time) status.Record {
	return status.Record{
		EventID:    id,
		Status:     status.Queued,
		Event:      NewEvent(id),
		ReceivedAt: received,
		UpdatedAt:  received,
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

func mustCreate(tb testing.TB, s status.Store, r status.Record) {
	tb.Helper()
	created, err := s.Create(tb.Context(), r)
	if err != nil {
		tb.Fatalf("Create(%s): %v", r.EventID, err)
	}
	if !created {
		tb.Fatalf("Create(%s) = false, want true", r.EventID)
	}
}

func mustGet(tb testing.TB, s status.Store, id string) status.Record {
	tb.Helper()
	r, err := s.Get(tb.Context(), id)
	if err != nil {
		tb.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func mustApply(tb testing.TB, s status.Store, id string, u status.Update) status.Record {
	tb.Helper()
	r, err := s.Apply(tb.Context(), id, u)
	if err != nil {
		tb.Fatalf("Apply(%s, %s): %v", id, u.Status, err)
	}
	return r
}

func attempt(n int, at time.Time, o status.Outcome) *status.Attempt {
	return &status.Attempt{
		Number:     n,
		At:         at,
		Outcome:    o,
		HTTPStatus: 503,
		Error:      fmt.Sprintf("attempt %d: target unavailable", n),
		Duration:   time.Duration(n)*time.Millisecond + 250*time.Microsecond,
		TaskName:   "ev-0123abcd",
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

func testCreateGetRoundTrip(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	want := NewRecord("round-trip", base)
	want.UpdatedAt = base.Add(1500 * time.Microsecond)
	want.Reason = "a reason"
	// A received time in another zone must read back as the same instant.
	in := want
	in.ReceivedAt = base.In(time.FixedZone("CET", 3600))
	mustCreate(t, s, in)

	got := mustGet(t, s, "round-trip")
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Get after Create mismatch (-want +got):\n%s", diff)
	}
	if got.Event.Timestamp.Location() != time.UTC {
		t.Errorf("Event.Timestamp location = %v, want UTC", got.Event.Timestamp.Location())
	}
	if !got.Event.Timestamp.Truncate(time.Millisecond).Equal(want.Event.Timestamp.Truncate(time.Millisecond)) {
		t.Errorf("Event.Timestamp = %v, want %v", got.Event.Timestamp, want.Event.Timestamp)
	}

	// Create always stores a queued record, whatever status it is given.
	other := NewRecord("created-queued", base)
	other.Status = status.Delivered
	mustCreate(t, s, other)
	if got := mustGet(t, s, "created-queued"); got.Status != status.Queued {
		t.Errorf("Create with status %s stored %s, want %s", other.Status, got.Status, status.Queued)
	}
}

func testCreateTwice(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	first := NewRecord("twice", base)
	mustCreate(t, s, first)
	mustApply(t, s, "twice", status.Update{Status: status.Delivering, At: base.Add(time.Second), Attempt: attempt(1, base.Add(time.Second), status.OutcomeRetryable)})
	before := mustGet(t, s, "twice")

	second := NewRecord("twice", base.Add(time.Hour))
	second.TraceID = "another-trace"
	second.Event.Body = "another body"
	created, err := s.Create(t.Context(), second)
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if created {
		t.Errorf("second Create = true, want false")
	}
	if diff := cmp.Diff(before, mustGet(t, s, "twice"), cmpOpts); diff != "" {
		t.Errorf("second Create changed the record (-before +after):\n%s", diff)
	}
}

func testConcurrentCreate(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	const n = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			ok, err := s.Create(t.Context(), NewRecord("racing", base.Add(time.Duration(i)*time.Second)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				created++
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Create: %v", err)
	}
	if created != 1 {
		t.Errorf("%d of %d concurrent Creates reported created, want exactly 1", created, n)
	}
	mustGet(t, s, "racing")
}

func testGetUnknown(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	mustCreate(t, s, NewRecord("known", base))
	_, err := s.Get(t.Context(), "unknown")
	if !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}
}

// reach creates a record with id and moves it to st.
func reach(tb testing.TB, s status.Store, id string, st status.Status) status.Record {
	tb.Helper()
	mustCreate(tb, s, NewRecord(id, base))
	if st == status.Queued {
		return mustGet(tb, s, id)
	}
	return mustApply(tb, s, id, status.Update{
		Status:  st,
		At:      base.Add(time.Second),
		Attempt: attempt(1, base.Add(time.Second), status.OutcomeRetryable),
		Reason:  "reached " + string(st),
	})
}

func testTransitions(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	type pair struct{ from, to status.Status }
	var cases []pair
	for _, from := range status.All {
		for _, to := range status.All {
			cases = append(cases, pair{from, to})
		}
	}
	allowed := 0
	for _, tc := range cases {
		if status.CanMove(tc.from, tc.to) {
			allowed++
		}
		name := string(tc.from) + "_to_" + string(tc.to)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			before := reach(t, s, name, tc.from)
			at := base.Add(time.Minute)
			got, err := s.Apply(t.Context(), name, status.Update{
				Status:  tc.to,
				At:      at,
				Attempt: attempt(2, at, status.OutcomeRetryable),
				Reason:  "moved",
			})
			if status.CanMove(tc.from, tc.to) {
				if err != nil {
					t.Fatalf("Apply %s -> %s: %v, want allowed", tc.from, tc.to, err)
				}
				if got.Status != tc.to {
					t.Errorf("Apply returned status %s, want %s", got.Status, tc.to)
				}
				if stored := mustGet(t, s, name); stored.Status != tc.to || len(stored.Attempts) != len(before.Attempts)+1 {
					t.Errorf("stored status %s with %d attempts, want %s with %d",
						stored.Status, len(stored.Attempts), tc.to, len(before.Attempts)+1)
				}
				return
			}
			if !errors.Is(err, status.ErrConflict) {
				t.Fatalf("Apply %s -> %s error = %v, want ErrConflict", tc.from, tc.to, err)
			}
			var te *status.TransitionError
			if !errors.As(err, &te) {
				t.Fatalf("Apply %s -> %s error %T is not a *TransitionError", tc.from, tc.to, err)
			}
			if te.EventID != name || te.From != tc.from || te.To != tc.to {
				t.Errorf("TransitionError = %+v, want {%s %s %s}", *te, name, tc.from, tc.to)
			}
			if diff := cmp.Diff(before, mustGet(t, s, name), cmpOpts); diff != "" {
				t.Errorf("refused Apply changed the record (-before +after):\n%s", diff)
			}
		})
	}
	// Guard the table itself: the port allows some moves and refuses others.
	if allowed == 0 || allowed == len(cases) {
		t.Errorf("CanMove allowed %d of %d pairs; the table tests nothing", allowed, len(cases))
	}
}

func testTerminalRefusesEverything(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	for _, from := range status.All {
		if !from.Terminal() {
			continue
		}
		before := reach(t, s, "terminal-"+string(from), from)
		for _, to := range status.All {
			_, err := s.Apply(t.Context(), before.EventID, status.Update{
				Status:  to,
				At:      base.Add(time.Hour),
				Attempt: attempt(9, base.Add(time.Hour), status.OutcomeSkipped),
				Reason:  "must not stick",
			})
			if !errors.Is(err, status.ErrConflict) {
				t.Errorf("Apply %s -> %s error = %v, want ErrConflict", from, to, err)
			}
		}
		if diff := cmp.Diff(before, mustGet(t, s, before.EventID), cmpOpts); diff != "" {
			t.Errorf("terminal %s record changed (-before +after):\n%s", from, diff)
		}
	}
}

func testApplySetsFields(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	mustCreate(t, s, NewRecord("fields", base))

	t1 := base.Add(2 * time.Second)
	got := mustApply(t, s, "fields", status.Update{Status: status.Retrying, At: t1, Reason: "target 503"})
	if got.Reason != "target 503" || !got.UpdatedAt.Truncate(time.Millisecond).Equal(t1.Truncate(time.Millisecond)) {
		t.Errorf("after retrying: reason %q updated %v, want %q %v", got.Reason, got.UpdatedAt, "target 503", t1)
	}
	if got.DeliveredAt != nil {
		t.Errorf("DeliveredAt = %v before delivery, want nil", got.DeliveredAt)
	}

	t2 := base.Add(5 * time.Second)
	got = mustApply(t, s, "fields", status.Update{Status: status.Delivered, At: t2, Attempt: attempt(2, t2, status.OutcomeDelivered)})
	want := NewRecord("fields", base)
	want.Status = status.Delivered
	want.UpdatedAt = t2
	want.DeliveredAt = &t2
	want.Reason = "target 503" // an empty Reason keeps the old one
	want.Attempts = []status.Attempt{*attempt(2, t2, status.OutcomeDelivered)}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Apply result mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, mustGet(t, s, "fields"), cmpOpts); diff != "" {
		t.Errorf("stored record mismatch (-want +got):\n%s", diff)
	}
}

func testAttemptsInOrder(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	mustCreate(t, s, NewRecord("ordered", base))
	var want []status.Attempt
	for n := 1; n <= 6; n++ {
		at := base.Add(time.Duration(n) * time.Second)
		a := attempt(n, at, status.OutcomeRateLimited)
		want = append(want, *a)
		mustApply(t, s, "ordered", status.Update{Status: status.Retrying, At: at, Attempt: a})
	}
	if diff := cmp.Diff(want, mustGet(t, s, "ordered").Attempts, cmpOpts); diff != "" {
		t.Errorf("attempts mismatch (-want +got):\n%s", diff)
	}
}

func testApplyMissingCreates(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	at := base.Add(time.Minute)
	ev := NewEvent("missing")
	got := mustApply(t, s, "missing", status.Update{
		Status:  status.Delivering,
		At:      at,
		Attempt: attempt(1, at, status.OutcomeRetryable),
		Event:   ev,
		TraceID: "trace-from-dispatcher",
	})
	stored := mustGet(t, s, "missing")
	if diff := cmp.Diff(got, stored, cmpOpts); diff != "" {
		t.Errorf("Apply result differs from the stored record (-apply +get):\n%s", diff)
	}
	if stored.Status != status.Delivering || stored.TraceID != "trace-from-dispatcher" || len(stored.Attempts) != 1 {
		t.Errorf("created record = status %s trace %q %d attempts, want delivering, trace-from-dispatcher, 1",
			stored.Status, stored.TraceID, len(stored.Attempts))
	}
	if diff := cmp.Diff(ev, stored.Event, cmpOpts); diff != "" {
		t.Errorf("created record's event mismatch (-want +got):\n%s", diff)
	}
	if stored.ReceivedAt.IsZero() {
		t.Errorf("created record has no ReceivedAt")
	}
	if created, err := s.Create(t.Context(), NewRecord("missing", base)); err != nil || created {
		t.Errorf("Create after Apply created it = %v, %v; want false, nil", created, err)
	}
}

func testApplyMissingWithoutEvent(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	_, err := s.Apply(t.Context(), "nothing", status.Update{Status: status.Delivering, At: base})
	if !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Apply on a missing record without an event: error = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(t.Context(), "nothing"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Get after the refused Apply: error = %v, want ErrNotFound", err)
	}
}

// applyConcurrently runs n Applies of attempt i+1 to id at once and returns
// the attempt numbers stored.
func applyConcurrently(tb testing.TB, s status.Store, id string, n int, ev event.Event) []int {
	tb.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			at := base.Add(time.Duration(i+1) * time.Millisecond)
			_, err := s.Apply(tb.Context(), id, status.Update{
				Status:  status.Retrying,
				At:      at,
				Attempt: attempt(i+1, at, status.OutcomeRetryable),
				Event:   ev,
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("concurrent Apply: %v", err)
	}
	var numbers []int
	for _, a := range mustGet(tb, s, id).Attempts {
		numbers = append(numbers, a.Number)
	}
	slices.Sort(numbers)
	return numbers
}

func wantNumbers(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func testConcurrentApply(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	mustCreate(t, s, NewRecord("contended", base))
	const n = 20
	if diff := cmp.Diff(wantNumbers(n), applyConcurrently(t, s, "contended", n, event.Event{})); diff != "" {
		t.Errorf("attempt numbers after %d concurrent Applies (-want +got):\n%s", n, diff)
	}
}

func testConcurrentApplyMissing(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	const n = 10
	if diff := cmp.Diff(wantNumbers(n), applyConcurrently(t, s, "contended-missing", n, NewEvent("contended-missing"))); diff != "" {
		t.Errorf("attempt numbers after %d concurrent Applies on a missing record (-want +got):\n%s", n, diff)
	}
}

// testConcurrentCreateAndApply races ingest's Create with the dispatcher's
// Apply on a record neither has created yet: no call fails, at most one
// Create reports created, and every attempt is kept.
func testConcurrentCreateAndApply(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	const (
		id = "create-and-apply"
		n  = 5
	)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		errs    []error
	)
	for range n {
		wg.Go(func() {
			ok, err := s.Create(t.Context(), NewRecord(id, base))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				created++
			}
		})
	}
	numbers := applyConcurrently(t, s, id, n, NewEvent(id))
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Create: %v", err)
	}
	if created > 1 {
		t.Errorf("%d Creates reported created, want at most 1", created)
	}
	if diff := cmp.Diff(wantNumbers(n), numbers); diff != "" {
		t.Errorf("attempt numbers after Creates racing Applies (-want +got):\n%s", diff)
	}
}

// seed creates n records received one millisecond apart (record i at
// base+i ms, id "rec-%03d"), every third one moved to status st.
func seed(tb testing.TB, s status.Store, n int, st status.Status) (all, moved []string) {
	tb.Helper()
	for i := range n {
		id := fmt.Sprintf("rec-%03d", i)
		mustCreate(tb, s, NewRecord(id, base.Add(time.Duration(i)*time.Millisecond)))
		if i%3 == 0 {
			mustApply(tb, s, id, status.Update{Status: st, At: base.Add(time.Hour)})
			moved = append(moved, id)
		}
		all = append(all, id)
	}
	slices.Reverse(all)
	slices.Reverse(moved)
	return all, moved
}

func ids(rs []status.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.EventID)
	}
	return out
}

func testList(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	all, delivered := seed(t, s, 10, status.Delivered)
	var queued []string
	for _, id := range all {
		if !slices.Contains(delivered, id) {
			queued = append(queued, id)
		}
	}
	cases := []struct {
		name string
		q    status.Query
		want []string
	}{
		{name: "any status", q: status.Query{}, want: all},
		{name: "delivered", q: status.Query{Status: status.Delivered}, want: delivered},
		{name: "queued", q: status.Query{Status: status.Queued}, want: queued},
		{name: "none in status", q: status.Query{Status: status.Failed}, want: nil},
		{name: "limit", q: status.Query{Limit: 3}, want: all[:3]},
		{name: "limit by status", q: status.Query{Status: status.Queued, Limit: 2}, want: queued[:2]},
		{name: "before", q: status.Query{Before: base.Add(5 * time.Millisecond)}, want: all[5:]},
		{name: "before by status", q: status.Query{Status: status.Delivered, Before: base.Add(6 * time.Millisecond)}, want: []string{"rec-003", "rec-000"}},
		{name: "before everything", q: status.Query{Before: base}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.List(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("List(%+v): %v", tc.q, err)
			}
			if diff := cmp.Diff(tc.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(%+v) ids (-want +got):\n%s", tc.q, diff)
			}
		})
	}

	// Listed records are whole records.
	got, err := s.List(t.Context(), status.Query{Limit: 1})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("List(limit 1) returned %d records", len(got))
	}
	if diff := cmp.Diff(mustGet(t, s, got[0].EventID), got[0], cmpOpts); diff != "" {
		t.Errorf("listed record differs from Get (-get +list):\n%s", diff)
	}
}

func testListPaging(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	all, _ := seed(t, s, 25, status.Delivered)
	var (
		got    []string
		before time.Time
		pages  int
	)
	for {
		page, err := s.List(t.Context(), status.Query{Limit: 10, Before: before})
		if err != nil {
			t.Fatalf("List page %d: %v", pages, err)
		}
		if len(page) == 0 {
			break
		}
		if pages++; pages > 10 {
			t.Fatalf("paging does not end: %d pages", pages)
		}
		got = append(got, ids(page)...)
		before = page[len(page)-1].ReceivedAt
	}
	if pages != 3 {
		t.Errorf("paged 25 records by 10 in %d pages, want 3", pages)
	}
	if diff := cmp.Diff(all, got); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
}

// testListPagingMany pages by 6 through 100 records, with and without a
// status: more records than an engine that splits its indexes in up to 16
// parts (firestorestatus) reads for one page, so a page is only right if
// the parts are merged newest first and Before moves every part on.
func testListPagingMany(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	all, delivered := seed(t, s, 100, status.Delivered)
	var queued []string
	for _, id := range all {
		if !slices.Contains(delivered, id) {
			queued = append(queued, id)
		}
	}
	const pageSize = 6
	cases := []struct {
		name   string
		status status.Status
		want   []string
	}{
		{name: "any status", want: all},
		{name: "delivered", status: status.Delivered, want: delivered},
		{name: "queued", status: status.Queued, want: queued},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				got    []string
				before time.Time
				pages  int
			)
			for {
				page, err := s.List(t.Context(), status.Query{Status: tc.status, Limit: pageSize, Before: before})
				if err != nil {
					t.Fatalf("List page %d: %v", pages, err)
				}
				if len(page) == 0 {
					break
				}
				if pages++; pages > len(tc.want) {
					t.Fatalf("paging does not end: %d pages", pages)
				}
				if len(page) > pageSize {
					t.Fatalf("page %d has %d records, limit %d", pages, len(page), pageSize)
				}
				for _, r := range page {
					if tc.status != "" && r.Status != tc.status {
						t.Errorf("page %d: %s is %s, want %s", pages, r.EventID, r.Status, tc.status)
					}
				}
				got = append(got, ids(page)...)
				before = page[len(page)-1].ReceivedAt
			}
			if want := (len(tc.want) + pageSize - 1) / pageSize; pages != want {
				t.Errorf("paged %d records by %d in %d pages, want %d", len(tc.want), pageSize, pages, want)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("paged ids, newest first (-want +got):\n%s", diff)
			}
		})
	}
}

func testListDefaultLimit(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	const n = 105
	for i := range n {
		mustCreate(t, s, NewRecord(fmt.Sprintf("many-%03d", i), base.Add(time.Duration(i)*time.Millisecond)))
	}
	for _, limit := range []int{0, -1} {
		got, err := s.List(t.Context(), status.Query{Limit: limit})
		if err != nil {
			t.Fatalf("List(limit %d): %v", limit, err)
		}
		if len(got) != 100 {
			t.Errorf("List(limit %d) returned %d records, want the default 100", limit, len(got))
		}
	}
}

func testCounts(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	got, err := s.Counts(t.Context())
	if err != nil {
		t.Fatalf("Counts on an empty store: %v", err)
	}
	for _, st := range status.All {
		if got[st] != 0 {
			t.Errorf("empty store: Counts[%s] = %d, want 0", st, got[st])
		}
	}

	want := map[status.Status]int64{
		status.Queued: 4, status.Delivering: 1, status.Retrying: 2,
		status.Delivered: 3, status.Failed: 1, status.DeadLettered: 1,
	}
	i := 0
	for _, st := range status.All {
		for range want[st] {
			reach(t, s, fmt.Sprintf("count-%02d", i), st)
			i++
		}
	}
	got, err = s.Counts(t.Context())
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	for _, st := range status.All {
		if got[st] != want[st] {
			t.Errorf("Counts[%s] = %d, want %d", st, got[st], want[st])
		}
	}
}

// testReplay: status.Replay reopens failed and dead-lettered records with
// their history kept and a "replayed" entry added; nothing else can be
// reopened; a reopened record moves forward as usual.
func testReplay(t *testing.T, newStore func(*testing.T) status.Store) {
	s := newStore(t)
	ctx := t.Context()
	at := base.Add(time.Hour)
	for _, from := range []status.Status{status.Failed, status.DeadLettered} {
		before := reach(t, s, "replay-"+string(from), from)
		got, err := status.Replay(ctx, s, before.EventID, at)
		if err != nil {
			t.Fatalf("Replay from %s: %v", from, err)
		}
		stored := mustGet(t, s, before.EventID)
		if diff := cmp.Diff(got, stored, cmpOpts); diff != "" {
			t.Errorf("Replay's record differs from the stored one (-returned +stored):\n%s", diff)
		}
		if stored.Status != status.Queued || stored.Replays() != 1 || len(stored.Attempts) != len(before.Attempts)+1 {
			t.Errorf("after Replay from %s: status %s, %d replays, %d attempts; want queued, 1, %d",
				from, stored.Status, stored.Replays(), len(stored.Attempts), len(before.Attempts)+1)
		}
		last := stored.Attempts[len(stored.Attempts)-1]
		if last.Outcome != status.OutcomeReplayed || last.Error != before.Reason || last.At.Sub(at).Abs() >= time.Millisecond {
			t.Errorf("replay entry = %+v, want outcome replayed remembering %q at %v", last, before.Reason, at)
		}
		if diff := cmp.Diff(before.Event, stored.Event, cmpOpts); diff != "" {
			t.Errorf("Replay changed the event (-before +after):\n%s", diff)
		}
		// The reopened record delivers like any other.
		mustApply(t, s, before.EventID, status.Update{Status: status.Delivering, At: at.Add(time.Second)})
		done := mustApply(t, s, before.EventID, status.Update{Status: status.Delivered, At: at.Add(2 * time.Second),
			Attempt: attempt(1, at.Add(2*time.Second), status.OutcomeDelivered)})
		if done.Status != status.Delivered || done.DeliveredAt == nil {
			t.Errorf("replayed record did not reach delivered: %+v", done)
		}
		// And a delivered record cannot be replayed.
		if _, err := status.Replay(ctx, s, before.EventID, at.Add(time.Minute)); !errors.Is(err, status.ErrConflict) {
			t.Errorf("Replay of a delivered record: error %v, want ErrConflict", err)
		}
	}
	for _, from := range []status.Status{status.Queued, status.Delivering, status.Retrying} {
		before := reach(t, s, "no-replay-"+string(from), from)
		if _, err := status.Replay(ctx, s, before.EventID, at); !errors.Is(err, status.ErrConflict) {
			t.Errorf("Replay from %s: error %v, want ErrConflict", from, err)
		}
		if diff := cmp.Diff(before, mustGet(t, s, before.EventID), cmpOpts); diff != "" {
			t.Errorf("refused Replay changed the %s record (-before +after):\n%s", from, diff)
		}
	}
	if _, err := status.Replay(ctx, s, "never-seen", at); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Replay of an unknown id: error %v, want ErrNotFound", err)
	}
	// Reopen is only a way back from failed or dead-lettered.
	reach(t, s, "reopen-delivered", status.Delivered)
	if _, err := s.Apply(ctx, "reopen-delivered", status.Update{Status: status.Queued, Reopen: true, At: at}); !errors.Is(err, status.ErrConflict) {
		t.Errorf("Reopen of a delivered record: error %v, want ErrConflict", err)
	}
}
