// Package reconcile finds events that would otherwise be silently lost: a
// status record that is not final (queued, delivering, retrying) while no
// task for its event is left in the queue. That happens when the last
// attempt of a task was answered by something in front of the dispatcher
// (Cloud Run's front end: the handler never ran), when the status store and
// the queue failed together on a last attempt, or when someone deleted or
// purged tasks by hand. Nothing else would ever deliver such an event.
//
// The Reconciler pages through the non-final records left alone longer than
// a grace period, asks the queue (queue.Inspector) whether the record's
// current task still exists and, when it does not, either enqueues the
// event under the next name of its task chain (PolicyRequeue) or
// dead-letters it (PolicyDeadLetter), recording a status.OutcomeReconciled
// entry. Every step is idempotent, so any number of reconcilers may run at
// once (docs/lld/reconciler.md).
package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"

	"eventrelay/internal/event"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// Action is what the reconciler did with (or, in a dry run, found of) one
// record whose current task was missing.
type Action string

const (
	// ActionRequeued: the event was enqueued under its next task name.
	ActionRequeued Action = telemetry.ReconcileActionRequeued
	// ActionDeadLettered: the record was dead-lettered (PolicyDeadLetter).
	ActionDeadLettered Action = telemetry.ReconcileActionDeadLettered
	// ActionFound: a dry run found the record and changed nothing.
	ActionFound Action = telemetry.ReconcileActionFound
	// ActionAdopted: the next task of the event's chain is in the queue
	// (the dispatcher requeued it without the record knowing, or another
	// reconciler just did): nothing to do.
	ActionAdopted Action = "adopted"
	// ActionMoved: the record changed while it was checked (another
	// delivery moved it on, or it became final): left alone.
	ActionMoved Action = "moved"
	// ActionStuck: the reconciler could not act (an engine failed, or no
	// free task name was found); the next run tries again.
	ActionStuck Action = "stuck"
)

// maxWalk bounds the walk along an event's task chain past names the queue
// still remembers (finished tasks whose names it keeps for deduplication).
const maxWalk = 10

// engineTimeout bounds each call to the store or the queue.
const engineTimeout = 10 * time.Second

// pending are the non-final statuses, the only ones scanned.
var pending = []status.Status{status.Queued, status.Delivering, status.Retrying}

// Finding is one record whose current task was not in the queue.
type Finding struct {
	EventID   string        `json:"event_id"`
	Status    status.Status `json:"status"`
	UpdatedAt time.Time     `json:"updated_at"`
	// MissingTask is the record's current task, which the queue no longer
	// holds.
	MissingTask string `json:"missing_task"`
	// Cause is the metric's cause (telemetry.ReconcileCauseTaskMissing).
	Cause string `json:"cause"`
	// Why says in words why the record looks stuck.
	Why    string `json:"why"`
	Action Action `json:"action"`
	// NewTask is the task now carrying the event (requeued, adopted), or
	// the one a dry run would enqueue.
	NewTask string `json:"new_task,omitempty"`
	TraceID string `json:"trace_id,omitempty"`
	// Error says what failed (stuck), or what went wrong after acting.
	Error string `json:"error,omitempty"`
}

// Report is the result of one Scan.
type Report struct {
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	DryRun   bool          `json:"dry_run"`
	Policy   Policy        `json:"policy"`
	Grace    time.Duration `json:"grace_ns"`
	// Read counts the records the scan read; Idle those left alone longer
	// than the grace; Live those of them whose task is in the queue.
	Read int `json:"read"`
	Idle int `json:"idle"`
	Live int `json:"live"`
	// Counts is the number of findings by action.
	Counts map[Action]int `json:"counts"`
	// Findings are the records whose task was missing, by status then
	// newest received first. A Snapshot keeps the first maxSnapshot.
	Findings []Finding `json:"findings"`
	// Skipped counts the microseconds the paging had to step over: more
	// than a page of records received in one (a cursor by time cannot split
	// them); the next runs meet the same ones.
	Skipped int `json:"skipped,omitempty"`
	// Err is why the scan stopped early ("" when it did not).
	Err string `json:"error,omitempty"`
}

// maxSnapshot bounds the findings a Snapshot keeps for the ops page.
const maxSnapshot = 100

