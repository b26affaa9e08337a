package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
)

// targetRecord is what the reconciliation reads of the target: every event
// it stored (the side effects) and every call it saw. *targetmock.Server
// implements it.
type targetRecord interface {
	Events(ctx context.Context) ([]targetmock.ReceivedEvent, error)
	Calls(ctx context.Context, f targetmock.CallFilter) ([]targetmock.Call, error)
}

// statusReader is what the reconciliation reads of the status store. Every
// status.Store implements it.
type statusReader interface {
	Get(ctx context.Context, id string) (status.Record, error)
}

var (
	_ targetRecord = (*targetmock.Server)(nil)
	_ statusReader = (status.Store)(nil)
)

// reconcileInput is what reconcile compares: what the source was told, and what the
// target and the status store recorded.
type reconcileInput struct {
	// Source is the source's summary: its Accepted ids are the events that
	// got a 2xx within the source's deadline, which the system must never
	// lose.
	Source sourcemock.Summary
	// LoadStart and LoadEnd bound the source's run.
	LoadStart, LoadEnd time.Time
	Target             targetRecord
	Status             statusReader
}

// report is the outcome of one scenario: the figures docs/reliability.md
// publishes. Durations are in nanoseconds in JSON.
type report struct {
	// Scenario and Engine name the run; Injected says what was injected.
	Scenario string `json:"scenario"`
	Engine   string `json:"engine"`
	Injected string `json:"injected"`
	// Limit is the target's (and the queue's) rate in events/s.
	Limit float64 `json:"limit"`

	// Sent counts the source's requests; Acknowledged those answered 2xx
	// within its deadline; Refused the rest (a non-2xx, a late 2xx or no
	// answer), which the source treats as failed and never resends.
	Sent         int `json:"sent"`
	Acknowledged int `json:"acknowledged"`
	Refused      int `json:"refused"`
	// Answers counts the source's non-2xx answers by HTTP status, and
	// NoAnswer the requests that got none (connection refused or reset).
	Answers  map[int]int `json:"answers,omitempty"`
	NoAnswer int         `json:"no_answer"`
	// Late counts requests with no 2xx within the source's deadline: a
	// timeout, a late 2xx, or a late non-2xx.
	Late int `json:"late"`
	// InjectedFaults counts the calls a harness-side fault (status store or
	// queue down, slow or hung) touched; 0 for the target's own faults.
	InjectedFaults int64 `json:"injected_faults"`
	// Delivered counts acknowledged events stored at the target.
	Delivered int `json:"delivered"`
	// Failed and DeadLettered count acknowledged events the target never
	// stored whose status record says why (terminal, replayable).
	Failed       int `json:"failed"`
	DeadLettered int `json:"dead_lettered"`
	// Lost counts acknowledged events neither stored at the target nor
	// failed or dead-lettered: the worst failure there is.
	Lost int `json:"lost"`
	// Stuck counts acknowledged events whose status record is missing or not
	// terminal once the drain window closed.
	Stuck int `json:"stuck"`
	// ExtraDelivered counts events stored at the target that the source does
	// not count as acknowledged: an enqueue that committed although the
	// answer came late, was a 503 past the deadline, or was cut by a crash.
	// At-least-once, never a loss.
	ExtraDelivered int `json:"extra_delivered"`

	// TargetCalls counts receiveEvent calls of any outcome.
	TargetCalls int `json:"target_calls"`
	// DuplicateCalls counts calls for an id the target had stored already.
	DuplicateCalls int `json:"duplicate_calls"`
	// DuplicateSideEffects counts accepting calls beyond the first for one
	// id: a second side effect. The target's idempotency on the id keeps it
	// at 0; anything else is a defect.
	DuplicateSideEffects int `json:"duplicate_side_effects"`
	// RateLimitedCalls and FaultCalls count calls answered rate limited or
	// with an injected 5xx.
	RateLimitedCalls int `json:"rate_limited_calls"`
	FaultCalls       int `json:"fault_calls"`
	// RejectedCalls counts calls the target refused with no side effect:
	// invalid input, or — in targetmock — a call whose client gave up
	// before it was processed (a delivery cut by the dispatch deadline).
	RejectedCalls int `json:"rejected_calls"`
	// MaxAttempts is the most delivery attempts one acknowledged event's
	// record holds.
	MaxAttempts int `json:"max_attempts"`
	// Requeued counts acknowledged events the dispatcher carried on in a
	// new task on a last attempt (rate limited, or the status store down
	// when it could still record it), from the status records.
	Requeued int `json:"requeued"`
	// GovernorCeiling and GovernorFinalRate are the rate governor's ceiling
	// and the queue's live rate once the backlog drained (0: no governor,
	// or a scenario that does not look).
	GovernorCeiling   float64 `json:"governor_ceiling,omitempty"`
	GovernorFinalRate float64 `json:"governor_final_rate,omitempty"`
	// QueueFaults counts the enqueues a harness-side queue fault touched,
	// when a scenario injects one beside another fault (InjectedFaults).
	QueueFaults int64 `json:"queue_faults,omitempty"`
	// Reconciled counts acknowledged events the reconciler acted on (a
	// "reconciled" entry in the record's history).
	Reconciled int `json:"reconciled"`
	// StuckWithoutReconciler counts acknowledged events left non-final
	// once the rest had drained, in the phase of a scenario run without
	// the reconciler (task-vanished).
	StuckWithoutReconciler int `json:"stuck_without_reconciler,omitempty"`
	// OutageLength, OutageCalls and RecoveryTime describe an injected
	// target outage (target-500-storm): how long it lasted, how many calls
	// the target received meanwhile, and how long after it healed the
	// dispatch rate was back at the limit (-1: never within the run).
	OutageLength time.Duration `json:"outage_length_ns,omitempty"`
	OutageCalls  int           `json:"outage_calls,omitempty"`
	RecoveryTime time.Duration `json:"recovery_time_ns,omitempty"`
	// DeadLetteredRateLimitedOnly counts dead-lettered events whose every
	// failed attempt was rate limited (the 429 storm's acceptance: 0).
	DeadLetteredRateLimitedOnly int `json:"dead_lettered_rate_limited_only"`

	// IngestP50, IngestP99 and IngestMax are the source's view of ingest's
	// latency (timeouts count at the deadline).
	IngestP50 time.Duration `json:"ingest_p50_ns"`
	IngestP99 time.Duration `json:"ingest_p99_ns"`
	IngestMax time.Duration `json:"ingest_max_ns"`
	// Elapsed runs from the first send to the last acknowledged event's
	// terminal status; Drain from the end of the load to that moment.
	Elapsed time.Duration `json:"elapsed_ns"`
	Drain   time.Duration `json:"drain_ns"`
	// DeliveryRate is the target's accepted calls per second from the first
	// to the last; MaxAcceptedPerSecond the most in one wall-clock second.
	DeliveryRate         float64 `json:"delivery_rate"`
	MaxAcceptedPerSecond int     `json:"max_accepted_per_second"`
	// MaxBacklog is the largest queue backlog seen; -1 when it could not be
	// read (the Cloud Tasks emulator has no stats; a separate process's
	// queue is not sampled).
	MaxBacklog int64 `json:"max_backlog"`

	// Violations lists the scenario's own invariants that failed (e.g. the
	// events a crash cut must end delivered after exactly one duplicate
	// call); they are acceptance failures like lost events.
	Violations []string `json:"violations,omitempty"`
	// Timeline lists what was injected when, relative to the load's start.
	Timeline []string `json:"timeline,omitempty"`
	// LostIDs and StuckIDs hold up to ten examples each.
	LostIDs  []string `json:"lost_ids,omitempty"`
	StuckIDs []string `json:"stuck_ids,omitempty"`
}

