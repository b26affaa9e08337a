package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
)

type fakeTarget struct {
	events []targetmock.ReceivedEvent
	calls  []targetmock.Call
}

func (f fakeTarget) Events(context.Context) ([]targetmock.ReceivedEvent, error) { return f.events, nil }
func (f fakeTarget) Calls(context.Context, targetmock.CallFilter) ([]targetmock.Call, error) {
	return f.calls, nil
}

type fakeStatus map[string]status.Record

func (f fakeStatus) Get(_ context.Context, id string) (status.Record, error) {
	r, ok := f[id]
	if !ok {
		return status.Record{}, status.ErrNotFound
	}
	return r, nil
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func call(id string, o targetmock.Outcome, s float64) targetmock.Call {
	return targetmock.Call{EventID: id, Outcome: o, At: at(s)}
}

func rec(id string, st status.Status, updated float64, outcomes ...status.Outcome) status.Record {
	r := status.Record{EventID: id, Status: st, UpdatedAt: at(updated)}
	for i, o := range outcomes {
		a := status.Attempt{Number: i + 1, Outcome: o}
		if o == status.OutcomeDeadLettered {
			a.Error = "target rate limited: HTTP 429"
		}
		r.Attempts = append(r.Attempts, a)
	}
	return r
}

func stored(ids ...string) []targetmock.ReceivedEvent {
	var out []targetmock.ReceivedEvent
	for _, id := range ids {
		out = append(out, targetmock.ReceivedEvent{ID: id})
	}
	return out
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		acked  []string
		target fakeTarget
		status fakeStatus
		want   report
	}{
		{
			name:  "all delivered once",
			acked: []string{"a", "b"},
			target: fakeTarget{
				events: stored("a", "b"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 1), call("b", targetmock.OutcomeAccepted, 2)},
			},
			status: fakeStatus{
				"a": rec("a", status.Delivered, 1, status.OutcomeDelivered),
				"b": rec("b", status.Delivered, 2, status.OutcomeDelivered),
			},
			want: report{MaxBacklog: -1, Acknowledged: 2, Delivered: 2, TargetCalls: 2, MaxAttempts: 1,
				Elapsed: 2 * time.Second, Drain: time.Second, DeliveryRate: 1, MaxAcceptedPerSecond: 1},
		},
		{
			name:  "acknowledged but nowhere is lost and stuck",
			acked: []string{"a", "gone"},
			target: fakeTarget{
				events: stored("a"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 1)},
			},
			status: fakeStatus{"a": rec("a", status.Delivered, 1, status.OutcomeDelivered)},
			want: report{MaxBacklog: -1, Acknowledged: 2, Delivered: 1, Lost: 1, Stuck: 1, TargetCalls: 1, MaxAttempts: 1,
				Elapsed: time.Second, MaxAcceptedPerSecond: 1, LostIDs: []string{"gone"}, StuckIDs: []string{"gone"}},
		},
		{
			name:  "retried calls and a duplicate call are counted, no second side effect",
			acked: []string{"a"},
			target: fakeTarget{
				events: stored("a"),
				calls: []targetmock.Call{
					call("a", targetmock.OutcomeFault, 1), call("a", targetmock.OutcomeRateLimited, 2),
					call("a", targetmock.OutcomeAccepted, 3), call("a", targetmock.OutcomeDuplicate, 4),
				},
			},
			status: fakeStatus{"a": rec("a", status.Delivered, 4, status.OutcomeRetryable, status.OutcomeRateLimited, status.OutcomeDelivered, status.OutcomeSkipped)},
			want: report{MaxBacklog: -1, Acknowledged: 1, Delivered: 1, TargetCalls: 4, DuplicateCalls: 1, FaultCalls: 1, RateLimitedCalls: 1,
				MaxAttempts: 3, Elapsed: 4 * time.Second, Drain: 3 * time.Second, MaxAcceptedPerSecond: 1},
		},
		{
			name:  "a reconciled entry is counted, never as an attempt",
			acked: []string{"a"},
			target: fakeTarget{
				events: stored("a"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 3)},
			},
			status: fakeStatus{"a": rec("a", status.Delivered, 3, status.OutcomeReconciled, status.OutcomeDelivered)},
			want: report{MaxBacklog: -1, Acknowledged: 1, Delivered: 1, TargetCalls: 1, Reconciled: 1,
				MaxAttempts: 1, Elapsed: 3 * time.Second, Drain: 2 * time.Second, MaxAcceptedPerSecond: 1},
		},
		{
			name:  "two accepting calls for one id are a duplicate side effect",
			acked: []string{"a"},
			target: fakeTarget{
				events: stored("a"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 1), call("a", targetmock.OutcomeAccepted, 1.5)},
			},
			status: fakeStatus{"a": rec("a", status.Delivered, 2, status.OutcomeDelivered)},
			want: report{MaxBacklog: -1, Acknowledged: 1, Delivered: 1, TargetCalls: 2, DuplicateSideEffects: 1, MaxAttempts: 1,
				Elapsed: 2 * time.Second, Drain: time.Second, MaxAcceptedPerSecond: 2},
		},
		{
			name:  "dead-lettered and failed are accounted for, not lost",
			acked: []string{"dl", "f", "mixed"},
			target: fakeTarget{calls: []targetmock.Call{
				call("dl", targetmock.OutcomeRateLimited, 1), call("f", targetmock.OutcomeRejected, 1),
			}},
			status: fakeStatus{
				"dl":    rec("dl", status.DeadLettered, 3, status.OutcomeRateLimited, status.OutcomeRateLimited, status.OutcomeDeadLettered),
				"f":     rec("f", status.Failed, 1, status.OutcomePermanent),
				"mixed": rec("mixed", status.DeadLettered, 2, status.OutcomeRetryable, status.OutcomeDeadLettered),
			},
			want: report{MaxBacklog: -1, Acknowledged: 3, Failed: 1, DeadLettered: 2, DeadLetteredRateLimitedOnly: 1,
				TargetCalls: 2, RateLimitedCalls: 1, RejectedCalls: 1, MaxAttempts: 3, Elapsed: 3 * time.Second, Drain: 2 * time.Second},
		},
		{
			name:  "delivered at the target but not terminal in the store is stuck, not lost",
			acked: []string{"a"},
			target: fakeTarget{
				events: stored("a"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 1)},
			},
			status: fakeStatus{"a": rec("a", status.Delivering, 1)},
			want:   report{MaxBacklog: -1, Acknowledged: 1, Delivered: 1, Stuck: 1, TargetCalls: 1, MaxAcceptedPerSecond: 1, StuckIDs: []string{"a"}},
		},
		{
			name:  "an event stored without a 2xx in time is extra, not an error",
			acked: []string{"a"},
			target: fakeTarget{
				events: stored("a", "late"),
				calls:  []targetmock.Call{call("a", targetmock.OutcomeAccepted, 1), call("late", targetmock.OutcomeAccepted, 1.2)},
			},
			status: fakeStatus{"a": rec("a", status.Delivered, 1, status.OutcomeDelivered)},
			want: report{MaxBacklog: -1, Acknowledged: 1, Delivered: 1, ExtraDelivered: 1, TargetCalls: 2, MaxAttempts: 1,
				Elapsed: time.Second, DeliveryRate: 5, MaxAcceptedPerSecond: 2},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := reconcile(t.Context(), reconcileInput{
				Source:    sourcemock.Summary{Sent: len(c.acked), OK: len(c.acked), Accepted: c.acked},
				LoadStart: t0, LoadEnd: at(1),
				Target: c.target, Status: c.status,
			})
			if err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			c.want.Sent = len(c.acked)
			if diff := cmp.Diff(c.want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("reconcile (-want +got):\n%s", diff)
			}
		})
	}
}

