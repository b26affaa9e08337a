package governor

import (
	"fmt"
	"math"
	"time"

	"eventrelay/internal/queue"
)

// Default steps of the policy: multiplicative decrease, additive increase.
const (
	// DefaultDecrease multiplies the rate the target accepted when the queue
	// is slowed.
	DefaultDecrease = 0.8
	// DefaultIncrease is the step, as a share of the ceiling, by which a
	// clean window raises the rate.
	DefaultIncrease = 0.1
)

// Policy decides, from one window of target calls and the queue's live
// settings, whether to slow the queue, raise it back, or leave it. It is
// pure: Decide reads only its arguments.
type Policy struct {
	// Threshold: a window whose rate-limited share is above it is slowed.
	Threshold float64
	// MinAttempts: a window with fewer target calls is never slowed.
	MinAttempts int
	// Floor: the lowest rate Decide returns for a slow.
	Floor float64
	// Decrease multiplies the accepted rate on a slow (0 < Decrease < 1).
	Decrease float64
	// Increase is the raise step as a share of the ceiling.
	Increase float64
	// LongRetryAfter: a slow whose window saw a Retry-After at least this
	// long goes straight to Floor.
	LongRetryAfter time.Duration
	// BreakerThreshold: a window whose failed share (Window.Failed) is
	// above it, with at least BreakerMinAttempts calls, opens the circuit
	// breaker; a half-open window above it opens it again.
	BreakerThreshold float64
	// BreakerMinAttempts: a closed breaker never opens on fewer calls.
	BreakerMinAttempts int
	// BreakerOpen is how long an open breaker holds the queue at the floor
	// before it probes the target (half-open).
	BreakerOpen time.Duration
}

// Window is what the governor saw of the target in one period: every call
// the dispatcher made, classified as Classify does (HTTP 429 and GraphQL
// RATE_LIMITED both count as rate limited).
type Window struct {
	// Span is the period's length.
	Span time.Duration `json:"span_ns"`
	// Attempts counts the target calls; RateLimited and Delivered are
	// among them.
	Attempts    int `json:"attempts"`
	RateLimited int `json:"rate_limited"`
	Delivered   int `json:"delivered"`
	// Failed counts the calls Classify found retryable: a 5xx, no answer,
	// a timeout, an unusable answer (not rate limited).
	Failed int `json:"failed"`
	// Held is how much of Span the queue itself held every dispatch back
	// after a rate-limited call: the embedded queue pauses for the
	// Retry-After the dispatcher answers (whole seconds, at least 1 s).
	// Counted only when the window saw every dispatch (not Partial).
	Held time.Duration `json:"held_ns,omitempty"`
	// MaxRetryAfter is the longest Retry-After the target sent.
	MaxRetryAfter time.Duration `json:"max_retry_after_ns"`
	// Partial says the window saw only a share of the queue's dispatches
	// (one dispatcher instance of many): its delivered rate is then not
	// the queue's, and Decide estimates the accepted rate as the live rate
	// times the delivered share instead.
	Partial bool `json:"partial,omitempty"`
}

// RateLimitedShare is RateLimited / Attempts (0 without attempts).
func (w Window) RateLimitedShare() float64 {
	if w.Attempts == 0 {
		return 0
	}
	return float64(w.RateLimited) / float64(w.Attempts)
}

// FailedShare is Failed / Attempts (0 without attempts).
func (w Window) FailedShare() float64 {
	if w.Attempts == 0 {
		return 0
	}
	return float64(w.Failed) / float64(w.Attempts)
}

// acceptedRate estimates the rate at which the target accepted calls from
// the whole queue during w.
//
// Partial (one instance's share): the live rate times the delivered share.
//
// Seeing every dispatch (embedded): the delivered calls per second of the
// time the queue was dispatching (Span - Held), and no more than the live
// rate times the delivered share. The time the queue held itself back
// after a 429 is not the target's doing, so it does not count against the
// target's capacity; and far above the target's limit each pause ends with
// a call or two the target takes at the queue's pace before refusing the
// next, so the dispatching time alone would credit the target with the
// queue's rate: the delivered share bounds it.
func (w Window) acceptedRate(live float64) float64 {
	if w.Attempts == 0 {
		return live
	}
	share := live * float64(w.Delivered) / float64(w.Attempts)
	if w.Partial {
		return share
	}
	dispatching := w.Span - min(w.Held, w.Span)
	if dispatching <= 0 {
		return min(share, float64(w.Delivered)/max(w.Span.Seconds(), 1e-9))
	}
	return min(share, float64(w.Delivered)/dispatching.Seconds())
}

