// Package governor adapts the queue's dispatch rate to a target that keeps
// rate limiting (ADR 0010). The dispatcher tells it the verdict of
// every target call (Observe); once a window (QUEUE_GOVERNOR_WINDOW, 10 s)
// it judges the calls seen and acts on the queue through queue.Controller:
//
//   - more than half of the calls failed (5xx, no answer) → open the
//     circuit breaker: the queue goes to the floor, probes the target at a
//     low rate for one window after QUEUE_GOVERNOR_BREAKER_OPEN, and goes
//     straight back to its rate once the probe passes (ADR 0013);
//   - more than 20 % of the calls rate limited → slow the queue to 80 % of
//     the rate the target accepted (multiplicative decrease), or back to
//     the last rate the target took in full, never below a floor, straight
//     to the floor on a long Retry-After;
//   - a window with no call rate limited → raise the rate: by 10 % of the
//     ceiling (additive increase) with many dispatcher instances, straight
//     to it on the embedded engine, whose queue pauses itself on each 429;
//     never above the ceiling: the rate ops gave the queue (ADR 0005);
//   - the live rate is not the one the governor set → ops changed it: the
//     governor adopts it as the ceiling, logs "governor stood down" and
//     holds off (QUEUE_GOVERNOR_HOLD).
//
// It slows and never pauses: a paused Cloud Tasks queue sends nothing, so no
// dispatcher would see the target recover, while a queue slowed to the floor
// keeps probing it with real deliveries.
//
// The rule is the pure Policy.Decide; Governor runs it (Run), keeps the
// counts (Observe, cheap and safe for concurrent use), logs each change
// ("queue slowed", "queue rate raised", "governor stood down", "circuit
// breaker opened", "circuit breaker half-open", "circuit breaker closed"),
// exports the live rate, the ceiling and the actions as metrics, and gives
// the ops page a Snapshot. With many dispatcher instances (Cloud Run), a
// Lease makes one of them the only writer.
package governor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// controlTimeout bounds one call to the queue's Controller.
const controlTimeout = 10 * time.Second

// Options configure a Governor.
type Options struct {
	// Control is the queue the governor reads and acts on. Required.
	Control queue.Controller
	// Config is the mode and the policy's knobs (zero fields: defaults).
	Config Config
	// Ceiling is the rate ops configured for the queue, in dispatches per
	// second. Zero takes the live rate the first time it is read (the GCP
	// case: ops own the live value). A Lease's stored ceiling wins over
	// both.
	Ceiling float64
	// Partial says this process sees only a share of the queue's
	// dispatches (one dispatcher instance of many); see Window.Partial.
	Partial bool
	// Lease, when set, makes this governor act only while it holds the
	// lease, and keeps the ceiling, the last rate set and the hold in the
	// lease so that the next holder goes on from them. Nil: this process
	// is the only governor (the embedded stack).
	Lease Lease
	// Holder names this governor in the lease (e.g. the instance id).
	Holder string
	// Queue names the governed queue in every log line (field "queue")
	// and in the Snapshot, uniquely across regions: on Cloud Tasks its
	// full resource name, projects/P/locations/L/queues/Q (each region has
	// a queue of the same short name, ADR 0006). Empty: not named.
	Queue string
	// MeterProvider records the gauges and the actions counter (nil: the
	// global one).
	MeterProvider metric.MeterProvider
	// now is the clock (tests).
	now func() time.Time
}

// Governor watches target calls and governs the queue's rate. Build it
// with New; call Observe for every target call and Run once.
type Governor struct {
	o      Options
	cfg    Config
	policy Policy

	counts counts

	// mu guards the state below; Observe never takes it.
	mu       sync.Mutex
	ceiling  float64
	lastRate float64
	hold     time.Time
	ready    bool // the ceiling is known
	taken    time.Time
	snap     Snapshot
	failing  bool // the last Control read failed (log once per run of failures)
	// leaseUntil is when the lease this governor last took expires: it
	// leads only until then (zero: it holds none).
	leaseUntil time.Time
	// good is Input.Good; breaker the circuit breaker's state.
	good    float64
	breaker Breaker

	actions metric.Int64Counter
	acts    map[Action]metric.AddOption
	stop    func() error
}

