package opspage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
)

// Limits of GET /api/events.
const (
	DefaultEventsLimit = 20
	MaxEventsLimit     = 200
)

// spansTimeout bounds one span lookup; the page shows the event without its
// spans rather than wait longer.
const spansTimeout = 5 * time.Second

// maxTraces bounds how many distinct traces one event's lookup reads (the
// record's and its attempts'; normally one).
const maxTraces = 4

// Overview is the body of GET /api/overview.
type Overview struct {
	// SampleEveryMS is the sampling period; the page polls at this period.
	SampleEveryMS int64 `json:"sample_every_ms"`
	// Limit is the target's limit now (0: unknown).
	Limit float64 `json:"limit"`
	// HasQueue is false when the page has no queue stats to show.
	HasQueue bool `json:"has_queue"`
	// TotalsAt is when Totals were read.
	TotalsAt time.Time `json:"totals_at"`
	// Totals counts the records in each status (every status present).
	Totals map[status.Status]int64 `json:"totals"`
	// Received is the sum of Totals: every event the store knows.
	Received int64 `json:"received"`
	// Samples is the history, oldest first; empty until two readings.
	Samples []Sample `json:"samples"`
	// Error is the last sampling failure, empty when the last read worked.
	Error string `json:"error,omitempty"`
	// Rate is the queue's dispatch rate and the governor's state; absent
	// when the page has no RateSource.
	Rate *RateView `json:"rate,omitempty"`
	// Reconcile is the reconciler's last run; absent when the page has no
	// ReconcileSource.
	Reconcile *ReconcileView `json:"reconcile,omitempty"`
	// Shards is each shard's live dispatch settings and backlog, in shard
	// order; absent when the page has no ShardSource or the queue has one
	// shard.
	Shards []ShardView `json:"shards,omitempty"`
}

// ShardView is one shard of a sharded queue, as the rate card lists it.
type ShardView struct {
	// Name is the shard's engine queue.
	Name string `json:"name"`
	// Rate is its live dispatch rate, Burst its live token bucket size
	// (0 when its engine cannot tell), Paused whether it is paused; all
	// zero when Error says why they could not be read.
	Rate   float64 `json:"rate"`
	Burst  int     `json:"burst"`
	Paused bool    `json:"paused"`
	Error  string  `json:"error,omitempty"`
	// Backlog, InFlight and OldestAgeSeconds are its stats (the tasks it
	// holds, those being delivered, the age of its oldest); all zero when
	// StatsError says why they could not be read.
	Backlog          int64   `json:"backlog"`
	InFlight         int64   `json:"in_flight"`
	OldestAgeSeconds float64 `json:"oldest_age_s"`
	StatsError       string  `json:"stats_error,omitempty"`
}

// shardViews lists the shards' settings and stats, in the settings' order;
// nil for one shard or none. A shard missing from stats has a StatsError.
func shardViews(cs []shardedqueue.ShardControl, ss []queue.ShardStat) []ShardView {
	if len(cs) < 2 {
		return nil
	}
	stats := make(map[string]queue.ShardStat, len(ss))
	for _, s := range ss {
		stats[s.Name] = s
	}
	out := make([]ShardView, len(cs))
	for i, c := range cs {
		v := ShardView{Name: c.Name, Rate: c.Control.Rate, Burst: c.Control.Burst, Paused: c.Control.Paused}
		if c.Err != nil {
			v = ShardView{Name: c.Name, Error: c.Err.Error()}
		}
		switch st, ok := stats[c.Name]; {
		case !ok:
			v.StatsError = "the queue did not report this shard's stats"
		case st.Err != nil:
			v.StatsError = st.Err.Error()
		default:
			v.Backlog, v.InFlight, v.OldestAgeSeconds = st.Stats.Backlog, st.Stats.InFlight, st.Stats.OldestAge.Seconds()
		}
		out[i] = v
	}
	return out
}

// Governor states in RateView.Governor.
const (
	GovernorOn      = "on"      // it may slow and raise the queue
	GovernorOff     = "off"     // QUEUE_GOVERNOR=off: it only watches
	GovernorStandby = "standby" // another dispatcher instance holds the lease
)

