// Package opspage is the live operations page: one HTML page, with a small
// script and no front-end build, that shows whether the target is being fed
// at its limit (received/s and delivered/s against the limit line), how big
// the backlog is and how old its oldest task, the failed and dead-lettered
// totals, the most recent events, and — for one event id — its timeline and
// spans. It reads only the status store and, when given one, the queue's
// stats, so it runs the same against the embedded and the GCP engines. Given
// the rate governor (Options.Rate), it also shows the queue's live dispatch
// rate beside its ceiling, and a banner while the governor holds the queue
// below the ceiling, its circuit breaker is open, ops paused it, or the
// governor stood down for ops, and, given a sharded queue (Options.Shards),
// each shard's live rate, backlog, tasks in flight and oldest age. Given the reconciler (Options.Reconcile), it
// shows the reconciler's last run and the records it found without a task.
//
// A Page has two halves: Run, a sampler that reads the totals every
// SampleEvery into a bounded history, and Handler, which serves the page and
// the JSON it polls:
//
//	GET /                     the page (server-rendered; ?event=ID shows that event)
//	GET /static/...           its stylesheet and script (embedded)
//	GET /api/overview         samples and current totals
//	GET /api/events           recent events, newest first (?status=S&limit=N)
//	GET /api/events/{id}      one event: record, timeline, spans, trace URL
//
// Everything it answers besides the page is JSON; every error is an RFC 9457
// problem with a stable slug (the Slug* constants).
package opspage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"eventrelay/internal/governor"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
)

// Defaults for Options.
const (
	DefaultSampleEvery = time.Second
	DefaultHistory     = 300
)

// Options configure a Page.
type Options struct {
	// Store is the status store the page reads. Required.
	Store status.Store
	// Queue reports the backlog; nil hides the backlog chart's data (the
	// page says the queue reports no stats).
	Queue queue.StatsReader
	// Limit returns the target's limit in events/s, drawn as the limit line;
	// nil (or a value <= 0) draws no line.
	Limit func() float64
	// Rate reports the queue's live dispatch rate and what the rate
	// governor does (*governor.Governor is one); nil shows neither.
	Rate RateSource
	// Reconcile reports the reconciler's last run (*reconcile.Reconciler
	// is one); nil shows no reconciler panel.
	Reconcile ReconcileSource
	// Shards reports each shard's live dispatch settings and stats when
	// the queue is sharded (*shardedqueue.Queue is one); nil, or a single
	// shard, shows no shard table.
	Shards ShardSource
	// Spans looks up the spans of an event's trace; nil shows none.
	Spans SpanSource
	// TraceURL builds a link to a trace viewer (e.g. Cloud Trace) from a
	// trace id; nil shows no link. Only http and https URLs are shown.
	TraceURL func(traceID string) string
	// SampleEvery is the sampling period, and the page's polling period;
	// zero means DefaultSampleEvery.
	SampleEvery time.Duration
	// History is how many samples are kept (the charts' width); zero means
	// DefaultHistory.
	History int
}

// RateSource reports the queue's live dispatch settings as the rate
// governor last read them, and what it did about them.
type RateSource interface {
	Snapshot() governor.Snapshot
}

// ReconcileSource reports the reconciler's last run: its report (with its
// first findings) and whether it has run yet.
type ReconcileSource interface {
	Snapshot() (reconcile.Report, bool)
}

// ShardSource reports the live dispatch settings and the stats of each of
// the queue's shards (*shardedqueue.Queue is one); a shard that cannot
// answer has its error in Err.
type ShardSource interface {
	ShardControls(ctx context.Context) []shardedqueue.ShardControl
	queue.ShardStatsReader
}

var _ ShardSource = (*shardedqueue.Queue)(nil)

// SpanSource looks up the spans of one trace, e.g. from an in-process span
// recorder in relayctl dev or from Cloud Trace.
type SpanSource interface {
	// Spans returns the spans of the trace, in any order. An unknown trace
	// is an empty result, not an error.
	Spans(ctx context.Context, traceID string) ([]Span, error)
}