// counts are the calls seen since the last window, updated with atomics.
type counts struct {
	attempts, rateLimited, delivered, failed atomic.Int64
	maxRetryAfter                            atomic.Int64 // nanoseconds
	// held is the time the queue holds itself back after the rate-limited
	// calls seen (nanoseconds, the union of their pauses, some of which
	// may lie past the window's end); heldUntil is when the last pause
	// ends (unix nanoseconds). Counted only when not Partial.
	held, heldUntil atomic.Int64
}

// New checks o and builds a Governor, registering its instruments.
func New(ctx context.Context, o Options) (*Governor, error) {
	var errs []error
	if o.Control == nil {
		errs = append(errs, errors.New("a queue controller is required"))
	}
	if err := o.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Ceiling < 0 {
		errs = append(errs, fmt.Errorf("ceiling must be >= 0, got %v", o.Ceiling))
	}
	if o.Lease != nil && o.Holder == "" {
		errs = append(errs, errors.New("a lease needs a holder name"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("governor: %w", err)
	}
	if o.now == nil {
		o.now = time.Now
	}
	g := &Governor{o: o, cfg: o.Config.withDefaults(), policy: o.Config.Policy(), ceiling: o.Ceiling}
	g.ready = o.Ceiling > 0 && o.Lease == nil
	g.taken = o.now()
	g.snap = Snapshot{Queue: o.Queue, Enabled: g.cfg.Enabled(), Ceiling: o.Ceiling, Leader: o.Lease == nil, Window: g.cfg.Window}
	if err := g.instrument(o.MeterProvider); err != nil {
		return nil, err
	}
	return g, nil
}

// Observe records the verdict of one target call: kind is Classify's
// (delivered, rate_limited, retryable or permanent; anything else is not a
// target call and is ignored) and retryAfter the wait the target asked for.
// It is cheap and safe for concurrent use.
func (g *Governor) Observe(kind status.Outcome, retryAfter time.Duration) {
	switch kind {
	case status.OutcomeDelivered:
		g.counts.delivered.Add(1)
	case status.OutcomeRateLimited:
		g.counts.rateLimited.Add(1)
		for ra := int64(retryAfter); ; {
			cur := g.counts.maxRetryAfter.Load()
			if ra <= cur || g.counts.maxRetryAfter.CompareAndSwap(cur, ra) {
				break
			}
		}
		if !g.o.Partial {
			g.countHeld(g.o.now(), queueHold(retryAfter))
		}
	case status.OutcomeRetryable:
		g.counts.failed.Add(1)
	case status.OutcomePermanent:
	default:
		return
	}
	g.counts.attempts.Add(1)
}

// queueHold is how long the embedded queue pauses every dispatch after the
// dispatcher answered a rate-limited call: the Retry-After the dispatcher
// sends, the target's rounded up to whole seconds, at least 1 s.
func queueHold(retryAfter time.Duration) time.Duration {
	return max(time.Second, (retryAfter+time.Second-1)/time.Second*time.Second)
}

// countHeld counts the pause [now, now+d] the queue takes after a 429, adding
// only what does not overlap the pauses counted already.
func (g *Governor) countHeld(now time.Time, d time.Duration) {
	start, end := now.UnixNano(), now.Add(d).UnixNano()
	for {
		cur := g.counts.heldUntil.Load()
		if end <= cur {
			return
		}
		if g.counts.heldUntil.CompareAndSwap(cur, end) {
			g.counts.held.Add(end - max(start, cur))
			return
		}
	}
}

// take returns the calls seen since the last take and starts a new window.
func (g *Governor) take(now time.Time) Window {
	w := Window{
		Attempts:      int(g.counts.attempts.Swap(0)),
		RateLimited:   int(g.counts.rateLimited.Swap(0)),
		Delivered:     int(g.counts.delivered.Swap(0)),
		Failed:        int(g.counts.failed.Swap(0)),
		MaxRetryAfter: time.Duration(g.counts.maxRetryAfter.Swap(0)),
		Partial:       g.o.Partial,
	}
	// The part of the pauses that lies past now belongs to the next window.
	held := g.counts.held.Swap(0)
	if ahead := g.counts.heldUntil.Load() - now.UnixNano(); ahead > 0 {
		ahead = min(ahead, held)
		held -= ahead
		g.counts.held.Add(ahead)
	}
	w.Held = time.Duration(max(held, 0))
	g.mu.Lock()
	w.Span = now.Sub(g.taken)
	g.taken = now
	g.mu.Unlock()
	// A call counted between two swaps can make the parts disagree by one;
	// keep the window consistent.
	w.RateLimited = min(w.RateLimited, w.Attempts)
	w.Delivered = min(w.Delivered, w.Attempts-w.RateLimited)
	w.Failed = min(w.Failed, w.Attempts-w.RateLimited-w.Delivered)
	w.Held = min(w.Held, w.Span)
	return w
}

// Run judges a window every Config.Window until ctx is done, then returns
// nil (after giving the lease up, if it held one). With the mode off it
// only reads the queue's settings, for the gauges and the ops page.
func (g *Governor) Run(ctx context.Context) error {
	log := g.logger(ctx)
	log.InfoContext(ctx, "governor started", "mode", g.cfg.Mode, "window", g.cfg.Window.String(),
		"threshold", g.cfg.Threshold, "min_attempts", g.cfg.MinAttempts, "floor", g.cfg.Floor,
		"ceiling", g.o.Ceiling, "hold", g.cfg.Hold.String(), "lease", g.o.Lease != nil,
		"breaker_threshold", g.cfg.BreakerThreshold, "breaker_min_attempts", g.cfg.BreakerMinAttempts,
		"breaker_open", g.cfg.BreakerOpen.String())
	defer func() {
		if g.o.Lease != nil {
			g.mu.Lock()
			g.leaseUntil = time.Time{} // a stopped governor leads nothing
			g.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), controlTimeout)
			defer cancel()
			if err := g.o.Lease.Release(rctx, g.o.Holder); err != nil {
				log.WarnContext(ctx, "governor could not release its lease; it expires by itself", "error", err.Error())
			}
		}
	}()
	g.step(ctx, g.o.now(), true)
	tick := time.NewTicker(g.cfg.Window)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			g.step(ctx, g.o.now(), false)
		}
	}
}