// RateView is the queue's dispatch rate and what the rate governor does.
type RateView struct {
	// Live is the queue's live dispatch rate (0: not read yet) and Ceiling
	// the rate ops gave it, which the governor never exceeds.
	Live    float64 `json:"live"`
	Ceiling float64 `json:"ceiling"`
	// Burst is the queue's live token bucket size (over shards, the sum of
	// the shards'; 0: not read yet, or the engine cannot tell), and
	// FirstSecond is Live + Burst, the most the queue dispatches in the
	// first second after an idle spell (0 when Burst is).
	Burst       int     `json:"burst"`
	FirstSecond float64 `json:"first_second,omitempty"`
	Paused      bool    `json:"paused"`
	// Governor is one of the Governor* states.
	Governor string `json:"governor"`
	// Holding is true while the governor holds the queue below the ceiling.
	Holding bool `json:"holding"`
	// Breaker is the governor's circuit breaker: closed, open (the queue
	// held at the floor until BreakerUntil) or half_open (probing the
	// target). BreakerSince is when it entered that state (absent when it
	// never opened).
	Breaker      governor.BreakerState `json:"breaker"`
	BreakerSince *time.Time            `json:"breaker_since,omitempty"`
	BreakerUntil *time.Time            `json:"breaker_until,omitempty"`
	// Banner says, in a sentence or two, why the queue runs below its
	// ceiling or not at all (paused, breaker open, governor holding,
	// governor stood down for ops) and what an operator can do; empty when it runs normally.
	Banner string `json:"banner,omitempty"`
	// Decision is the governor's reading of its last window.
	Decision string `json:"decision,omitempty"`
	// Error is why the governor could not read or change the queue.
	Error string `json:"error,omitempty"`
}

// rateView turns the governor's snapshot into what the page shows.
func rateView(s governor.Snapshot, now time.Time) *RateView {
	v := &RateView{
		Ceiling:  s.Ceiling,
		Paused:   s.Live.Paused,
		Governor: GovernorOn,
		Holding:  s.Enabled && s.Holding,
		Decision: s.Decision.Reason,
		Error:    s.Err,
		Breaker:  governor.BreakerClosed,
	}
	if !s.LiveAt.IsZero() {
		v.Live, v.Burst = s.Live.Rate, s.Live.Burst
	}
	if v.Burst > 0 {
		v.FirstSecond = v.Live + float64(v.Burst)
	}
	if s.Breaker.State != "" {
		v.Breaker = s.Breaker.State
	}
	if !s.Breaker.Since.IsZero() {
		v.BreakerSince = &s.Breaker.Since
	}
	breakerOpen := v.Breaker == governor.BreakerOpenState
	if breakerOpen && !s.Breaker.Until.IsZero() {
		v.BreakerUntil = &s.Breaker.Until
	}
	switch {
	case !s.Enabled:
		v.Governor = GovernorOff
	case !s.Leader:
		v.Governor = GovernorStandby
	}
	switch {
	case v.Paused:
		by := ""
		if s.Live.By != "" {
			by = " by " + s.Live.By
		}
		v.Banner = "The queue is paused" + by + ": nothing is dispatched until it is resumed (relayctl queue resume)."
	case breakerOpen:
		v.Banner = fmt.Sprintf("The circuit breaker is open since %s: the target failed most calls (%s). "+
			"The rate governor holds the queue at %s/s until %s, then probes the target for one window. "+
			"Override with relayctl queue rate N; turn it off with QUEUE_GOVERNOR=off.",
			clock(s.Breaker.Since), s.Acted.Reason, fmtRate(v.Live), clock(s.Breaker.Until))
	case v.Holding:
		v.Banner = fmt.Sprintf("The rate governor holds the queue at %s/s, below its ceiling of %s/s, because the target "+
			"keeps rate limiting (last change %s: %s). It raises the rate step by step as the target recovers. "+
			"Override with relayctl queue rate N; turn it off with QUEUE_GOVERNOR=off.",
			fmtRate(v.Live), fmtRate(v.Ceiling), clock(s.ActedAt), s.Acted.Reason)
	case s.Enabled && now.Before(s.HoldUntil):
		v.Banner = fmt.Sprintf("The rate governor stood down: the rate was changed by hand to %s/s, now its ceiling. "+
			"It leaves the queue alone until %s.", fmtRate(v.Ceiling), clock(s.HoldUntil))
	}
	return v
}

