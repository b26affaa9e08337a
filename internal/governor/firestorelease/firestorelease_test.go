package firestorelease_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/governor"
	"eventrelay/internal/governor/firestorelease"
	"eventrelay/internal/queue"
	"eventrelay/internal/testutil"
)

const testProject = "eventrelay-test"

// newLease returns a lease on a fresh document of the emulator; every call
// with the same queue name shares the document.
func newLease(tb testing.TB, queueName string) *firestorelease.Lease {
	tb.Helper()
	testutil.Emulator(tb, testutil.FirestoreEmulatorEnv)
	l, err := firestorelease.New(tb.Context(), firestorelease.Options{Project: testProject, Collection: "governor-test", Queue: queueName})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "q-" + rand.Text()
	a, b := newLease(t, name), newLease(t, name)
	now := time.Now().UTC().Truncate(time.Microsecond)
	ttl := 30 * time.Second

	st, held, err := a.Acquire(ctx, "a", now, ttl)
	if err != nil || !held || st != (governor.State{}) {
		t.Fatalf("first Acquire = %+v, %t, %v; want held with no state", st, held, err)
	}
	if _, held, err := b.Acquire(ctx, "b", now.Add(time.Second), ttl); err != nil || held {
		t.Fatalf("b's Acquire while a holds = %t, %v; want not held", held, err)
	}
	want := governor.State{Ceiling: 20, LastRate: 3.2, HoldUntil: now.Add(time.Minute)}
	if err := a.Save(ctx, "a", want); err != nil {
		t.Fatalf("a's Save: %v", err)
	}
	if err := b.Save(ctx, "b", governor.State{Ceiling: 1}); !errors.Is(err, firestorelease.ErrNotHolder) {
		t.Errorf("b's Save = %v, want ErrNotHolder", err)
	}
	// a renews and keeps its state.
	if st, held, err := a.Acquire(ctx, "a", now.Add(10*time.Second), ttl); err != nil || !held || !sameState(st, want) {
		t.Errorf("a's renewal = %+v, %t, %v; want held with %+v", st, held, err, want)
	}
	// Until the renewed lease expires, b waits; after, b takes the state over.
	if _, held, _ := b.Acquire(ctx, "b", now.Add(39*time.Second), ttl); held {
		t.Error("b took a lease a had renewed")
	}
	st, held, err = b.Acquire(ctx, "b", now.Add(41*time.Second), ttl)
	if err != nil || !held || !sameState(st, want) {
		t.Errorf("b's Acquire after expiry = %+v, %t, %v; want held with a's state", st, held, err)
	}
	// b releases: a takes over at once, state kept.
	if err := b.Release(ctx, "b"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := a.Release(ctx, "a"); err != nil {
		t.Errorf("Release by a non-holder = %v, want nil (no-op)", err)
	}
	if st, held, err := a.Acquire(ctx, "a", now.Add(42*time.Second), ttl); err != nil || !held || !sameState(st, want) {
		t.Errorf("a's Acquire after b's release = %+v, %t, %v", st, held, err)
	}
}

// TestLeaseIsPerQueue takes the leases of two regions' queues, which share
// a short name (ADR 0006): each is held at once by its own region, while a
// second holder of the same full name still waits.
func TestLeaseIsPerQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	short := "q-" + rand.Text()
	primary := "projects/" + testProject + "/locations/us-central1/queues/" + short
	secondary := "projects/" + testProject + "/locations/europe-west1/queues/" + short
	now := time.Now()
	ttl := 30 * time.Second

	a, b := newLease(t, primary), newLease(t, secondary)
	if _, held, err := a.Acquire(ctx, "a", now, ttl); err != nil || !held {
		t.Fatalf("primary's Acquire = %t, %v; want held", held, err)
	}
	if _, held, err := b.Acquire(ctx, "b", now, ttl); err != nil || !held {
		t.Errorf("secondary's Acquire while the primary's lease runs = %t, %v; want held: one lease per queue", held, err)
	}
	// State saved for one region's queue is not the other's.
	if err := a.Save(ctx, "a", governor.State{Ceiling: 5, LastRate: 2}); err != nil {
		t.Fatalf("primary's Save: %v", err)
	}
	if st, _, err := b.Acquire(ctx, "b", now.Add(time.Second), ttl); err != nil || st != (governor.State{}) {
		t.Errorf("secondary's state = %+v, %v; want none (the primary's is its own)", st, err)
	}
	// Another instance of the primary region still waits for a's lease.
	if _, held, err := newLease(t, primary).Acquire(ctx, "a2", now.Add(time.Second), ttl); err != nil || held {
		t.Errorf("a second holder of the primary's lease = %t, %v; want not held", held, err)
	}

	// The document is found by the escaped name and carries the name.
	client, err := firestore.NewClient(ctx, testProject)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	id, err := firestorelease.DocumentID(primary)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := client.Collection("governor-test").Doc(id).Get(ctx)
	if err != nil {
		t.Fatalf("read the primary's lease document %s: %v", id, err)
	}
	if got, _ := snap.DataAt("queue"); got != primary {
		t.Errorf("the document's queue = %v, want %s", got, primary)
	}
	if got, _ := snap.DataAt("holder"); got != "a" {
		t.Errorf("the document's holder = %v, want a", got)
	}
}