// maxExamples bounds the ids a report lists.
const maxExamples = 10

// getWorkers bounds the status reads in flight during a reconciliation.
const getWorkers = 8

// reconcile compares every acknowledged event with the target's record and
// the status store and fills in the figures; Scenario, Engine, Injected,
// Limit, MaxBacklog (-1 here: unknown) and Timeline are left to the caller.
func reconcile(ctx context.Context, in reconcileInput) (report, error) {
	src := in.Source
	r := report{
		MaxBacklog:   -1,
		Sent:         src.Sent,
		Acknowledged: len(src.Accepted),
		Refused:      src.Failed(),
		Answers:      src.Non2xx,
		NoAnswer:     src.Errors,
		Late:         src.Late,
		IngestP50:    src.P50,
		IngestP99:    src.P99,
		IngestMax:    src.Max,
	}

	events, err := in.Target.Events(ctx)
	if err != nil {
		return report{}, fmt.Errorf("read the target's events: %w", err)
	}
	stored := make(map[string]bool, len(events))
	for _, e := range events {
		stored[e.ID] = true
	}
	calls, err := in.Target.Calls(ctx, targetmock.CallFilter{})
	if err != nil {
		return report{}, fmt.Errorf("read the target's calls: %w", err)
	}
	accepting := map[string]int{}
	var firstAccept, lastAccept time.Time
	perSecond := map[int64]int{}
	for _, c := range calls {
		r.TargetCalls++
		switch c.Outcome {
		case targetmock.OutcomeAccepted:
			accepting[c.EventID]++
			perSecond[c.At.Unix()]++
			if firstAccept.IsZero() || c.At.Before(firstAccept) {
				firstAccept = c.At
			}
			if c.At.After(lastAccept) {
				lastAccept = c.At
			}
		case targetmock.OutcomeDuplicate:
			r.DuplicateCalls++
		case targetmock.OutcomeRateLimited:
			r.RateLimitedCalls++
		case targetmock.OutcomeFault:
			r.FaultCalls++
		case targetmock.OutcomeRejected:
			r.RejectedCalls++
		}
	}
	for _, n := range accepting {
		r.DuplicateSideEffects += n - 1
	}
	for _, n := range perSecond {
		r.MaxAcceptedPerSecond = max(r.MaxAcceptedPerSecond, n)
	}
	if n := len(accepting); n > 1 && lastAccept.After(firstAccept) {
		r.DeliveryRate = float64(n-1) / lastAccept.Sub(firstAccept).Seconds()
	}

	records, err := getAll(ctx, in.Status, src.Accepted)
	if err != nil {
		return report{}, err
	}
	acked := make(map[string]bool, len(src.Accepted))
	var lastTerminal time.Time
	for i, id := range src.Accepted {
		acked[id] = true
		rec, found := records[i].rec, records[i].found
		terminal := found && rec.Status.Terminal()
		switch {
		case stored[id]:
			r.Delivered++
		case terminal && rec.Status == status.Failed:
			r.Failed++
		case terminal && rec.Status == status.DeadLettered:
			r.DeadLettered++
			if rateLimitedOnly(rec) {
				r.DeadLetteredRateLimitedOnly++
			}
		default:
			r.Lost++
			if len(r.LostIDs) < maxExamples {
				r.LostIDs = append(r.LostIDs, id)
			}
		}
		if !terminal {
			r.Stuck++
			if len(r.StuckIDs) < maxExamples {
				r.StuckIDs = append(r.StuckIDs, id)
			}
			continue
		}
		r.MaxAttempts = max(r.MaxAttempts, deliveryAttempts(rec))
		if requeued(rec) {
			r.Requeued++
		}
		if hasReconciled(rec) {
			r.Reconciled++
		}
		if rec.UpdatedAt.After(lastTerminal) {
			lastTerminal = rec.UpdatedAt
		}
	}
	for id := range stored {
		if !acked[id] {
			r.ExtraDelivered++
		}
	}
	if !lastTerminal.IsZero() {
		if !in.LoadStart.IsZero() {
			r.Elapsed = lastTerminal.Sub(in.LoadStart)
		}
		if !in.LoadEnd.IsZero() {
			r.Drain = max(lastTerminal.Sub(in.LoadEnd), 0)
		}
	}
	return r, nil
}