// MaxReconcileFindings bounds the findings the reconciler panel shows.
const MaxReconcileFindings = 20

// ReconcileActions are the reconciler's actions, in the order the page
// counts them.
var ReconcileActions = []reconcile.Action{
	reconcile.ActionRequeued, reconcile.ActionDeadLettered, reconcile.ActionFound,
	reconcile.ActionAdopted, reconcile.ActionStuck, reconcile.ActionMoved,
}

// ReconcileView is the reconciler's last run, as the page shows it.
type ReconcileView struct {
	// Ran is false until the reconciler's first run; the fields below are
	// then zero.
	Ran bool `json:"ran"`
	// Finished is when the last run ended, Took how long it ran.
	Finished time.Time     `json:"finished"`
	Took     time.Duration `json:"took_ns"`
	// Grace is how long a record must be left alone before it is checked;
	// Policy what is done when its task is gone (requeue, dead_letter).
	Grace  time.Duration    `json:"grace_ns"`
	Policy reconcile.Policy `json:"policy"`
	DryRun bool             `json:"dry_run"`
	// Read counts the records the run read.
	Read int `json:"read"`
	// Counts is the number of findings by action (every action present).
	Counts map[reconcile.Action]int `json:"counts"`
	// Total is the number of findings; Findings the first
	// MaxReconcileFindings of them, in the reconciler's order.
	Total    int                 `json:"total"`
	Findings []reconcile.Finding `json:"findings"`
	// Error is why the run stopped early.
	Error string `json:"error,omitempty"`
}

// reconcileView turns the reconciler's last report into what the page
// shows.
func reconcileView(rep reconcile.Report, ran bool) *ReconcileView {
	v := &ReconcileView{Counts: make(map[reconcile.Action]int, len(ReconcileActions)), Findings: []reconcile.Finding{}}
	for _, a := range ReconcileActions {
		v.Counts[a] = 0
	}
	if !ran {
		return v
	}
	v.Ran, v.Finished, v.Grace, v.Policy, v.DryRun, v.Read, v.Error =
		true, rep.Finished, rep.Grace, rep.Policy, rep.DryRun, rep.Read, rep.Err
	if !rep.Finished.IsZero() && rep.Finished.After(rep.Started) {
		v.Took = rep.Finished.Sub(rep.Started)
	}
	for a, n := range rep.Counts {
		v.Counts[a] = n
		v.Total += n
	}
	v.Findings = append(v.Findings, rep.Findings[:min(len(rep.Findings), MaxReconcileFindings)]...)
	return v
}

// fmtRate formats a rate as the page shows it: 2.4, 10, 0.05.
func fmtRate(r float64) string { return strconv.FormatFloat(r, 'g', 4, 64) }

// EventSummary is one row of the recent-events table.
type EventSummary struct {
	EventID     string         `json:"event_id"`
	Status      status.Status  `json:"status"`
	Name        string         `json:"name"`
	ReceivedAt  time.Time      `json:"received_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	DeliveredAt *time.Time     `json:"delivered_at,omitempty"`
	Attempts    int            `json:"attempts"`
	LastOutcome status.Outcome `json:"last_outcome,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	TraceID     string         `json:"trace_id,omitempty"`
}

// EventList is the body of GET /api/events.
type EventList struct {
	// Status is the filter applied; empty means any.
	Status status.Status  `json:"status,omitempty"`
	Limit  int            `json:"limit"`
	Events []EventSummary `json:"events"`
}

// Timeline entry kinds.
const (
	KindReceived     = "received"
	KindAttempt      = "attempt"
	KindDelivered    = "delivered"
	KindFailed       = "failed"
	KindDeadLettered = "dead_lettered"
)

// TimelineEntry is one step of an event's life.
type TimelineEntry struct {
	At time.Time `json:"at"`
	// Kind is one of the Kind* constants.
	Kind string `json:"kind"`
	// Attempt, Outcome, HTTPStatus, Duration and Error describe an attempt.
	Attempt    int            `json:"attempt,omitempty"`
	Outcome    status.Outcome `json:"outcome,omitempty"`
	HTTPStatus int            `json:"http_status,omitempty"`
	Duration   time.Duration  `json:"duration_ns,omitempty"`
	Error      string         `json:"error,omitempty"`
	// Detail is a short human note: the delivery lag, or the reason for
	// failed and dead-lettered.
	Detail string `json:"detail,omitempty"`
}