// Options are what a Reconciler is built from.
type Options struct {
	// Store holds the status records (required).
	Store status.Store
	// Queue is where a requeued event's task goes (required with
	// PolicyRequeue, unless every Scan is a dry run).
	Queue queue.Queue
	// Inspector tells whether a task is still in the queue (required).
	Inspector queue.Inspector
	// Config is RECONCILE_*; it must be valid.
	Config Config
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// MeterProvider gets the records counter (nil: the global one).
	MeterProvider metric.MeterProvider
	// Active, when set, is asked before each timed run; false skips the
	// run (the dispatcher runs it only while its governor leads).
	Active func() bool
}

// Reconciler finds and repairs records whose task is gone.
type Reconciler struct {
	o       Options
	cfg     Config
	now     func() time.Time
	records metric.Int64Counter
	// checks paces the first TaskExists of each idle record.
	checks *rate.Limiter

	mu   sync.Mutex
	last Report
	ran  bool
}

// New checks o and builds a Reconciler.
func New(o Options) (*Reconciler, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("reconcile: a status store is required"))
	}
	if o.Inspector == nil {
		errs = append(errs, errors.New("reconcile: a queue inspector is required"))
	}
	if err := o.Config.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("reconcile config: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Reconciler{o: o, cfg: o.Config, now: o.Now,
		checks: rate.NewLimiter(rate.Limit(o.Config.ChecksPerSecond), max(1, int(o.Config.ChecksPerSecond)))}
	if r.now == nil {
		r.now = time.Now
	}
	mp := telemetry.NewProviders(telemetry.WithMeterProvider(o.MeterProvider)).Meter
	d := telemetry.ReconcileRecords
	var err error
	r.records, err = mp.Meter("eventrelay/internal/reconcile").Int64Counter(d.Name,
		metric.WithDescription(d.Description), metric.WithUnit(d.Unit))
	if err != nil {
		return nil, fmt.Errorf("reconcile metrics: %w", err)
	}
	return r, nil
}

// Config is the configuration the reconciler runs with.
func (r *Reconciler) Config() Config { return r.cfg }

// Snapshot returns the last run's report (its first findings only), and
// false before the first run.
func (r *Reconciler) Snapshot() (Report, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.last
	rep.Findings = append([]Finding(nil), rep.Findings[:min(len(rep.Findings), maxSnapshot)]...)
	counts := make(map[Action]int, len(rep.Counts))
	for k, v := range rep.Counts {
		counts[k] = v
	}
	rep.Counts = counts
	return rep, r.ran
}

