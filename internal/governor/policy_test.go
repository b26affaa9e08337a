package governor

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/queue"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	p := Config{}.Policy()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ten := 10 * time.Second
	// storm: 100 calls in 10 s, 60 rate limited, 40 delivered (4/s).
	storm := Window{Span: ten, Attempts: 100, RateLimited: 60, Delivered: 40, MaxRetryAfter: time.Second}
	clean := Window{Span: ten, Attempts: 50, Delivered: 50}
	partialClean := Window{Span: ten, Attempts: 50, Delivered: 50, Partial: true}
	live := func(rate float64) queue.Control { return queue.Control{Rate: rate} }

	cases := []struct {
		name string
		in   Input
		want Decision
		// reasonHas must appear in the reason.
		reasonHas string
	}{
		{
			name: "storm slows to 80 % of the accepted rate",
			in:   Input{Window: storm, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionSlow, Rate: 3.2}, reasonHas: "60% of 100",
		},
		{
			name: "delivered above the live rate: the delivered share of the live rate bounds the estimate",
			in:   Input{Window: Window{Span: ten, Attempts: 200, RateLimited: 50, Delivered: 150}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionSlow, Rate: 6}, // 10 × 150/200 × 0.8
		},
		{
			name: "the time the queue held itself back after 429s is not the target's: accepted over the dispatching time",
			// 3 s of the 10 paused after the 429s; 35 accepted over the 7 s
			// the queue dispatched.
			in:   Input{Window: Window{Span: ten, Attempts: 50, RateLimited: 15, Delivered: 35, Held: 3 * time.Second}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionSlow, Rate: 4}, // min(10 × 35/50, 35/7) × 0.8; not 35/10 × 0.8
		},
		{
			name: "far above the target's limit, pauses fill the window: the delivered share bounds the estimate",
			// 100/s against a target taking 10/s with a burst of 1: each
			// 1 s pause ends with one call taken and the next refused 10 ms
			// later, so the dispatching time alone says 100/s.
			in:   Input{Window: Window{Span: ten, Attempts: 20, RateLimited: 10, Delivered: 10, Held: ten - 100*time.Millisecond}, Live: live(100), Ceiling: 100, Now: now},
			want: Decision{Action: ActionSlow, Rate: 40}, // 100 × 10/20 × 0.8
		},
		{
			name: "a storm above the last good rate goes back to it",
			in:   Input{Window: storm, Live: live(10), Ceiling: 10, LastRate: 10, Good: 4.5, Now: now},
			want: Decision{Action: ActionSlow, Rate: 4.5}, reasonHas: "last rate the target took in full",
		},
		{
			name: "a storm at the last good rate: the estimate again",
			in:   Input{Window: storm, Live: live(4.5), Ceiling: 10, LastRate: 4.5, Good: 4.5, Now: now},
			want: Decision{Action: ActionSlow, Rate: 1.44}, // 4.5 × 0.4 × 0.8
		},
		{
			name: "a long Retry-After goes to the floor, whatever the good rate",
			in: Input{Window: Window{Span: ten, Attempts: 100, RateLimited: 30, Delivered: 70, MaxRetryAfter: time.Minute},
				Live: live(10), Ceiling: 10, Good: 5, Now: now},
			want: Decision{Action: ActionSlow, Rate: 1}, reasonHas: "Retry-After 1m0s",
		},
		{
			name: "a partial window estimates the accepted rate from the delivered share",
			in: Input{Window: Window{Span: ten, Attempts: 40, RateLimited: 30, Delivered: 10, Partial: true},
				Live: live(100), Ceiling: 100, Now: now},
			want: Decision{Action: ActionSlow, Rate: 20}, // 100 × 10/40 × 0.8
		},
		{
			name: "nothing accepted goes to the floor",
			in:   Input{Window: Window{Span: ten, Attempts: 30, RateLimited: 30}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionSlow, Rate: 1},
		},
		{
			name: "a long Retry-After goes to the floor",
			in: Input{Window: Window{Span: ten, Attempts: 100, RateLimited: 30, Delivered: 70, MaxRetryAfter: time.Minute},
				Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionSlow, Rate: 1}, reasonHas: "Retry-After 1m0s",
		},
		{
			name: "already at the floor: no change",
			in:   Input{Window: storm, Live: live(1), Ceiling: 10, LastRate: 1, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "floor",
		},
		{
			name: "ops set the rate below the floor: never slowed further, never raised by a slow",
			in:   Input{Window: storm, Live: live(0.5), Ceiling: 0.5, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "floor",
		},
		{
			name: "exactly at the threshold is not above it",
			in:   Input{Window: Window{Span: ten, Attempts: 100, RateLimited: 20, Delivered: 80}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "ceiling",
		},
		{
			name: "too few calls to slow",
			in:   Input{Window: Window{Span: ten, Attempts: 19, RateLimited: 19}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "too few",
		},
		{
			name: "seeing every dispatch, a clean window below the ceiling raises straight to it",
			in:   Input{Window: clean, Live: live(3.2), Ceiling: 10, LastRate: 3.2, Now: now},
			want: Decision{Action: ActionRaise, Rate: 10}, reasonHas: "back to the ceiling",
		},
		{
			name: "a partial clean window below the ceiling raises by 10 % of the ceiling",
			in:   Input{Window: partialClean, Live: live(3.2), Ceiling: 10, LastRate: 3.2, Now: now},
			want: Decision{Action: ActionRaise, Rate: 4.2},
		},
		{
			name: "a raise stops at the ceiling",
			in:   Input{Window: partialClean, Live: live(9.5), Ceiling: 10, LastRate: 9.5, Now: now},
			want: Decision{Action: ActionRaise, Rate: 10},
		},
		{
			name: "at the ceiling a clean window changes nothing",
			in:   Input{Window: clean, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "ceiling",
		},
		{
			name: "some rate limiting below the threshold holds the rate",
			in:   Input{Window: Window{Span: ten, Attempts: 100, RateLimited: 5, Delivered: 95}, Live: live(5), Ceiling: 10, LastRate: 5, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "holding 5/s",
		},
		{
			name: "an idle queue is raised: nothing was refused",
			in:   Input{Window: Window{Span: ten}, Live: live(5), Ceiling: 10, LastRate: 5, Now: now},
			want: Decision{Action: ActionRaise, Rate: 10}, reasonHas: "idle",
		},
		{
			name: "one instance's empty share is no evidence to raise on",
			in:   Input{Window: Window{Span: ten, Partial: true}, Live: live(5), Ceiling: 10, LastRate: 5, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "no target calls",
		},
		{
			name: "an idle queue at the ceiling stays",
			in:   Input{Window: Window{Span: ten}, Live: live(10), Ceiling: 10, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "no target calls",
		},
		{
			name: "ops changed the rate the governor set: stand down, adopt it as the ceiling",
			in:   Input{Window: storm, Live: queue.Control{Rate: 7, By: queue.ByOperator}, Ceiling: 10, LastRate: 3.2, Now: now},
			want: Decision{Action: ActionStandDown, Rate: 7}, reasonHas: "by operator",
		},
		{
			name: "ops changed the rate while the governor held nothing: stand down",
			in:   Input{Window: clean, Live: live(20), Ceiling: 10, Now: now},
			want: Decision{Action: ActionStandDown, Rate: 20},
		},
		{
			name: "a rate the engine rounded is still the governor's",
			in:   Input{Window: partialClean, Live: live(3.2000001), Ceiling: 10, LastRate: 3.2, Now: now},
			want: Decision{Action: ActionRaise, Rate: 4.2},
		},
		{
			name: "during the hold nothing happens, even in a storm",
			in:   Input{Window: storm, Live: live(7), Ceiling: 7, Now: now, HoldUntil: now.Add(time.Minute)},
			want: Decision{Action: ActionNone}, reasonHas: "holding off",
		},
		{
			name: "after the hold the storm slows the queue again",
			in:   Input{Window: storm, Live: live(7), Ceiling: 7, Now: now, HoldUntil: now.Add(-time.Second)},
			want: Decision{Action: ActionSlow, Rate: 2.24}, // 7 × 40/100 × 0.8
		},
		{
			name: "ops changing the rate again during the hold: stand down again",
			in:   Input{Window: storm, Live: live(5), Ceiling: 7, Now: now, HoldUntil: now.Add(time.Minute)},
			want: Decision{Action: ActionStandDown, Rate: 5},
		},
		{
			name: "a paused queue is left alone",
			in:   Input{Window: storm, Live: queue.Control{Rate: 4, Paused: true, By: queue.ByOperator}, Ceiling: 10, LastRate: 3.2, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "paused by operator",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := p.Decide(tc.in)
			if got.Reason == "" {
				t.Error("decision has no reason")
			}
			if !strings.Contains(got.Reason, tc.reasonHas) {
				t.Errorf("reason %q does not contain %q", got.Reason, tc.reasonHas)
			}
			got.Reason = ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideNeverLeavesTheBounds drives the policy through storms and calm
// windows at every rate: a slow is always below the live rate and at least
// the floor, a raise always above it and at most the ceiling.
func TestDecideNeverLeavesTheBounds(t *testing.T) {
	t.Parallel()
	p := Config{}.Policy()
	const ceiling = 50.0
	for _, rate := range []float64{0.5, 1, 1.01, 2.5, 10, 33.3, 49.99, 50} {
		for _, w := range []Window{
			{Span: 10 * time.Second, Attempts: 500, RateLimited: 499, Delivered: 1},
			{Span: 10 * time.Second, Attempts: 500, RateLimited: 100, Delivered: 400},
			{Span: 10 * time.Second, Attempts: 25, RateLimited: 25, MaxRetryAfter: time.Hour},
			{Span: 10 * time.Second, Attempts: 3, Delivered: 3},
			{Span: time.Second, Attempts: 1000, RateLimited: 300, Delivered: 700, Partial: true},
		} {
			d := p.Decide(Input{Window: w, Live: queue.Control{Rate: rate}, Ceiling: ceiling, LastRate: rate, Now: time.Now()})
			switch d.Action {
			case ActionSlow:
				if d.Rate >= rate || d.Rate < p.Floor {
					t.Errorf("rate %v, window %+v: slow to %v, want within [%v, %v)", rate, w, d.Rate, p.Floor, rate)
				}
			case ActionRaise:
				if d.Rate <= rate || d.Rate > ceiling {
					t.Errorf("rate %v, window %+v: raise to %v, want within (%v, %v]", rate, w, d.Rate, rate, ceiling)
				}
			case ActionNone:
			default:
				t.Errorf("rate %v, window %+v: unexpected %s", rate, w, d.Action)
			}
		}
	}
}

// TestStormConverges plays a target that accepts 4/s against a queue whose
// ceiling is 20/s, window by window: the governor slows below 4/s within a
// few windows and then probes upwards, never above the ceiling; once the
// target accepts everything again, it returns to the ceiling.
func TestStormConverges(t *testing.T) {
	t.Parallel()
	p := Config{}.Policy()
	const ceiling, capacity = 20.0, 4.0
	rate, last := ceiling, 0.0
	span := 10 * time.Second
	window := func(rate, capacity float64) Window {
		calls := int(rate * span.Seconds())
		ok := min(calls, int(capacity*span.Seconds()))
		return Window{Span: span, Attempts: calls, Delivered: ok, RateLimited: calls - ok}
	}
	var slowedBelow int
	for i := range 30 {
		d := p.Decide(Input{Window: window(rate, capacity), Live: queue.Control{Rate: rate}, Ceiling: ceiling, LastRate: last, Now: time.Now()})
		if d.Action == ActionSlow || d.Action == ActionRaise {
			rate, last = d.Rate, d.Rate
		}
		if rate > ceiling {
			t.Fatalf("window %d: rate %v above the ceiling", i, rate)
		}
		if rate <= capacity && slowedBelow == 0 {
			slowedBelow = i + 1
		}
	}
	if slowedBelow == 0 || slowedBelow > 3 {
		t.Errorf("rate reached the target's capacity after %d windows, want 1..3", slowedBelow)
	}
	for range 20 {
		d := p.Decide(Input{Window: window(rate, 1000), Live: queue.Control{Rate: rate}, Ceiling: ceiling, LastRate: last, Now: time.Now()})
		if d.Action == ActionRaise {
			rate, last = d.Rate, d.Rate
		}
	}
	if rate != ceiling {
		t.Errorf("after the storm the rate is %v, want back at the ceiling %v", rate, ceiling)
	}
}

func TestDecideBreaker(t *testing.T) {
	t.Parallel()
	p := Config{}.Policy()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ten := 10 * time.Second
	outage := Window{Span: ten, Attempts: 100, Failed: 90, Delivered: 10}
	live := func(rate float64) queue.Control { return queue.Control{Rate: rate} }
	open := Breaker{State: BreakerOpenState, Since: now.Add(-10 * time.Second), Until: now.Add(20 * time.Second), Resume: 50}
	halfOpen := Breaker{State: BreakerHalfOpen, Since: now.Add(-ten), Resume: 50}

	cases := []struct {
		name      string
		in        Input
		want      Decision
		reasonHas string
	}{
		{
			name: "most calls failing opens the breaker: the queue goes to the floor",
			in:   Input{Window: outage, Live: live(50), Ceiling: 50, Now: now},
			want: Decision{Action: ActionBreakOpen, Rate: 1}, reasonHas: "90% of 100 target calls failed",
		},
		{
			name: "failing exactly at the threshold keeps it closed",
			in:   Input{Window: Window{Span: ten, Attempts: 100, Failed: 50, Delivered: 50}, Live: live(50), Ceiling: 50, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "ceiling",
		},
		{
			name: "too few calls never open it",
			in:   Input{Window: Window{Span: ten, Attempts: 19, Failed: 19}, Live: live(50), Ceiling: 50, Now: now},
			want: Decision{Action: ActionNone},
		},
		{
			name: "failures outrank rate limits",
			in:   Input{Window: Window{Span: ten, Attempts: 100, Failed: 60, RateLimited: 40}, Live: live(50), Ceiling: 50, Now: now},
			want: Decision{Action: ActionBreakOpen, Rate: 1},
		},
		{
			name: "ops below the floor: opening keeps their rate",
			in:   Input{Window: outage, Live: live(0.5), Ceiling: 0.5, Now: now},
			want: Decision{Action: ActionBreakOpen, Rate: 0.5},
		},
		{
			name: "open: nothing until its time while calls at the floor fail",
			in:   Input{Window: Window{Span: ten, Attempts: 10, Delivered: 9, Failed: 1}, Live: live(1), Ceiling: 50, LastRate: 1, Breaker: open, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "circuit breaker open until",
		},
		{
			name: "open: nothing until its time without calls",
			in:   Input{Window: Window{Span: ten}, Live: live(1), Ceiling: 50, LastRate: 1, Breaker: open, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "circuit breaker open until",
		},
		{
			name: "open: a window at the floor without a failure probes early",
			in:   Input{Window: Window{Span: ten, Attempts: 10, Delivered: 10}, Live: live(1), Ceiling: 50, LastRate: 1, Breaker: open, Now: now},
			want: Decision{Action: ActionBreakHalfOpen, Rate: 5}, reasonHas: "none of 10 target calls at the floor failed",
		},
		{
			name: "open long enough: half-open, probing at 10 % of the ceiling",
			in:   Input{Window: outage, Live: live(1), Ceiling: 50, LastRate: 1, Breaker: open, Now: open.Until},
			want: Decision{Action: ActionBreakHalfOpen, Rate: 5}, reasonHas: "probing",
		},
		{
			name: "the probe never exceeds the rate to resume",
			in: Input{Window: outage, Live: live(1), Ceiling: 50, LastRate: 1, Now: open.Until,
				Breaker: Breaker{State: BreakerOpenState, Until: open.Until, Resume: 2}},
			want: Decision{Action: ActionBreakHalfOpen, Rate: 2},
		},
		{
			name: "a probe that passes closes it, straight back to the rate before",
			in:   Input{Window: Window{Span: ten, Attempts: 50, Delivered: 48, Failed: 2}, Live: live(5), Ceiling: 60, LastRate: 5, Breaker: halfOpen, Now: now},
			want: Decision{Action: ActionBreakClose, Rate: 50}, reasonHas: "probe passed",
		},
		{
			name: "a probe that fails opens it again",
			in:   Input{Window: Window{Span: ten, Attempts: 5, Failed: 3, Delivered: 2}, Live: live(5), Ceiling: 60, LastRate: 5, Breaker: halfOpen, Now: now},
			want: Decision{Action: ActionBreakOpen, Rate: 1}, reasonHas: "probe failed",
		},
		{
			name: "an idle probe window closes it when the window saw every dispatch",
			in:   Input{Window: Window{Span: ten}, Live: live(5), Ceiling: 60, LastRate: 5, Breaker: halfOpen, Now: now},
			want: Decision{Action: ActionBreakClose, Rate: 50},
		},
		{
			name: "one instance's empty share judges no probe",
			in:   Input{Window: Window{Span: ten, Partial: true}, Live: live(5), Ceiling: 60, LastRate: 5, Breaker: halfOpen, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "half-open",
		},
		{
			name: "closing never passes the ceiling",
			in:   Input{Window: Window{Span: ten, Attempts: 50, Delivered: 50}, Live: live(5), Ceiling: 40, LastRate: 5, Breaker: halfOpen, Now: now},
			want: Decision{Action: ActionBreakClose, Rate: 40},
		},
		{
			name: "ops changing the rate while open: stand down",
			in:   Input{Window: outage, Live: queue.Control{Rate: 20, By: queue.ByOperator}, Ceiling: 50, LastRate: 1, Breaker: open, Now: now},
			want: Decision{Action: ActionStandDown, Rate: 20},
		},
		{
			name: "a paused queue is left alone, breaker or not",
			in:   Input{Window: outage, Live: queue.Control{Rate: 50, Paused: true}, Ceiling: 50, Now: now},
			want: Decision{Action: ActionNone}, reasonHas: "paused",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := p.Decide(tc.in)
			if !strings.Contains(got.Reason, tc.reasonHas) || got.Reason == "" {
				t.Errorf("reason %q does not contain %q", got.Reason, tc.reasonHas)
			}
			got.Reason = ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBreakerThroughAnOutage plays a target that fails every call for 60 s
// against a queue at 50/s, window by window (10 s), carrying the state as
// the governor does: the breaker opens in the first failing window, holds
// the queue at the floor, probes every BreakerOpen, and once the target is
// back closes within two windows (a clean one at the floor, the probe),
// straight to 50/s.
func TestBreakerThroughAnOutage(t *testing.T) {
	t.Parallel()
	p := Config{}.Policy()
	const ceiling = 50.0
	span := 10 * time.Second
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	healed := start.Add(60 * time.Second)
	rate, last, good, br := ceiling, 0.0, 0.0, Breaker{}
	var failedCalls int
	var closedAt time.Time
	var actions []Action
	for i := 1; i <= 20 && closedAt.IsZero(); i++ {
		now := start.Add(time.Duration(i) * span)
		calls := int(rate * span.Seconds())
		w := Window{Span: span, Attempts: calls, Delivered: calls}
		if now.Before(healed) || now.Equal(healed) {
			w.Failed, w.Delivered = calls, 0
			failedCalls += calls
		}
		in := Input{Window: w, Live: queue.Control{Rate: rate}, Ceiling: ceiling, LastRate: last, Good: good, Breaker: br, Now: now}
		d := p.Decide(in)
		if d.Action != ActionNone {
			actions = append(actions, d.Action)
		}
		if d.Action.SetsRate() {
			rate, last = d.Rate, d.Rate
		}
		good, br = NextGood(in, d), p.NextBreaker(in, d)
		if d.Action == ActionBreakClose {
			closedAt = now
		}
	}
	want := []Action{ActionBreakOpen, ActionBreakHalfOpen, ActionBreakOpen, ActionBreakHalfOpen, ActionBreakClose}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if rate != ceiling || !br.Is(BreakerClosed) {
		t.Errorf("after the outage: rate %v, breaker %+v; want %v, closed", rate, br, ceiling)
	}
	if closedAt.IsZero() || closedAt.Sub(healed) > 2*span {
		t.Errorf("closed at %v, %v after the target healed; want within %v", closedAt, closedAt.Sub(healed), 2*span)
	}
	// Without the breaker the queue would have sent 50/s × 60 s = 3,000
	// failing calls: one window at full rate opens it, then the floor and
	// the probes.
	if failedCalls > 700 {
		t.Errorf("%d failing calls during the outage, want at most 700", failedCalls)
	}
}

func TestNextGood(t *testing.T) {
	t.Parallel()
	ten := 10 * time.Second
	clean := Window{Span: ten, Attempts: 50, Delivered: 50}
	storm := Window{Span: ten, Attempts: 50, RateLimited: 30, Delivered: 20}
	cases := []struct {
		name string
		in   Input
		d    Action
		want float64
	}{
		{name: "a clean window below the ceiling is good", in: Input{Window: clean, Live: queue.Control{Rate: 8}, Ceiling: 100}, d: ActionRaise, want: 8},
		{name: "at the ceiling nothing is remembered", in: Input{Window: clean, Live: queue.Control{Rate: 100}, Ceiling: 100, Good: 8}, d: ActionNone, want: 8},
		{name: "an idle window proves nothing", in: Input{Window: Window{Span: ten}, Live: queue.Control{Rate: 9}, Ceiling: 100, Good: 8}, d: ActionRaise, want: 8},
		{name: "a slow from above keeps it", in: Input{Window: storm, Live: queue.Control{Rate: 100}, Ceiling: 100, Good: 8}, d: ActionSlow, want: 8},
		{name: "rate limited at it: the limit fell, forget it", in: Input{Window: storm, Live: queue.Control{Rate: 8}, Ceiling: 100, Good: 8}, d: ActionSlow, want: 0},
		{name: "ops changed the rate: forget it", in: Input{Window: clean, Live: queue.Control{Rate: 8}, Ceiling: 100, Good: 8}, d: ActionStandDown, want: 0},
		{name: "the breaker: forget it", in: Input{Window: clean, Live: queue.Control{Rate: 8}, Ceiling: 100, Good: 8}, d: ActionBreakOpen, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NextGood(tc.in, Decision{Action: tc.d}); got != tc.want {
				t.Errorf("NextGood = %v, want %v", got, tc.want)
			}
		})
	}
}