func TestDocumentID(t *testing.T) {
	t.Parallel()
	const name = "projects/p/locations/us-central1/queues/events"
	id, err := firestorelease.DocumentID(name)
	if err != nil {
		t.Fatal(err)
	}
	if want := "projects%2Fp%2Flocations%2Fus-central1%2Fqueues%2Fevents"; id != want {
		t.Errorf("DocumentID = %s, want %s", id, want)
	}
	if back, err := url.PathUnescape(id); err != nil || back != name {
		t.Errorf("PathUnescape(%s) = %q, %v; want %s", id, back, err, name)
	}
	// Names that differ only where escaping happens keep distinct IDs.
	ids := map[string]string{}
	for _, n := range []string{
		name,
		"projects/p/locations/europe-west1/queues/events",
		"events",
		"projects%2Fp%2Flocations%2Fus-central1%2Fqueues%2Fevents",
		"projects/example.com:p/locations/us-central1/queues/events",
	} {
		id, err := firestorelease.DocumentID(n)
		if err != nil {
			t.Errorf("DocumentID(%q): %v", n, err)
			continue
		}
		if strings.Contains(id, "/") {
			t.Errorf("DocumentID(%q) = %s contains '/'", n, id)
		}
		if other, ok := ids[id]; ok {
			t.Errorf("DocumentID(%q) = DocumentID(%q) = %s", n, other, id)
		}
		ids[id] = n
	}
	for _, bad := range []string{"", ".", "..", "__events__", strings.Repeat("q", 1501), strings.Repeat("/", 501)} {
		if id, err := firestorelease.DocumentID(bad); err == nil {
			t.Errorf("DocumentID(%.20q) = %.20s, want an error", bad, id)
		}
	}
}

func sameState(a, b governor.State) bool {
	return a.Ceiling == b.Ceiling && a.LastRate == b.LastRate && a.HoldUntil.Equal(b.HoldUntil)
}

// TestLeaseHasOneHolder races eight instances for a free lease, round after
// round: exactly one holds it each time.
func TestLeaseHasOneHolder(t *testing.T) {
	t.Parallel()
	name := "q-" + rand.Text()
	leases := make([]*firestorelease.Lease, 8)
	for i := range leases {
		leases[i] = newLease(t, name)
	}
	base := time.Now()
	for round := range 3 {
		now := base.Add(time.Duration(round) * time.Minute) // the previous round's lease has expired
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			holds []int
		)
		for i, l := range leases {
			wg.Go(func() {
				_, held, err := l.Acquire(context.Background(), string(rune('a'+i)), now, 30*time.Second)
				if err != nil {
					t.Errorf("Acquire %d: %v", i, err)
					return
				}
				if held {
					mu.Lock()
					holds = append(holds, i)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(holds) != 1 {
			t.Errorf("round %d: %d holders %v, want exactly 1", round, len(holds), holds)
		}
	}
}

// fakeQueue is an in-memory queue.Controller shared by the governors.
type fakeQueue struct {
	mu   sync.Mutex
	rate float64
	sets []float64
}

func (f *fakeQueue) Control(context.Context) (queue.Control, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return queue.Control{Rate: f.rate}, nil
}

func (f *fakeQueue) SetRate(_ context.Context, r float64, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = r
	f.sets = append(f.sets, r)
	return nil
}

func (f *fakeQueue) Pause(context.Context, string) error  { return errors.New("not used") }
func (f *fakeQueue) Resume(context.Context, string) error { return errors.New("not used") }

// TestGovernorsShareOneLease runs three governors (three dispatcher
// instances) over one queue, each seeing a storm: only the lease holder
// slows the queue, once per window, and a new holder after a release goes
// on from the stored state instead of standing down.
func TestGovernorsShareOneLease(t *testing.T) {
	t.Parallel()
	name := "q-" + rand.Text()
	q := &fakeQueue{rate: 20}
	window := 200 * time.Millisecond
	var govs []*governor.Governor
	for i := range 3 {
		g, err := governor.New(context.Background(), governor.Options{
			Control: q, Partial: true, Lease: newLease(t, name), Holder: "instance-" + string(rune('a'+i)),
			Config: governor.Config{Window: window, MinAttempts: 5},
		})
		if err != nil {
			t.Fatal(err)
		}
		govs = append(govs, g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range govs {
		wg.Go(func() { _ = g.Run(ctx) })
	}
	// Every instance sees its share of a storm: 3 in 4 calls rate limited.
	// At no moment may two of them claim to lead.
	maxLeaders := 0
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leaders := 0
		for _, g := range govs {
			for range 3 {
				g.Observe("rate_limited", time.Second)
			}
			g.Observe("delivered", 0)
			if g.Snapshot().Leader {
				leaders++
			}
		}
		maxLeaders = max(maxLeaders, leaders)
		q.mu.Lock()
		n := len(q.sets)
		q.mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	q.mu.Lock()
	sets := append([]float64(nil), q.sets...)
	q.mu.Unlock()
	if len(sets) < 2 {
		t.Fatalf("SetRate calls = %v, want the storm to slow the queue twice", sets)
	}
	// 20 × 1/4 × 0.8 = 4, then 4 × 1/4 × 0.8 = 0.8 → the floor 1: each slow
	// from the rate the previous one set, as one governor would.
	if diff := cmp.Diff([]float64{4, 1}, sets[:2]); diff != "" {
		t.Errorf("SetRate calls (-want +got):\n%s", diff)
	}
	if maxLeaders > 1 {
		t.Errorf("%d governors claimed to lead at once, want at most 1", maxLeaders)
	}
	if maxLeaders == 0 {
		t.Error("no governor ever led")
	}
	for _, g := range govs {
		s := g.Snapshot()
		if s.Leader {
			t.Error("a stopped governor still claims to lead")
		}
		if s.Acted.Action == governor.ActionStandDown {
			t.Errorf("a governor stood down for another instance's change: %+v", s.Acted)
		}
	}
}