// Run scans every Interval (±10 % jitter, so that instances started
// together spread out) until ctx is done, skipping runs while Active says
// no. A failed run is logged; the next one tries again.
func (r *Reconciler) Run(ctx context.Context) error {
	log := logging.FromContext(ctx)
	t := time.NewTimer(jitter(r.cfg.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if r.o.Active == nil || r.o.Active() {
			rep, err := r.Scan(ctx, false)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				log.ErrorContext(ctx, "reconcile run failed", "error", err.Error(), "read", rep.Read)
			case len(rep.Findings) > 0:
				log.InfoContext(ctx, "reconcile run", "read", rep.Read, "idle", rep.Idle, "live", rep.Live,
					"requeued", rep.Counts[ActionRequeued], "dead_lettered", rep.Counts[ActionDeadLettered],
					"adopted", rep.Counts[ActionAdopted], "stuck", rep.Counts[ActionStuck])
			default:
				log.DebugContext(ctx, "reconcile run", "read", rep.Read, "idle", rep.Idle, "live", rep.Live)
			}
		}
		t.Reset(jitter(r.cfg.Interval))
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(mrand.Int64N(int64(d/5)+1))
}

// Scan checks every non-final record left alone longer than the grace
// once. A dry run only reads (the store and the queue) and reports what it
// would do. The error is why the scan stopped early; the report holds what
// was done until then.
func (r *Reconciler) Scan(ctx context.Context, dryRun bool) (Report, error) {
	started := r.now()
	rep := Report{Started: started, DryRun: dryRun, Policy: r.cfg.Policy, Grace: r.cfg.Grace, Counts: map[Action]int{}}
	if !dryRun && r.cfg.Policy == PolicyRequeue && r.o.Queue == nil {
		return rep, errors.New("reconcile: the requeue policy needs a queue")
	}
	cutoff := started.Add(-r.cfg.Grace)
	var errs []error
	for _, st := range pending {
		if err := r.scanStatus(ctx, st, cutoff, dryRun, &rep); err != nil {
			errs = append(errs, fmt.Errorf("scan %s records: %w", st, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	err := errors.Join(errs...)
	rep.Finished = r.now()
	if err != nil {
		rep.Err = err.Error()
	}
	r.mu.Lock()
	r.last, r.ran = rep, true
	r.mu.Unlock()
	return rep, err
}

// scanStatus pages through the records in st received before cutoff
// (received_at ≤ updated_at, so no record idle since cutoff is missed),
// newest first. The status engines keep times to the microsecond
// (Firestore's precision), so the next page's cursor is the end of the
// microsecond of the page's last record, and the page's ids are skipped
// when read again: records received in the same microsecond as a page's
// last one are read twice rather than stepped over. Only when more than a
// page share one microsecond does the scan step over the rest of them
// (Report.Skipped).
func (r *Reconciler) scanStatus(ctx context.Context, st status.Status, cutoff time.Time, dryRun bool, rep *Report) error {
	before := cutoff
	var seen map[string]bool
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(ctx, engineTimeout)
		page, err := r.o.Store.List(lctx, status.Query{Status: st, Limit: r.cfg.PageSize, Before: before})
		cancel()
		if err != nil {
			return err
		}
		fresh := 0
		for _, rec := range page {
			if seen[rec.EventID] {
				continue
			}
			fresh++
			rep.Read++
			if rec.Status != st || rec.UpdatedAt.After(cutoff) {
				continue // moved on since, or busy: not idle
			}
			rep.Idle++
			f, live, err := r.check(ctx, rec, dryRun)
			if err != nil {
				// The queue cannot answer: asking it about every other
				// record would only add load. The next run starts over.
				return err
			}
			if live {
				rep.Live++
				continue
			}
			rep.Counts[f.Action]++
			rep.Findings = append(rep.Findings, f)
			r.report(ctx, f, dryRun)
		}
		if len(page) < r.cfg.PageSize {
			return nil
		}
		instant := page[len(page)-1].ReceivedAt.Truncate(time.Microsecond)
		next := instant.Add(time.Microsecond)
		if fresh == 0 || !next.Before(before) {
			// A page's worth in one microsecond: step over the rest of it.
			rep.Skipped++
			before, seen = instant, nil
			continue
		}
		seen = make(map[string]bool, len(page))
		for _, rec := range page {
			seen[rec.EventID] = true
		}
		before = next
	}
}

// CurrentTask is the name of the task that carries rec's event now, as far
// as the record knows: TaskName(id) at first, a replay's name after each
// "replayed" entry, and the task named by the latest entry that names one
// (delivery attempts name the task delivered, "reconciled" entries the
// task enqueued).
func CurrentTask(rec status.Record) string {
	name, replays := queue.TaskName(rec.EventID), 0
	for _, a := range rec.Attempts {
		switch {
		case a.Outcome == status.OutcomeReplayed:
			replays++
			name = queue.ReplayTaskName(rec.EventID, replays)
		case a.TaskName != "":
			name = a.TaskName
		}
	}
	return name
}

// check looks at one idle record. live is true when its current task is in
// the queue; otherwise f says what was found and done. err is set only when
// the queue could not say whether the current task exists: the pass stops.
func (r *Reconciler) check(ctx context.Context, rec status.Record, dryRun bool) (f Finding, live bool, err error) {
	cur := CurrentTask(rec)
	if err := r.checks.Wait(ctx); err != nil {
		return Finding{}, false, err
	}
	exists, err := r.exists(ctx, cur)
	if err != nil {
		return Finding{}, false, fmt.Errorf("check task %s of event %s: %w", cur, rec.EventID, err)
	}
	if exists {
		return Finding{}, true, nil
	}
	// Read the record again: it may have moved on since the page was read
	// (the task just finished and recorded its outcome).
	fresh, err := r.get(ctx, rec.EventID)
	if err != nil {
		return r.finding(rec, cur, ActionStuck, "", err), false, nil
	}
	if fresh.Status.Terminal() || !fresh.UpdatedAt.Equal(rec.UpdatedAt) {
		return r.finding(fresh, cur, ActionMoved, "", nil), false, nil
	}
	return r.walk(ctx, fresh, cur, dryRun), false, nil
}

// walk acts on a record whose task cur is gone: along the event's chain of
// task names (queue.RequeueTaskName), the first name in the queue is
// adopted; else the first name the queue accepts is enqueued (or, by
// policy, the record is dead-lettered). A name refused as existing while
// the queue says no such task exists is a finished task the queue still
// remembers: the walk goes on past it.
func (r *Reconciler) walk(ctx context.Context, rec status.Record, cur string, dryRun bool) Finding {
	name := cur
	for range maxWalk {
		next, ok := queue.RequeueTaskName(rec.EventID, name)
		if !ok {
			return r.finding(rec, cur, ActionStuck, "", fmt.Errorf("task name %q is not one of the event's", name))
		}
		exists, err := r.exists(ctx, next)
		switch {
		case err != nil:
			return r.finding(rec, cur, ActionStuck, next, fmt.Errorf("check task %s: %w", next, err))
		case exists:
			return r.finding(rec, cur, ActionAdopted, next, nil)
		case dryRun:
			return r.finding(rec, cur, ActionFound, next, nil)
		case r.cfg.Policy == PolicyDeadLetter:
			return r.deadLetter(ctx, rec, cur)
		}
		err = r.enqueue(ctx, rec, next)
		switch {
		case err == nil:
			return r.recordRequeue(ctx, rec, cur, next)
		case !errors.Is(err, queue.ErrAlreadyExists):
			return r.finding(rec, cur, ActionStuck, next, fmt.Errorf("enqueue task %s: %w", next, err))
		}
		// Refused as a duplicate: another reconciler made it just now
		// (adopt it), or it is a finished task's name.
		if exists, err = r.exists(ctx, next); err != nil {
			return r.finding(rec, cur, ActionStuck, next, fmt.Errorf("check task %s: %w", next, err))
		} else if exists {
			return r.finding(rec, cur, ActionAdopted, next, nil)
		}
		if fresh, err := r.get(ctx, rec.EventID); err != nil {
			return r.finding(rec, cur, ActionStuck, next, err)
		} else if fresh.Status.Terminal() || !fresh.UpdatedAt.Equal(rec.UpdatedAt) {
			return r.finding(fresh, cur, ActionMoved, "", nil)
		}
		name = next
	}
	return r.finding(rec, cur, ActionStuck, "", fmt.Errorf("no free task name within %d steps after %s", maxWalk, cur))
}

func (r *Reconciler) missingText(task string) string {
	return "task " + task + " no longer in the queue"
}

// recordRequeue records the requeue on the record: delivering becomes
// retrying (no delivery is in progress), queued and retrying stay.
func (r *Reconciler) recordRequeue(ctx context.Context, rec status.Record, cur, next string) Finding {
	to := rec.Status
	if to == status.Delivering {
		to = status.Retrying
	}
	now := r.now()
	_, err := r.apply(ctx, rec.EventID, status.Update{
		Status:  to,
		Reason:  "requeued: " + r.missingText(cur),
		At:      now,
		Attempt: &status.Attempt{At: now, Outcome: status.OutcomeReconciled, TaskName: next, Error: r.missingText(cur)},
	})
	switch {
	case errors.Is(err, status.ErrConflict):
		// Final meanwhile: the new task will be skipped as a duplicate.
		f := r.finding(rec, cur, ActionMoved, next, nil)
		f.Error = "the record became final while its task was requeued"
		return f
	case err != nil:
		// The task carries the event; the next run adopts it.
		f := r.finding(rec, cur, ActionRequeued, next, nil)
		f.Error = "requeue not recorded: " + err.Error()
		return f
	}
	return r.finding(rec, cur, ActionRequeued, next, nil)
}

// deadLetter dead-letters rec, replayable with relayctl replay.
func (r *Reconciler) deadLetter(ctx context.Context, rec status.Record, cur string) Finding {
	now := r.now()
	_, err := r.apply(ctx, rec.EventID, status.Update{
		Status:  status.DeadLettered,
		Reason:  r.missingText(cur),
		At:      now,
		Attempt: &status.Attempt{At: now, Outcome: status.OutcomeReconciled, Error: r.missingText(cur)},
	})
	switch {
	case errors.Is(err, status.ErrConflict):
		return r.finding(rec, cur, ActionMoved, "", nil)
	case err != nil:
		return r.finding(rec, cur, ActionStuck, "", fmt.Errorf("dead-letter: %w", err))
	}
	return r.finding(rec, cur, ActionDeadLettered, "", nil)
}

func (r *Reconciler) finding(rec status.Record, missing string, a Action, newTask string, err error) Finding {
	f := Finding{
		EventID:     rec.EventID,
		Status:      rec.Status,
		UpdatedAt:   rec.UpdatedAt,
		MissingTask: missing,
		Cause:       telemetry.ReconcileCauseTaskMissing,
		Why:         fmt.Sprintf("%s since %s and %s", rec.Status, rec.UpdatedAt.UTC().Format(time.RFC3339), r.missingText(missing)),
		Action:      a,
		NewTask:     newTask,
		TraceID:     rec.TraceID,
	}
	if err != nil {
		f.Error = err.Error()
	}
	return f
}

// report counts and logs one finding.
func (r *Reconciler) report(ctx context.Context, f Finding, dryRun bool) {
	switch f.Action {
	case ActionRequeued, ActionDeadLettered, ActionFound:
		r.records.Add(ctx, 1, metric.WithAttributes(
			attribute.String(telemetry.AttrCause, f.Cause), attribute.String(telemetry.AttrAction, string(f.Action))))
	}
	level, msg := slog.LevelWarn, "reconciler requeued an event whose task was gone"
	switch f.Action {
	case ActionDeadLettered:
		msg = "reconciler dead-lettered an event whose task was gone"
	case ActionFound:
		level, msg = slog.LevelInfo, "reconciler found an event whose task is gone (dry run)"
	case ActionAdopted:
		level, msg = slog.LevelInfo, "reconciler found the event's next task in the queue"
	case ActionMoved:
		level, msg = slog.LevelInfo, "reconciler left an event that moved on while checked"
	case ActionStuck:
		level, msg = slog.LevelError, "reconciler could not act on an event whose task is gone"
	}
	attrs := []any{"event_id", f.EventID, "trace_id", f.TraceID, "status", string(f.Status),
		"missing_task", f.MissingTask, "action", string(f.Action), "dry_run", dryRun}
	if f.NewTask != "" {
		attrs = append(attrs, "new_task", f.NewTask)
	}
	if f.Error != "" {
		attrs = append(attrs, "error", f.Error)
	}
	logging.FromContext(ctx).Log(ctx, level, msg, attrs...)
}

func (r *Reconciler) exists(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	return r.o.Inspector.TaskExists(ctx, name)
}

func (r *Reconciler) get(ctx context.Context, id string) (status.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	return r.o.Store.Get(ctx, id)
}

func (r *Reconciler) apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	return r.o.Store.Apply(ctx, id, u)
}

// enqueue sends rec's event as the task name, in the event's trace.
func (r *Reconciler) enqueue(ctx context.Context, rec status.Record, name string) error {
	body, err := rec.Event.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode the event: %w", err)
	}
	// Never send a body the dispatcher would drop as malformed.
	if ev, err := event.Parse(body); err != nil || ev.ID != rec.EventID {
		return fmt.Errorf("the record holds no valid event %s to send: %v", rec.EventID, err)
	}
	t := queue.Task{Name: name, Body: body, Header: http.Header{}}
	if tp := Traceparent(rec.TraceID); tp != "" {
		t.Header.Set("traceparent", tp)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	return r.o.Queue.Enqueue(ctx, t)
}

// Traceparent is a W3C traceparent in the trace traceID (32 hex digits)
// with a fresh parent span id, so a new task's deliveries join the event's
// trace; "" when traceID is not a trace id.
func Traceparent(traceID string) string {
	if len(traceID) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(traceID); err != nil || traceID == "00000000000000000000000000000000" {
		return ""
	}
	var span [8]byte
	_, _ = rand.Read(span[:])
	return "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-01"
}