// Input is everything Decide reads.
type Input struct {
	Window Window
	// Live is the queue's live settings, read just now.
	Live queue.Control
	// Ceiling is the highest rate the governor may set: the rate ops gave
	// the queue (ADR 0005).
	Ceiling float64
	// LastRate is the rate the governor last set; zero when it has set
	// none since it started or stood down, in which case the live rate is
	// expected to be the ceiling.
	LastRate float64
	// Now and HoldUntil: the governor does nothing before HoldUntil (it
	// stood down for ops).
	Now       time.Time
	HoldUntil time.Time
	// Good is the last rate below the ceiling at which a window's calls
	// met no rate limit (0: none known). A slow from above it returns to
	// it (NextGood keeps it).
	Good float64
	// Breaker is the circuit breaker's state (zero: closed).
	Breaker Breaker
}

// expected is the live rate the governor believes the queue has.
func (in Input) expected() float64 {
	if in.LastRate > 0 {
		return in.LastRate
	}
	return in.Ceiling
}

// Action is what a Decision asks for.
type Action string

// The actions.
const (
	// ActionNone leaves the queue as it is.
	ActionNone Action = "none"
	// ActionSlow lowers the queue's rate to Decision.Rate.
	ActionSlow Action = "slow"
	// ActionRaise raises the queue's rate to Decision.Rate (at most the
	// ceiling).
	ActionRaise Action = "raise"
	// ActionStandDown: someone else changed the rate; Decision.Rate is the
	// new ceiling, and the governor holds off.
	ActionStandDown Action = "stand_down"
	// ActionBreakOpen opens the circuit breaker: the target fails most
	// calls, so the queue goes to Decision.Rate (the floor) for
	// Policy.BreakerOpen.
	ActionBreakOpen Action = "break_open"
	// ActionBreakHalfOpen: the breaker was open long enough; the queue
	// probes the target at Decision.Rate for one window.
	ActionBreakHalfOpen Action = "break_half_open"
	// ActionBreakClose: the probe window passed; the queue goes back to
	// Decision.Rate, the rate it had when the breaker opened.
	ActionBreakClose Action = "break_close"
)

// SetsRate reports whether a carries a rate to set on the queue.
func (a Action) SetsRate() bool {
	switch a {
	case ActionSlow, ActionRaise, ActionBreakOpen, ActionBreakHalfOpen, ActionBreakClose:
		return true
	}
	return false
}

// BreakerState is the circuit breaker's state.
type BreakerState string

// The breaker's states.
const (
	// BreakerClosed: the target answers; the rate follows the 429 rules.
	BreakerClosed BreakerState = "closed"
	// BreakerOpenState: the target failed most calls; the queue is held at
	// the floor until Breaker.Until.
	BreakerOpenState BreakerState = "open"
	// BreakerHalfOpen: one window probing the target at a low rate.
	BreakerHalfOpen BreakerState = "half_open"
)

// Breaker is the circuit breaker's state, which the governor keeps and
// Decide reads.
type Breaker struct {
	State BreakerState `json:"state"`
	// Since is when it entered State (zero when never opened).
	Since time.Time `json:"since"`
	// Until is when an open breaker probes (open only).
	Until time.Time `json:"until"`
	// Resume is the rate the queue goes back to when the breaker closes:
	// the live rate when it first opened (open and half-open only).
	Resume float64 `json:"resume_rate,omitempty"`
}

// Is reports whether b is in state s (the zero Breaker is closed).
func (b Breaker) Is(s BreakerState) bool {
	if b.State == "" {
		return s == BreakerClosed
	}
	return b.State == s
}

// NextBreaker is the breaker's state after d was carried out at now; it
// is pure, like Decide.
func (p Policy) NextBreaker(in Input, d Decision) Breaker {
	switch d.Action {
	case ActionBreakOpen:
		resume := in.Live.Rate
		if !in.Breaker.Is(BreakerClosed) && in.Breaker.Resume > 0 {
			resume = in.Breaker.Resume // reopened from a failed probe
		}
		return Breaker{State: BreakerOpenState, Since: in.Now, Until: in.Now.Add(p.BreakerOpen), Resume: resume}
	case ActionBreakHalfOpen:
		return Breaker{State: BreakerHalfOpen, Since: in.Now, Resume: in.Breaker.Resume}
	case ActionBreakClose, ActionStandDown:
		return Breaker{State: BreakerClosed, Since: in.Now}
	}
	return in.Breaker
}

// NextGood is Input.Good after d: the live rate of a window below the
// ceiling whose calls met no rate limit; forgotten when a window at or
// below it was rate limited (the target's limit fell), when ops changed
// the rate, and by the breaker.
func NextGood(in Input, d Decision) float64 {
	w, live := in.Window, in.Live.Rate
	switch {
	case d.Action == ActionStandDown, d.Action == ActionBreakOpen, d.Action == ActionBreakHalfOpen, d.Action == ActionBreakClose:
		return 0
	case d.Action == ActionSlow && live <= in.Good:
		return 0
	case d.Action == ActionSlow:
		return in.Good
	case w.Attempts > 0 && w.RateLimited == 0 && live < in.Ceiling && !sameRate(live, in.Ceiling) && !in.Live.Paused:
		return live
	}
	return in.Good
}