// Span is one span of an event's trace, as the page shows it.
type Span struct {
	TraceID    string            `json:"trace_id"`
	SpanID     string            `json:"span_id"`
	ParentID   string            `json:"parent_id,omitempty"`
	Name       string            `json:"name"`
	Service    string            `json:"service,omitempty"`
	Start      time.Time         `json:"start"`
	Duration   time.Duration     `json:"duration_ns"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Status is the span's status: "", "ok" or "error" (with a message
	// after a colon if the source has one).
	Status string `json:"status,omitempty"`
}

// Sample is the pipeline's state at one moment.
type Sample struct {
	At time.Time `json:"at"`
	// ReceivedPerSecond is the growth of the number of status records (any
	// status) since the previous sample, per second.
	ReceivedPerSecond float64 `json:"received_per_s"`
	// DeliveredPerSecond is the growth of the delivered records, per second.
	DeliveredPerSecond float64 `json:"delivered_per_s"`
	// Limit is the target's limit at that moment (0: unknown).
	Limit float64 `json:"limit"`
	// DispatchRate is the queue's live dispatch rate at that moment, which
	// the governor may hold below the limit (0: unknown).
	DispatchRate float64 `json:"dispatch_rate"`
	// Backlog, InFlight and OldestAgeSeconds are the queue's stats; zero
	// when the page has no queue or its stats could not be read.
	Backlog          int64   `json:"backlog"`
	InFlight         int64   `json:"in_flight"`
	OldestAgeSeconds float64 `json:"oldest_age_s"`
	// Received, Delivered, Failed and DeadLettered are totals in the store.
	Received     int64 `json:"received"`
	Delivered    int64 `json:"delivered"`
	Failed       int64 `json:"failed"`
	DeadLettered int64 `json:"dead_lettered"`
}

// Page is the ops page: a sampler (Run) and its HTTP handler (Handler).
type Page struct {
	o Options

	mu        sync.Mutex
	ring      []Sample // oldest at next once len(ring) == o.History
	next      int
	counts    map[status.Status]int64 // at the last successful read
	countsAt  time.Time
	prev      *tally // baseline for the next rates
	sampleErr error  // the last sampling failure, nil after a success
}

type tally struct {
	at                                time.Time
	received, delivered, failed, dead int64
}

// New checks o and builds a Page. Call Run to start sampling and serve
// Handler.
func New(o Options) (*Page, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("a status store is required"))
	}
	if o.SampleEvery < 0 {
		errs = append(errs, fmt.Errorf("sample period must be >= 0, got %v", o.SampleEvery))
	}
	if o.History < 0 {
		errs = append(errs, fmt.Errorf("history must be >= 0, got %d", o.History))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("opspage: %w", err)
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = DefaultSampleEvery
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	return &Page{o: o, ring: make([]Sample, 0, o.History)}, nil
}

// Run samples every SampleEvery until ctx is done, then returns nil. A
// failed read is logged (once per run of failures) and shown on the page;
// sampling goes on.
func (p *Page) Run(ctx context.Context) error {
	tick := time.NewTicker(p.o.SampleEvery)
	defer tick.Stop()
	p.sampleAndLog(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			p.sampleAndLog(ctx, now)
		}
	}
}

func (p *Page) sampleAndLog(ctx context.Context, now time.Time) {
	p.mu.Lock()
	failing := p.sampleErr != nil
	p.mu.Unlock()
	err := p.sample(ctx, now)
	log := logging.FromContext(ctx)
	switch {
	case err != nil && !failing && ctx.Err() == nil:
		log.WarnContext(ctx, "ops page sampling failed", "error", err.Error())
	case err == nil && failing:
		log.InfoContext(ctx, "ops page sampling recovered")
	}
}

// sample reads the store's counts and the queue's stats at now and appends a
// sample with the rates since the previous one. The first successful read
// only sets the baseline: a rate needs two readings. A failed Counts read
// appends nothing; a failed Stats read appends the sample with zero queue
// fields. Either failure is returned and kept for the page to show.
func (p *Page) sample(ctx context.Context, now time.Time) error {
	counts, err := p.o.Store.Counts(ctx)
	if err != nil {
		err = fmt.Errorf("read status counts: %w", err)
		p.setErr(err)
		return err
	}
	var st queue.Stats
	var stErr error
	if p.o.Queue != nil {
		if st, stErr = p.o.Queue.Stats(ctx); stErr != nil {
			st = queue.Stats{}
			stErr = fmt.Errorf("read queue stats: %w", stErr)
		}
	}
	cur := tallyOf(counts, now)
	limit := p.limit()
	var dispatchRate float64
	if p.o.Rate != nil {
		if snap := p.o.Rate.Snapshot(); !snap.LiveAt.IsZero() {
			dispatchRate = snap.Live.Rate
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts, p.countsAt = counts, now
	p.sampleErr = stErr
	prev := p.prev
	p.prev = &cur
	if prev == nil {
		return stErr
	}
	s := Sample{
		At:               now,
		Limit:            limit,
		DispatchRate:     dispatchRate,
		Backlog:          st.Backlog,
		InFlight:         st.InFlight,
		OldestAgeSeconds: st.OldestAge.Seconds(),
		Received:         cur.received,
		Delivered:        cur.delivered,
		Failed:           cur.failed,
		DeadLettered:     cur.dead,
	}
	if secs := now.Sub(prev.at).Seconds(); secs > 0 {
		s.ReceivedPerSecond = rate(cur.received-prev.received, secs)
		s.DeliveredPerSecond = rate(cur.delivered-prev.delivered, secs)
	}
	p.push(s)
	return stErr
}

// rate is n per secs, never negative (a store that was emptied under a
// running page shows 0, not a negative rate).
func rate(n int64, secs float64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(n) / secs
}

func tallyOf(c map[status.Status]int64, at time.Time) tally {
	t := tally{at: at}
	for _, n := range c {
		t.received += n
	}
	t.delivered, t.failed, t.dead = c[status.Delivered], c[status.Failed], c[status.DeadLettered]
	return t
}

func (p *Page) setErr(err error) {
	p.mu.Lock()
	p.sampleErr = err
	p.mu.Unlock()
}

// push appends s to the ring; p.mu is held.
func (p *Page) push(s Sample) {
	if len(p.ring) < p.o.History {
		p.ring = append(p.ring, s)
		return
	}
	p.ring[p.next] = s
	p.next = (p.next + 1) % p.o.History
}

// snapshot is what the sampler knows, copied under the lock.
type snapshot struct {
	samples  []Sample // oldest first
	counts   map[status.Status]int64
	countsAt time.Time
	err      error
}

func (p *Page) snapshot() snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Sample, 0, len(p.ring))
	out = append(out, p.ring[p.next:]...)
	out = append(out, p.ring[:p.next]...)
	counts := make(map[status.Status]int64, len(p.counts))
	for k, v := range p.counts {
		counts[k] = v
	}
	return snapshot{samples: out, counts: counts, countsAt: p.countsAt, err: p.sampleErr}
}

func (p *Page) limit() float64 {
	if p.o.Limit == nil {
		return 0
	}
	if l := p.o.Limit(); l > 0 {
		return l
	}
	return 0
}