type failingStatus struct{}

func (failingStatus) Get(context.Context, string) (status.Record, error) {
	return status.Record{}, errors.New("store down")
}

func TestReconcile_statusUnreadable(t *testing.T) {
	t.Parallel()
	_, err := reconcile(t.Context(), reconcileInput{
		Source: sourcemock.Summary{Accepted: []string{"a"}},
		Target: fakeTarget{}, Status: failingStatus{},
	})
	if err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("reconcile with an unreadable store: err = %v, want the store's error", err)
	}
}

func TestReportProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    report
		want []string // substrings, one per problem
	}{
		{name: "clean, duplicate calls allowed", r: report{Acknowledged: 5, Delivered: 5, DuplicateCalls: 3}},
		{name: "lost", r: report{Lost: 2, LostIDs: []string{"x", "y"}}, want: []string{"2 acknowledged events lost"}},
		{name: "side effects and stuck", r: report{DuplicateSideEffects: 1, Stuck: 1, StuckIDs: []string{"z"}},
			want: []string{"1 duplicate side effects", "1 acknowledged events not terminal"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := c.r.problems()
			if len(got) != len(c.want) {
				t.Fatalf("Problems() = %q, want %d problems", got, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to mention %q", i, got[i], w)
				}
			}
		})
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	t.Parallel()
	reports := []report{{Scenario: "kill9", Engine: "embedded", Sent: 600, Acknowledged: 590, Delivered: 590,
		DuplicateCalls: 7, IngestP99: 12 * time.Millisecond, MaxBacklog: -1, Drain: 11 * time.Second, DeliveryRate: 49.5, Limit: 50}}
	var table bytes.Buffer
	if err := writeTable(&table, reports); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("table has %d lines, want a header and one row:\n%s", len(lines), table.String())
	}
	for _, want := range []string{"kill9", "embedded", "600", "590", "12ms", "n/a", "11s", "49.5"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}

	var js bytes.Buffer
	if err := writeJSON(&js, reports); err != nil {
		t.Fatal(err)
	}
	var back []report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if diff := cmp.Diff(reports, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	js.Reset()
	if err := writeJSON(&js, nil); err != nil || strings.TrimSpace(js.String()) != "[]" {
		t.Errorf("writeJSON(nil) = %q, %v; want []", js.String(), err)
	}
}