// Decision is Decide's answer.
type Decision struct {
	Action Action `json:"action"`
	// Rate is the new rate (slow, raise) or the adopted ceiling (stand
	// down); zero for none.
	Rate float64 `json:"rate,omitempty"`
	// Reason says why, for the logs and the ops page.
	Reason string `json:"reason"`
}

// Decide applies the rules, first match wins:
//
//  1. the queue is paused → none: a pause is an operator's (the governor
//     never pauses), and a paused queue shows nothing to judge;
//  2. the live rate is not the one the governor expects (the rate it last
//     set, or the ceiling) → stand down, adopting the live rate as the
//     ceiling: ops changed it and have the last word;
//  3. before HoldUntil → none;
//  4. the circuit breaker is open → none until Breaker.Until, or until a
//     window at the floor saw calls and none failed (the target answers
//     again), then half-open: probe at max(Floor, Increase × ceiling), at
//     most the rate to resume, for one window;
//  5. the breaker is half-open → open again when more than
//     BreakerThreshold of the probe's calls failed, else close: straight
//     back to the rate the queue had when the breaker opened (a window
//     without calls closes it only when it saw every dispatch);
//  6. more than BreakerThreshold of at least BreakerMinAttempts calls
//     failed → open the breaker: the queue goes to the floor;
//  7. more than Threshold of at least MinAttempts calls rate limited →
//     slow back to Good when the live rate is above it, else to
//     max(Floor, min(live, accepted rate) × Decrease), or to Floor when
//     the target asked for a Retry-After of LongRetryAfter or more; none
//     when that is not below the live rate (at the floor);
//  8. below the ceiling and no call rate limited → raise. When the window
//     saw every dispatch (the embedded engine) straight to the ceiling: a
//     probe above the target's limit costs one refused call per
//     Retry-After there, since the queue pauses itself on each 429, and
//     rule 7 returns to Good the next window. Otherwise (Partial) by
//     Increase × ceiling, at most to the ceiling. A window without calls
//     counts as clean only when it saw every dispatch (not Partial): the
//     queue is idle, and an idle queue held low would only slow the next
//     burst; one instance's empty share says nothing about the queue;
//  9. otherwise none.
func (p Policy) Decide(in Input) Decision {
	live := in.Live.Rate
	w := in.Window
	share := w.RateLimitedShare()
	failed := w.FailedShare()
	failedWhy := func() string {
		return fmt.Sprintf("%.0f%% of %d target calls failed (breaker threshold %.0f%%)", failed*100, w.Attempts, p.BreakerThreshold*100)
	}
	switch {
	case in.Live.Paused:
		return Decision{Action: ActionNone, Reason: "the queue is paused" + byWhom(in.Live.By) + "; the governor leaves a paused queue alone"}
	case !sameRate(live, in.expected()):
		return Decision{Action: ActionStandDown, Rate: live, Reason: fmt.Sprintf(
			"the live rate %s/s is not the %s/s the governor expected: changed%s, so it becomes the ceiling",
			fmtRate(live), fmtRate(in.expected()), byWhom(in.Live.By))}
	case in.Now.Before(in.HoldUntil):
		return Decision{Action: ActionNone, Reason: "holding off after ops changed the rate, until " + in.HoldUntil.UTC().Format(time.RFC3339)}
	case in.Breaker.Is(BreakerOpenState) && in.Now.Before(in.Breaker.Until) && (w.Attempts == 0 || w.Failed > 0):
		return Decision{Action: ActionNone, Reason: fmt.Sprintf("circuit breaker open until %s: the queue stays at the floor (%d of %d calls failed)",
			in.Breaker.Until.UTC().Format(time.RFC3339), w.Failed, w.Attempts)}
	case in.Breaker.Is(BreakerOpenState):
		why := fmt.Sprintf("circuit breaker open for %s", p.BreakerOpen)
		if in.Now.Before(in.Breaker.Until) {
			why = fmt.Sprintf("none of %d target calls at the floor failed", w.Attempts)
		}
		return Decision{Action: ActionBreakHalfOpen, Rate: p.probeRate(in), Reason: fmt.Sprintf(
			"%s: probing the target at %s/s for one window", why, fmtRate(p.probeRate(in)))}
	case in.Breaker.Is(BreakerHalfOpen) && w.Attempts > 0 && failed > p.BreakerThreshold:
		return Decision{Action: ActionBreakOpen, Rate: min(live, p.Floor), Reason: "probe failed: " + failedWhy()}
	case in.Breaker.Is(BreakerHalfOpen) && w.Attempts == 0 && w.Partial:
		return Decision{Action: ActionNone, Reason: "circuit breaker half-open: no target calls to judge the probe on"}
	case in.Breaker.Is(BreakerHalfOpen):
		return Decision{Action: ActionBreakClose, Rate: p.resumeRate(in), Reason: fmt.Sprintf(
			"probe passed (%d target calls, %.0f%% failed): back to %s/s", w.Attempts, failed*100, fmtRate(p.resumeRate(in)))}
	case failed > p.BreakerThreshold && w.Attempts >= p.BreakerMinAttempts:
		return Decision{Action: ActionBreakOpen, Rate: min(live, p.Floor), Reason: failedWhy() + fmt.Sprintf(
			": the queue goes to the floor %s/s for %s", fmtRate(min(live, p.Floor)), p.BreakerOpen)}
	case share > p.Threshold && w.Attempts >= p.MinAttempts:
		why := fmt.Sprintf("%.0f%% of %d target calls rate limited (threshold %.0f%%)", share*100, w.Attempts, p.Threshold*100)
		var next float64
		switch {
		case p.LongRetryAfter > 0 && w.MaxRetryAfter >= p.LongRetryAfter:
			next = p.Floor
			why += fmt.Sprintf(", Retry-After %s: down to the floor", w.MaxRetryAfter)
		case in.Good > 0 && in.Good < live && !sameRate(in.Good, live):
			next = in.Good
			why += fmt.Sprintf(": back to %s/s, the last rate the target took in full", fmtRate(in.Good))
		default:
			next = min(live, w.acceptedRate(live)) * p.Decrease
		}
		next = max(roundRate(next), p.Floor)
		if next >= live || sameRate(next, live) {
			return Decision{Action: ActionNone, Reason: why + "; already at the floor " + fmtRate(p.Floor) + "/s"}
		}
		return Decision{Action: ActionSlow, Rate: next, Reason: why}
	case live < in.Ceiling && !sameRate(live, in.Ceiling) && w.RateLimited == 0 && (w.Attempts > 0 || !w.Partial):
		calls := fmt.Sprintf("%d target calls, none rate limited", w.Attempts)
		if w.Attempts == 0 {
			calls = "no target calls (the queue is idle)"
		}
		if !w.Partial {
			return Decision{Action: ActionRaise, Rate: in.Ceiling, Reason: fmt.Sprintf(
				"%s: back to the ceiling %s/s (the queue pauses itself on a 429)", calls, fmtRate(in.Ceiling))}
		}
		next := min(in.Ceiling, roundRate(live+p.Increase*in.Ceiling))
		return Decision{Action: ActionRaise, Rate: next, Reason: fmt.Sprintf(
			"%s: +%.0f%% of the ceiling %s/s", calls, p.Increase*100, fmtRate(in.Ceiling))}
	case w.Attempts == 0:
		return Decision{Action: ActionNone, Reason: "no target calls to judge"}
	case share > p.Threshold:
		return Decision{Action: ActionNone, Reason: fmt.Sprintf("%d target calls are too few to judge (at least %d)", w.Attempts, p.MinAttempts)}
	case live < in.Ceiling && !sameRate(live, in.Ceiling):
		return Decision{Action: ActionNone, Reason: fmt.Sprintf("%.0f%% rate limited: holding %s/s", share*100, fmtRate(live))}
	default:
		return Decision{Action: ActionNone, Reason: "at the ceiling"}
	}
}

// probeRate is the half-open breaker's rate: Increase × ceiling, at least
// the floor, at most the rate to resume.
func (p Policy) probeRate(in Input) float64 {
	return roundRate(min(p.resumeRate(in), max(p.Floor, p.Increase*in.Ceiling)))
}

// resumeRate is the rate a closing breaker returns to: the live rate when
// it opened, at most the ceiling (the ceiling when unknown).
func (p Policy) resumeRate(in Input) float64 {
	if in.Breaker.Resume > 0 {
		return min(in.Breaker.Resume, in.Ceiling)
	}
	return in.Ceiling
}

// sameRate compares rates with a tolerance, so that a rate an engine
// stores with a rounding is still recognised.
func sameRate(a, b float64) bool {
	return math.Abs(a-b) <= max(1e-3, 1e-3*max(math.Abs(a), math.Abs(b)))
}

// roundRate keeps two decimals: rates read better and compare exactly.
func roundRate(r float64) float64 { return math.Round(r*100) / 100 }

func fmtRate(r float64) string { return fmt.Sprintf("%.4g", r) }

func byWhom(by string) string {
	if by == "" {
		return ""
	}
	return " by " + by
}
