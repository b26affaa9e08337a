package devstack_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/event"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// TestEndToEndGCP runs the pipeline on the GCP engines (the Cloud Tasks and
// Firestore emulators): 1,000 events at 4x a 20/s limit are all delivered
// once with the brand, every event's Firestore document shows its attempts,
// and the target never sees more than limit + burst calls in any second.
func TestEndToEndGCP(t *testing.T) {
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	issuer := os.Getenv(testutil.CloudTasksOIDCIssuerEnv)
	if issuer == "" {
		t.Fatalf("%s is not set (scripts/emulators.sh exports it with the emulator's address)", testutil.CloudTasksOIDCIssuerEnv)
	}
	const (
		n           = 1000
		limit       = 20.0
		targetBurst = 5
	)
	// The emulator remembers queue ids and task names forever: a fresh queue
	// and collection per run.
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	stack := startStack(t, devstack.Options{
		Engine:      devstack.EngineGCP,
		TargetRate:  limit,
		TargetBurst: targetBurst,
		GCP: devstack.GCPOptions{
			Queue:         "e2e-" + suffix,
			Collection:    "e2e-" + suffix,
			TasksEndpoint: tasks,
			OIDCIssuer:    issuer,
		},
	})

	sender, err := sourcemock.NewSender(sourcemock.Config{
		IngestURL: stack.IngestURL, Rate: 4 * limit, Count: n, Concurrency: 32, Deadline: 500 * time.Millisecond,
	}, stack.Token, nil)
	if err != nil {
		t.Fatalf("new sender: %v", err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	t.Logf("source: %s", sum)
	if got := len(sum.Accepted); got != n {
		t.Fatalf("source saw %d of %d events accepted within 500 ms: %s", got, n, sum)
	}
	waitDistinct(t, stack, n, 3*time.Duration(n/limit)*time.Second)

	events, err := stack.Target.Events(t.Context())
	if err != nil {
		t.Fatalf("target events: %v", err)
	}
	byID := make(map[string]event.Event, len(events))
	for _, e := range events {
		if e.Calls != 1 {
			t.Errorf("event %s reached the target in %d calls, want 1", e.ID, e.Calls)
		}
		if e.Brand != event.DefaultBrand {
			t.Errorf("event %s has brand %q", e.ID, e.Brand)
		}
		byID[e.ID] = event.Event{ID: e.ID}
	}
	for _, id := range sum.Accepted {
		if _, ok := byID[id]; !ok {
			t.Errorf("event %s got a 202 but never reached the target", id)
		}
	}
	st, err := stack.Target.Stats(t.Context())
	if err != nil {
		t.Fatalf("target stats: %v", err)
	}
	t.Logf("target: %+v", st)
	if st.MaxCallsPerSecond > int(limit)+targetBurst {
		t.Errorf("target saw %d calls in one second, limit %v + burst %d", st.MaxCallsPerSecond, limit, targetBurst)
	}

	// Every event's document in Firestore shows the delivery.
	for _, id := range sum.Accepted[:50] {
		rec, err := stack.Status.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("status of %s: %v", id, err)
		}
		if rec.Status != status.Delivered || len(rec.Attempts) == 0 || rec.Attempts[len(rec.Attempts)-1].Outcome != status.OutcomeDelivered {
			t.Errorf("record %s = %s with %d attempts, want delivered with its attempts", id, rec.Status, len(rec.Attempts))
		}
	}
	counts, err := stack.Status.Counts(t.Context())
	if err != nil {
		t.Fatalf("status counts: %v", err)
	}
	if counts[status.Delivered] != n {
		t.Errorf("Firestore has %d delivered records, want %d (%v)", counts[status.Delivered], n, counts)
	}
}