// SpanNode is a span placed in its trace's tree: Depth 0 is a root (no
// parent, or a parent the source did not return).
type SpanNode struct {
	Span
	Depth int `json:"depth"`
}

// EventDetail is the body of GET /api/events/{id}.
type EventDetail struct {
	Record   status.Record   `json:"record"`
	Timeline []TimelineEntry `json:"timeline"`
	// Spans is null when the page has no span source, else the spans of
	// the event's trace in depth-first order (children by start time).
	Spans []SpanNode `json:"spans"`
	// SpansError says why spans could not be read; the rest still shows.
	SpansError string `json:"spans_error,omitempty"`
	// TraceURL links to the trace in a trace viewer, when configured.
	TraceURL string `json:"trace_url,omitempty"`
}

// overview builds the overview from the sampler's state, reading the counts
// itself only when the sampler has not read them yet.
func (p *Page) overview(ctx context.Context) (Overview, error) {
	snap := p.snapshot()
	if snap.countsAt.IsZero() {
		c, err := p.o.Store.Counts(ctx)
		if err != nil {
			return Overview{}, err
		}
		snap.counts, snap.countsAt = c, time.Now()
	}
	ov := Overview{
		SampleEveryMS: p.o.SampleEvery.Milliseconds(),
		Limit:         p.limit(),
		HasQueue:      p.o.Queue != nil,
		TotalsAt:      snap.countsAt,
		Totals:        make(map[status.Status]int64, len(status.All)),
		Samples:       snap.samples,
	}
	for _, s := range status.All {
		ov.Totals[s] = snap.counts[s]
		ov.Received += snap.counts[s]
	}
	if snap.err != nil {
		ov.Error = snap.err.Error()
	}
	if p.o.Rate != nil {
		ov.Rate = rateView(p.o.Rate.Snapshot(), time.Now())
	}
	if p.o.Reconcile != nil {
		ov.Reconcile = reconcileView(p.o.Reconcile.Snapshot())
	}
	if p.o.Shards != nil {
		// Both read every shard; in parallel, the page waits for the slower.
		var (
			cs []shardedqueue.ShardControl
			ss []queue.ShardStat
			wg sync.WaitGroup
		)
		wg.Go(func() { ss = p.o.Shards.ShardStats(ctx) })
		cs = p.o.Shards.ShardControls(ctx)
		wg.Wait()
		ov.Shards = shardViews(cs, ss)
	}
	return ov, nil
}

// errBadQuery is a query parameter problem; its message is shown as is.
type errBadQuery struct{ slug, msg string }

func (e *errBadQuery) Error() string { return e.msg }

// parseEventsQuery reads ?status=S&limit=N.
func parseEventsQuery(q url.Values) (status.Query, error) {
	out := status.Query{Limit: DefaultEventsLimit}
	if s := q.Get("status"); s != "" {
		st := status.Status(s)
		if !st.Valid() {
			return out, &errBadQuery{SlugInvalidStatus, "status must be one of queued, delivering, retrying, delivered, failed, dead_lettered"}
		}
		out.Status = st
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEventsLimit {
			return out, &errBadQuery{SlugInvalidLimit, "limit must be an integer from 1 to " + strconv.Itoa(MaxEventsLimit)}
		}
		out.Limit = n
	}
	return out, nil
}

func (p *Page) events(ctx context.Context, q status.Query) (EventList, error) {
	recs, err := p.o.Store.List(ctx, q)
	if err != nil {
		return EventList{}, err
	}
	out := EventList{Status: q.Status, Limit: q.Limit, Events: make([]EventSummary, 0, len(recs))}
	for _, r := range recs {
		out.Events = append(out.Events, summarize(r))
	}
	return out, nil
}

func summarize(r status.Record) EventSummary {
	s := EventSummary{
		EventID:     r.EventID,
		Status:      r.Status,
		Name:        r.Event.Name,
		ReceivedAt:  r.ReceivedAt,
		UpdatedAt:   r.UpdatedAt,
		DeliveredAt: r.DeliveredAt,
		Attempts:    len(r.Attempts),
		Reason:      r.Reason,
		TraceID:     r.TraceID,
	}
	if n := len(r.Attempts); n > 0 {
		s.LastOutcome = r.Attempts[n-1].Outcome
	}
	return s
}