type lookup struct {
	rec   status.Record
	found bool
}

// getAll reads the record of every id, a few at a time; a missing record is
// not an error (it counts as not terminal).
func getAll(ctx context.Context, st statusReader, ids []string) ([]lookup, error) {
	out := make([]lookup, len(ids))
	errs := make([]error, getWorkers)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range getWorkers {
		wg.Go(func() {
			for i := range next {
				gctx, cancel := context.WithTimeout(ctx, readTimeout)
				rec, err := st.Get(gctx, ids[i])
				cancel()
				switch {
				case errors.Is(err, status.ErrNotFound):
				case err != nil:
					if errs[w] == nil {
						errs[w] = fmt.Errorf("read the status of %s: %w", ids[i], err)
					}
				default:
					out[i] = lookup{rec: rec, found: true}
				}
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// deliveryAttempts counts the attempts that called (or tried to call) the
// target; skips and replays are not attempts.
func deliveryAttempts(rec status.Record) int {
	n := 0
	for _, a := range rec.Attempts {
		if a.Outcome != status.OutcomeSkipped && a.Outcome != status.OutcomeReplayed && a.Outcome != status.OutcomeReconciled {
			n++
		}
	}
	return n
}

// requeued reports whether the dispatcher carried rec's event on in a new
// task on some last attempt (it notes the new task in that attempt).
func requeued(rec status.Record) bool {
	for _, a := range rec.Attempts {
		if strings.Contains(a.Error, "; requeued as task ") {
			return true
		}
	}
	return false
}

// rateLimitedOnly reports whether every failed attempt of a dead-lettered
// record was rate limited (its last attempt, recorded as dead_lettered,
// included when its error says so).
func rateLimitedOnly(rec status.Record) bool {
	seen := false
	for _, a := range rec.Attempts {
		switch a.Outcome {
		case status.OutcomeRateLimited:
			seen = true
		case status.OutcomeDeadLettered:
			if !strings.Contains(a.Error, "rate limited") {
				return false
			}
			seen = true
		case status.OutcomeRetryable, status.OutcomePermanent:
			return false
		}
	}
	return seen
}

// problems lists the acceptance failures of a report: lost events,
// duplicate side effects and stuck events. Empty means the run passed.
func (r report) problems() []string {
	var p []string
	if r.Lost > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged events lost (neither delivered nor failed/dead-lettered), e.g. %s", r.Lost, strings.Join(r.LostIDs, ", ")))
	}
	if r.DuplicateSideEffects > 0 {
		p = append(p, fmt.Sprintf("%d duplicate side effects at the target", r.DuplicateSideEffects))
	}
	if r.Stuck > 0 {
		p = append(p, fmt.Sprintf("%d acknowledged events not terminal after the drain window, e.g. %s", r.Stuck, strings.Join(r.StuckIDs, ", ")))
	}
	return append(p, r.Violations...)
}

// writeTable writes reports as one aligned table, a row per report.
func writeTable(w io.Writer, reports []report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tengine\tsent\tacked\tdelivered\tdead-lettered\tlost\tstuck\tdup calls\tdup side effects\textra\treconciled\tmax attempts\tingest p99\tmax backlog\tdrain\tdelivered/s\tlimit\t")
	for _, r := range reports {
		backlog := "n/a"
		if r.MaxBacklog >= 0 {
			backlog = fmt.Sprint(r.MaxBacklog)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%s\t%v\t%.1f\t%.4g\t\n",
			r.Scenario, r.Engine, r.Sent, r.Acknowledged, r.Delivered, r.DeadLettered+r.Failed, r.Lost, r.Stuck,
			r.DuplicateCalls, r.DuplicateSideEffects, r.ExtraDelivered, r.Reconciled, r.MaxAttempts,
			r.IngestP99.Round(time.Millisecond), backlog, r.Drain.Round(100*time.Millisecond), r.DeliveryRate, r.Limit)
	}
	return tw.Flush()
}

// writeJSON writes reports as an indented JSON array.
func writeJSON(w io.Writer, reports []report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if reports == nil {
		reports = []report{}
	}
	return enc.Encode(reports)
}
