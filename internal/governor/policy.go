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
)

// SetsRate reports whether a carries a rate to set on the queue.
func (a Action) SetsRate() bool {
	switch a {
	case ActionSlow, ActionRaise:
		return true
	}
	return false
}

// NextGood is Input.Good after d: the live rate of a window below the
// ceiling whose calls met no rate limit; forgotten when a window at or
// below it was rate limited (the target's limit fell) and when ops changed
// the rate.
func NextGood(in Input, d Decision) float64 {
	w, live := in.Window, in.Live.Rate
	switch {
	case d.Action == ActionStandDown:
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
//  4. more than Threshold of at least MinAttempts calls rate limited →
//     slow back to Good when the live rate is above it, else to
//     max(Floor, min(live, accepted rate) × Decrease), or to Floor when
//     the target asked for a Retry-After of LongRetryAfter or more; none
//     when that is not below the live rate (at the floor);
//  5. below the ceiling and no call rate limited → raise. When the window
//     saw every dispatch (the embedded engine) straight to the ceiling: a
//     probe above the target's limit costs one refused call per
//     Retry-After there, since the queue pauses itself on each 429, and
//     rule 4 returns to Good the next window. Otherwise (Partial) by
//     Increase × ceiling, at most to the ceiling. A window without calls
//     counts as clean only when it saw every dispatch (not Partial): the
//     queue is idle, and an idle queue held low would only slow the next
//     burst; one instance's empty share says nothing about the queue;
//  6. otherwise none.
func (p Policy) Decide(in Input) Decision {
	live := in.Live.Rate
	w := in.Window
	share := w.RateLimitedShare()
	switch {
	case in.Live.Paused:
		return Decision{Action: ActionNone, Reason: "the queue is paused" + byWhom(in.Live.By) + "; the governor leaves a paused queue alone"}
	case !sameRate(live, in.expected()):
		return Decision{Action: ActionStandDown, Rate: live, Reason: fmt.Sprintf(
			"the live rate %s/s is not the %s/s the governor expected: changed%s, so it becomes the ceiling",
			fmtRate(live), fmtRate(in.expected()), byWhom(in.Live.By))}
	case in.Now.Before(in.HoldUntil):
		return Decision{Action: ActionNone, Reason: "holding off after ops changed the rate, until " + in.HoldUntil.UTC().Format(time.RFC3339)}
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