// detail builds the lookup of one event; status.ErrNotFound passes through.
func (p *Page) detail(ctx context.Context, id string) (EventDetail, error) {
	rec, err := p.o.Store.Get(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	if rec.Attempts == nil {
		rec.Attempts = []status.Attempt{}
	}
	d := EventDetail{Record: rec, Timeline: Timeline(rec)}
	traces := traceIDs(rec)
	if p.o.TraceURL != nil && len(traces) > 0 {
		d.TraceURL = safeURL(p.o.TraceURL(traces[0]))
	}
	if p.o.Spans != nil {
		d.Spans = []SpanNode{}
		if len(traces) > 0 {
			sctx, cancel := context.WithTimeout(ctx, spansTimeout)
			defer cancel()
			var all []Span
			var errs []error
			for _, t := range traces {
				spans, err := p.o.Spans.Spans(sctx, t)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				all = append(all, spans...)
			}
			d.Spans = SpanTree(all)
			if err := errors.Join(errs...); err != nil {
				d.SpansError = "spans could not be read: " + err.Error()
			}
		}
	}
	return d, nil
}

// traceIDs lists the record's trace and its attempts' other traces, the
// record's first, at most maxTraces.
func traceIDs(r status.Record) []string {
	var out []string
	add := func(t string) {
		if t != "" && len(out) < maxTraces && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	add(r.TraceID)
	for _, a := range r.Attempts {
		add(a.TraceID)
	}
	return out
}

// safeURL returns u if it is an absolute http(s) URL, else "": a link built
// by configuration must never become a javascript: URL.
func safeURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return ""
	}
	return u
}

// Timeline lists the steps of r: received, every attempt in the order
// recorded, then delivered, failed or dead-lettered when r is terminal.
func Timeline(r status.Record) []TimelineEntry {
	out := []TimelineEntry{{At: r.ReceivedAt, Kind: KindReceived}}
	for _, a := range r.Attempts {
		out = append(out, TimelineEntry{
			At:         a.At,
			Kind:       KindAttempt,
			Attempt:    a.Number,
			Outcome:    a.Outcome,
			HTTPStatus: a.HTTPStatus,
			Duration:   a.Duration,
			Error:      a.Error,
		})
	}
	switch r.Status {
	case status.Delivered:
		at := r.UpdatedAt
		if r.DeliveredAt != nil {
			at = *r.DeliveredAt
		}
		out = append(out, TimelineEntry{At: at, Kind: KindDelivered,
			Detail: "after " + at.Sub(r.ReceivedAt).Round(time.Millisecond).String()})
	case status.Failed:
		out = append(out, TimelineEntry{At: r.UpdatedAt, Kind: KindFailed, Detail: r.Reason})
	case status.DeadLettered:
		out = append(out, TimelineEntry{At: r.UpdatedAt, Kind: KindDeadLettered, Detail: r.Reason})
	}
	return out
}

// SpanTree orders spans depth first: roots (no parent, or a parent not in
// spans) by start time, each followed by its children by start time. A span
// seen twice (same span id) is kept once; spans caught in a parent cycle are
// appended as roots, so none is lost.
func SpanTree(spans []Span) []SpanNode {
	byID := make(map[string]Span, len(spans))
	var uniq []Span
	for _, s := range spans {
		if _, dup := byID[s.SpanID]; dup {
			continue
		}
		byID[s.SpanID] = s
		uniq = append(uniq, s)
	}
	slices.SortStableFunc(uniq, func(a, b Span) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Name, b.Name), cmp.Compare(a.SpanID, b.SpanID))
	})
	children := make(map[string][]Span)
	var roots []Span
	for _, s := range uniq {
		if _, ok := byID[s.ParentID]; s.ParentID == "" || s.ParentID == s.SpanID || !ok {
			roots = append(roots, s)
			continue
		}
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	out := make([]SpanNode, 0, len(uniq))
	seen := make(map[string]bool, len(uniq))
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		if seen[s.SpanID] {
			return
		}
		seen[s.SpanID] = true
		out = append(out, SpanNode{Span: s, Depth: depth})
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	for _, s := range uniq {
		walk(s, 0) // only spans in a cycle are left
	}
	return out
}