// step runs one window: take the counts, hold the lease, read the queue,
// decide and act. first only reads (the counts of a window that started
// before Run are not judged).
func (g *Governor) step(ctx context.Context, now time.Time, first bool) {
	log := g.logger(ctx)
	w := g.take(now)

	if g.o.Lease != nil {
		st, held, err := g.acquire(ctx, now)
		switch {
		case err != nil:
			g.setErr(ctx, log, fmt.Errorf("lease: %w", err))
			return
		case !held:
			g.mu.Lock()
			g.snap.Leader, g.snap.Window, g.snap.Last = false, g.cfg.Window, w
			g.leaseUntil = time.Time{}
			// The holder's breaker and good rate are its own: taking the
			// lease back later starts from the stored state only.
			g.good, g.breaker = 0, Breaker{}
			g.mu.Unlock()
			return
		}
		g.mu.Lock()
		g.leaseUntil = now.Add(g.leaseTTL())
		g.mu.Unlock()
		g.adopt(st)
	}

	cctx, cancel := context.WithTimeout(ctx, controlTimeout)
	live, err := g.o.Control.Control(cctx)
	cancel()
	if err != nil {
		g.setErr(ctx, log, fmt.Errorf("read the queue's settings: %w", err))
		return
	}

	g.mu.Lock()
	if g.failing {
		log.InfoContext(ctx, "governor reads the queue again")
	}
	g.failing = false
	if !g.ready {
		g.ceiling, g.ready = live.Rate, true
	}
	if g.lastRate == 0 && live.By == queue.ByGovernor && live.Rate < g.ceiling && !sameRate(live.Rate, g.ceiling) {
		// The queue is still slowed by a governor before this one (a
		// restart): go on from there rather than stand down.
		g.lastRate = live.Rate
	}
	in := Input{Window: w, Live: live, Ceiling: g.ceiling, LastRate: g.lastRate, Now: now, HoldUntil: g.hold,
		Good: g.good, Breaker: g.breaker}
	g.mu.Unlock()

	d := Decision{Action: ActionNone, Reason: "first look"}
	switch {
	case !g.cfg.Enabled():
		d.Reason = "QUEUE_GOVERNOR=off: watching only"
	case !first:
		d = g.policy.Decide(in)
	}
	if d.Action.SetsRate() {
		cctx, cancel := context.WithTimeout(ctx, controlTimeout)
		err := g.o.Control.SetRate(cctx, d.Rate, queue.ByGovernor)
		cancel()
		if err != nil {
			log.ErrorContext(ctx, "governor could not set the queue's rate", "action", string(d.Action),
				"old_rate", live.Rate, "new_rate", d.Rate, "error", err.Error())
			g.setErr(ctx, nil, fmt.Errorf("set the rate to %s/s: %w", fmtRate(d.Rate), err))
			return
		}
	}

	g.mu.Lock()
	if d.Action.SetsRate() {
		g.lastRate = d.Rate
		live.Rate, live.By, live.At = d.Rate, queue.ByGovernor, now
	}
	if d.Action == ActionStandDown {
		g.ceiling, g.lastRate, g.hold = d.Rate, 0, now.Add(g.cfg.Hold)
	}
	if g.cfg.Enabled() && !first {
		g.good, g.breaker = NextGood(in, d), g.policy.NextBreaker(in, d)
	}
	g.snap = Snapshot{
		Queue:     g.o.Queue,
		Enabled:   g.cfg.Enabled(),
		Leader:    true,
		Live:      live,
		LiveAt:    now,
		Ceiling:   g.ceiling,
		Holding:   g.lastRate > 0 && g.lastRate < g.ceiling && !sameRate(g.lastRate, g.ceiling),
		HoldUntil: g.hold,
		Window:    g.cfg.Window,
		Last:      w,
		Decision:  d,
		Breaker:   g.breaker,
		ActedAt:   g.snap.ActedAt,
		Acted:     g.snap.Acted,
	}
	if d.Action != ActionNone {
		g.snap.Acted, g.snap.ActedAt = d, now
	}
	st := State{Ceiling: g.ceiling, LastRate: g.lastRate, HoldUntil: g.hold}
	hold := g.hold
	g.mu.Unlock()

	if g.o.Lease != nil {
		if err := g.save(ctx, st); err != nil {
			log.WarnContext(ctx, "governor could not save its state in the lease", "error", err.Error())
		}
	}
	g.report(ctx, log, d, live, in, w, hold)
}

