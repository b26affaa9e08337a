package chaos

import (
	"context"
	"fmt"
	"sort"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/targetmock"
)

// fullRateShare is the share of the limit a one-second window must reach
// for the dispatch rate to count as back at full rate after an outage.
const fullRateShare = 0.9

// callsBetween counts the target calls of any outcome that reached it in
// [from, to).
func callsBetween(calls []targetmock.Call, from, to time.Time) int {
	n := 0
	for _, c := range calls {
		if !c.At.Before(from) && c.At.Before(to) {
			n++
		}
	}
	return n
}

// recoveryTime is how long after healed the target's accepting calls got
// back to the full dispatch rate: the start of the first one-second window
// (slid in 100 ms steps from healed) holding at least fullRateShare of
// limit accepting calls, minus healed. ok is false when no window did.
func recoveryTime(calls []targetmock.Call, healed time.Time, limit float64) (d time.Duration, ok bool) {
	var at []time.Time
	for _, c := range calls {
		if c.Outcome == targetmock.OutcomeAccepted && !c.At.Before(healed) {
			at = append(at, c.At)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	if len(at) == 0 {
		return 0, false
	}
	need := int(fullRateShare*limit + 0.5)
	const step = 100 * time.Millisecond
	last := at[len(at)-1]
	lo, hi := 0, 0 // at[lo:hi] lies in [w, w+1s)
	for w := healed; !w.After(last); w = w.Add(step) {
		for lo < len(at) && at[lo].Before(w) {
			lo++
		}
		for hi < len(at) && at[hi].Before(w.Add(time.Second)) {
			hi++
		}
		if hi-lo >= need {
			return w.Sub(healed), true
		}
	}
	return 0, false
}

// target500Storm answers every target call HTTP 500 for a while (the
// target up but failing everything), then heals it, and measures what the
// outage cost: the calls the target received while it failed them, and how
// long after healing the dispatch rate was back at the limit. A backlog
// must remain at the heal for the second figure to mean anything: the
// burst outlasts the outage by construction.
func target500Storm(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	outage := faultLength(env)
	var (
		down, healed time.Time
		outageCalls  int
		recovery     time.Duration
		recovered    bool
		stopWatch    = func() {}
	)
	rep, err := onStack(ctx, env, stackPlan{
		name:    "target-500-storm",
		injects: fmt.Sprintf("every target call answered HTTP 500 for %v, from 1 s into the burst, then healed", outage),
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
			stopWatch = watchGovernor(ctx, st.Governor, r) // its breaker, until after the drain
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			if err := st.Target.SetErrorRatio(1); err != nil {
				return err
			}
			down = time.Now()
			r.note("target failing every call (HTTP 500)")
			sleep(ctx, outage)
			if err := st.Target.SetErrorRatio(0); err != nil {
				return err
			}
			healed = time.Now()
			r.note("target healed")
			return ctx.Err()
		},
		after: func(ctx context.Context, st *devstack.Stack, r *run) {
			stopWatch()
			calls, err := st.Target.Calls(ctx, targetmock.CallFilter{})
			if err != nil {
				r.note("read the target's calls: %v", err)
				return
			}
			limit := st.QueueConfig.MaxDispatchesPerSecond
			outageCalls = callsBetween(calls, down, healed)
			recovery, recovered = recoveryTime(calls, healed, limit)
			r.note("outage: %d target calls in %v; full rate (%.0f%% of %.4g/s within 1 s) reached=%v %v after healing",
				outageCalls, healed.Sub(down).Round(100*time.Millisecond), 100*fullRateShare, limit, recovered, recovery)
		},
		window: drainWindow(s, outage),
	})
	rep.OutageCalls, rep.OutageLength = outageCalls, healed.Sub(down)
	if recovered {
		rep.RecoveryTime = recovery
	} else {
		rep.RecoveryTime = -1
	}
	return rep, err
}