// logger is ctx's logger, naming the queue when Options.Queue does.
func (g *Governor) logger(ctx context.Context) *slog.Logger {
	log := logging.FromContext(ctx)
	if g.o.Queue != "" {
		log = log.With("queue", g.o.Queue)
	}
	return log
}

// report logs a decision and counts an action.
func (g *Governor) report(ctx context.Context, log *slog.Logger, d Decision, live queue.Control, in Input, w Window, hold time.Time) {
	attrs := []any{
		"old_rate", in.Live.Rate, "new_rate", live.Rate, "ceiling", in.Ceiling,
		"rate_limited_share", w.RateLimitedShare(), "attempts", w.Attempts, "rate_limited", w.RateLimited,
		"delivered", w.Delivered, "failed", w.Failed, "retry_after_s", w.MaxRetryAfter.Seconds(),
		"held_s", w.Held.Seconds(), "by", queue.ByGovernor, "reason", d.Reason,
	}
	switch d.Action {
	case ActionBreakOpen:
		log.WarnContext(ctx, "circuit breaker opened", append(attrs, "failed_share", w.FailedShare(),
			"open_until", in.Now.Add(g.cfg.BreakerOpen).UTC().Format(time.RFC3339))...)
	case ActionBreakHalfOpen:
		log.InfoContext(ctx, "circuit breaker half-open", attrs...)
	case ActionBreakClose:
		log.InfoContext(ctx, "circuit breaker closed", append(attrs, "failed_share", w.FailedShare())...)
	case ActionSlow:
		log.WarnContext(ctx, "queue slowed", attrs...)
	case ActionRaise:
		log.InfoContext(ctx, "queue rate raised", attrs...)
	case ActionStandDown:
		log.WarnContext(ctx, "governor stood down", "live_rate", in.Live.Rate, "expected_rate", in.expected(),
			"new_ceiling", d.Rate, "changed_by", in.Live.By, "hold_until", hold.UTC().Format(time.RFC3339),
			"by", queue.ByGovernor, "reason", d.Reason)
	default:
		log.DebugContext(ctx, "governor: no change", attrs...)
		return
	}
	g.actions.Add(ctx, 1, g.acts[d.Action])
}

// setErr records a failed window for the snapshot, logging the first of a
// run of failures when log is set.
func (g *Governor) setErr(ctx context.Context, log *slog.Logger, err error) {
	g.mu.Lock()
	first := !g.failing
	g.failing = true
	g.snap.Err = err.Error()
	g.mu.Unlock()
	if log != nil && first && ctx.Err() == nil {
		log.WarnContext(ctx, "governor cannot judge this window; the queue is left as it is", "error", err.Error())
	}
}

// Snapshot is what the governor knows now, for the ops page.
type Snapshot struct {
	// Queue is Options.Queue: the governed queue's name ("" when not
	// named).
	Queue string `json:"queue,omitempty"`
	// Enabled is false with QUEUE_GOVERNOR=off (watching only).
	Enabled bool `json:"enabled"`
	// Leader is false while another instance holds the lease; the other
	// fields are then this instance's last view.
	Leader bool `json:"leader"`
	// Live is the queue's settings as last read (zero before the first
	// read), at LiveAt.
	Live   queue.Control `json:"live"`
	LiveAt time.Time     `json:"live_at"`
	// Ceiling is the rate ops gave the queue.
	Ceiling float64 `json:"ceiling"`
	// Holding is true while the governor holds the queue below the
	// ceiling.
	Holding bool `json:"holding"`
	// HoldUntil is when the governor acts again after standing down.
	HoldUntil time.Time `json:"hold_until"`
	// Window is the judging period; Last the last window judged.
	Window time.Duration `json:"window_ns"`
	Last   Window        `json:"last"`
	// Decision is the last window's; Acted the last one that was not
	// none, at ActedAt.
	Decision Decision  `json:"decision"`
	Acted    Decision  `json:"acted"`
	ActedAt  time.Time `json:"acted_at"`
	// Breaker is the circuit breaker's state: closed, open (the queue at
	// the floor until Breaker.Until) or half-open (probing).
	Breaker Breaker `json:"breaker"`
	// Err is why the last window could not be judged ("" when it was).
	Err string `json:"error,omitempty"`
}

// Snapshot returns the governor's current view. With a lease, Leader holds
// only until the lease it last took expires: a governor that could not
// renew in time (slow, failing, stopped) no longer claims to lead, so at
// any moment at most one instance does.
func (g *Governor) Snapshot() Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.snap
	if g.o.Lease != nil && !g.o.now().Before(g.leaseUntil) {
		s.Leader = false
	}
	return s
}

// Close unregisters the gauges.
func (g *Governor) Close() error {
	if g.stop == nil {
		return nil
	}
	return g.stop()
}

// instrument registers the live-rate, ceiling and paused gauges (read from
// the snapshot at each collection, reported only once the queue was read)
// and the actions counter.
func (g *Governor) instrument(mp metric.MeterProvider) error {
	if mp == nil {
		mp = telemetry.NewProviders().Meter
	}
	m := mp.Meter("eventrelay/internal/governor")
	rate, err1 := m.Float64ObservableGauge(telemetry.MetricQueueDispatchRate,
		metric.WithDescription("The queue's live maximum dispatch rate (the governor may hold it below the ceiling)."),
		metric.WithUnit("{task}/s"))
	ceiling, err2 := m.Float64ObservableGauge(telemetry.MetricQueueRateCeiling,
		metric.WithDescription("The dispatch rate ops gave the queue: the governor never goes above it."),
		metric.WithUnit("{task}/s"))
	paused, err3 := m.Int64ObservableGauge(telemetry.MetricQueuePaused,
		metric.WithDescription("1 while the queue is paused, else 0."))
	actions, err4 := m.Int64Counter(telemetry.MetricGovernorActions,
		metric.WithDescription("Changes the rate governor made or stood down for, by action."),
		metric.WithUnit("{action}"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("governor metrics: %w", err)
	}
	g.actions = actions
	g.acts = map[Action]metric.AddOption{}
	for _, a := range []Action{ActionSlow, ActionRaise, ActionStandDown, ActionBreakOpen, ActionBreakHalfOpen, ActionBreakClose} {
		g.acts[a] = metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.AttrAction, string(a))))
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := g.Snapshot()
		if s.LiveAt.IsZero() || !s.Leader {
			return nil
		}
		o.ObserveFloat64(rate, s.Live.Rate)
		o.ObserveFloat64(ceiling, s.Ceiling)
		var p int64
		if s.Live.Paused {
			p = 1
		}
		o.ObserveInt64(paused, p)
		return nil
	}, rate, ceiling, paused)
	if err != nil {
		return fmt.Errorf("governor metrics: %w", err)
	}
	g.stop = reg.Unregister
	return nil
}
