package shardedqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// Defaults of BalanceConfig's zero fields.
const (
	// DefaultBalanceFloor is the share of an equal split every shard keeps
	// whatever its backlog: an empty shard still dispatches a new task at
	// once, and on Cloud Tasks keeps a burst of its own.
	DefaultBalanceFloor = 0.2
	// DefaultBalanceThreshold is how far, as a share of an equal split, a
	// shard's rate must move before the balancer writes it: smaller moves
	// are noise, and every write costs (the embedded engine persists and
	// logs each, Cloud Tasks makes it an UpdateQueue).
	DefaultBalanceThreshold = 0.02
)

// ByBalancer is what a shard's rate change names when the balancer made it
// and no author of the total is known; BalancedBy appends it to an
// author.
const ByBalancer = "balancer"

// balancedSuffix marks a shard's By as "the total set by the author before
// it, split across the shards by backlog".
const balancedSuffix = "+" + ByBalancer

// BalancedBy is what a shard whose rate is not an equal share of the total
// names as its author: the total's author with "+balancer" ("governor" →
// "governor+balancer"), or ByBalancer when no author is known. A sharded
// queue's Control reports the author alone (Author), so the governor and
// the ops page see who set the total; each shard's own record
// (ShardControls) says its share was re-split. The embedded engine's
// restart rule, which drops a rate "governor" set at or above the
// shard's configured share (sqlitequeue capGovernorRate), leaves such a
// shard alone: its rate is the governor's total split by backlog, not a
// raised share (docs/lld/queue.md, "Shards").
func BalancedBy(author string) string {
	author = Author(author)
	if author == "" || author == ByBalancer {
		return ByBalancer
	}
	return author + balancedSuffix
}

// Author is the author of the total a shard's By names: by without the
// "+balancer" BalancedBy adds.
func Author(by string) string { return strings.TrimSuffix(by, balancedSuffix) }

// balanceTimeout bounds one balancing pass (reads and writes).
const balanceTimeout = 10 * time.Second

// BalanceConfig configures the balancer of a sharded queue (WithBalance).
type BalanceConfig struct {
	// Interval is the time between two passes; zero (or below): no
	// balancer.
	Interval time.Duration
	// Floor is the share of an equal split every shard keeps, in (0, 1];
	// zero: DefaultBalanceFloor. 1 is an equal split whatever the backlog.
	Floor float64
	// Threshold is the smallest change of a shard's rate written, as a
	// share of an equal split, in [0, 1); zero: DefaultBalanceThreshold.
	Threshold float64
}

func (c BalanceConfig) floor() float64 {
	if c.Floor <= 0 {
		return DefaultBalanceFloor
	}
	return min(c.Floor, 1)
}

func (c BalanceConfig) threshold() float64 {
	if c.Threshold <= 0 {
		return DefaultBalanceThreshold
	}
	return c.Threshold
}

// Option configures a Queue (New).
type Option func(*Queue)

// WithBalance makes the queue's NewBalancer return a balancer running with
// cfg (none when cfg.Interval is zero, the default).
func WithBalance(cfg BalanceConfig) Option {
	return func(q *Queue) { q.balance = cfg }
}

// Split shares total among the shards whose backlogs are backlog: shard i
// gets total × ((1−floor) × backlogᵢ / Σbacklog + floor / N), an equal
// split when every backlog is zero. The rates sum to total (to
// floating-point error) and each is at least total × floor / N. A negative
// backlog counts as zero; floor is clamped to [0, 1].
func Split(total float64, backlog []int64, floor float64) []float64 {
	n := len(backlog)
	out := make([]float64, n)
	if n == 0 {
		return out
	}
	floor = min(max(floor, 0), 1)
	var sum float64
	for _, b := range backlog {
		sum += float64(max(b, 0))
	}
	for i, b := range backlog {
		if sum == 0 {
			out[i] = total / float64(n)
			continue
		}
		out[i] = total * ((1-floor)*float64(max(b, 0))/sum + floor/float64(n))
	}
	return out
}

// plan returns the rates to run the shards at, from their current rates
// cur (summing to the total) and the targets want (Split's, same sum):
// a shard whose target is within threshold × total / N of its current
// rate keeps it, and the shards that move share what the kept ones
// leave, in proportion to their targets, so the rates still sum to the
// total. It reports which shards move (none: nothing to write). If that
// sharing would take a moving shard below half its target (many small
// kept deviations against one move), every shard moves to its target.
func plan(cur, want []float64, threshold float64) (next []float64, move []bool) {
	n := len(cur)
	next, move = make([]float64, n), make([]bool, n)
	var total float64
	for _, r := range cur {
		total += r
	}
	step := threshold * total / float64(n)
	var kept, moving float64 // Σ(want−cur) over kept shards; Σwant over moving ones
	moves := false
	for i := range cur {
		if math.Abs(want[i]-cur[i]) > step {
			move[i], moves = true, true
			moving += want[i]
		} else {
			kept += want[i] - cur[i]
		}
	}
	if !moves {
		copy(next, cur)
		return next, move
	}
	for i := range cur {
		if !move[i] {
			next[i] = cur[i]
			continue
		}
		next[i] = want[i] + kept*want[i]/moving
		if next[i] < want[i]/2 {
			copy(next, want)
			for j := range move {
				move[j] = next[j] != cur[j]
			}
			return next, move
		}
	}
	return next, move
}

// BalanceResult is what one balancing pass saw and did.
type BalanceResult struct {
	// Total is the live total rate the pass read (and kept).
	Total float64
	// Backlog is each shard's backlog (queue.Stats.Backlog, in flight
	// included), in shard order.
	Backlog []int64
	// Rates is each shard's rate after the pass.
	Rates []float64
	// Wrote counts the shards whose rate the pass changed.
	Wrote int
	// By is who the pass's writes were attributed to: BalancedBy of the
	// author of the most recent change (the total's).
	By string
	// Skipped says why the pass wrote nothing on purpose ("" otherwise).
	Skipped string
}

// Balance runs one balancing pass: it reads every shard's live rate (their
// sum is the total, whoever set it: this process, the governor, or
// another process such as relayctl) and backlog, and re-splits the same
// total in proportion to the backlogs with a floor for every shard
// (Split), writing only the shards whose rate moves by more than the
// threshold (plan). A paused queue is left alone.
//
// Each write names BalancedBy(the author of the queue's most recent
// change): a re-split is not a new rate, so Control keeps reporting the
// total's author (what the ops page shows and what the governor
// recognises as its own after a restart), while each shard's record says
// its share was re-split (docs/lld/queue.md, "Shards").
//
// Rates that go down are written before those that go up, so a reader in
// another process never sees the shards sum above the total. Just before
// writing, the rates are read again and the pass gives up if any changed
// meanwhile (another process set a rate). If a write fails, the shards
// already written in this pass are put back (best effort) and the error
// names each failure. SetRate and Control in this process wait for a pass
// to finish, so neither sees nor overwrites half a re-split.
func (q *Queue) Balance(ctx context.Context, cfg BalanceConfig) (BalanceResult, error) {
	cs, err := as[queue.Controller](q, "change its rate")
	if err != nil {
		return BalanceResult{}, err
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	live, err := q.controls(ctx, cs)
	if err != nil {
		return BalanceResult{}, err
	}
	res := BalanceResult{Rates: make([]float64, len(live))}
	var latest time.Time
	paused := false
	for i, c := range live {
		res.Rates[i] = c.Rate
		res.Total += c.Rate
		paused = paused || c.Paused
		if c.At.After(latest) || (latest.IsZero() && res.By == "") {
			res.By, latest = c.By, c.At
		}
	}
	res.By = BalancedBy(res.By)
	if paused {
		res.Skipped = "paused"
		return res, nil
	}
	if !validRates(res.Rates) {
		return res, fmt.Errorf("shardedqueue: balance: the shards' rates %v are not all > 0 and finite", res.Rates)
	}
	stats := q.ShardStats(ctx)
	res.Backlog = make([]int64, len(stats))
	var errs []error
	for i, s := range stats {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", s.Name, s.Err))
		}
		res.Backlog[i] = s.Stats.Backlog
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("shardedqueue: balance: read the backlogs: %w", err)
	}
	next, move := plan(res.Rates, Split(res.Total, res.Backlog, cfg.floor()), cfg.threshold())
	for _, m := range move {
		if m {
			res.Wrote++
		}
	}
	if res.Wrote == 0 {
		return res, nil
	}
	again, err := q.controls(ctx, cs)
	if err != nil {
		return res, err
	}
	for i, c := range again {
		if c.Rate != live[i].Rate || c.Paused != live[i].Paused {
			res.Wrote, res.Skipped = 0, "a shard's settings changed during the pass"
			return res, nil
		}
	}
	var done []int
	for _, down := range []bool{true, false} {
		var idx []int
		for i, m := range move {
			if m && (next[i] < res.Rates[i]) == down {
				idx = append(idx, i)
			}
		}
		errs := make([]error, len(idx))
		var wg sync.WaitGroup
		for k, i := range idx {
			wg.Go(func() {
				if err := cs[i].SetRate(ctx, next[i], res.By); err != nil {
					errs[k] = fmt.Errorf("shard %s: %w", q.shards[i].Name, err)
				}
			})
		}
		wg.Wait()
		for k, i := range idx {
			if errs[k] == nil {
				done = append(done, i)
			}
		}
		if err := errors.Join(errs...); err != nil {
			// Put back what this pass changed: the total must not move.
			for _, i := range done {
				if rerr := cs[i].SetRate(context.WithoutCancel(ctx), res.Rates[i], res.By); rerr != nil {
					err = errors.Join(err, fmt.Errorf("shard %s: put back %v/s: %w", q.shards[i].Name, res.Rates[i], rerr))
				}
			}
			res.Wrote = 0
			return res, fmt.Errorf("shardedqueue: balance: %w", err)
		}
	}
	res.Rates = next
	return res, nil
}

// Equalize sets every shard to total / N, the total being the live sum,
// naming the author of the most recent change without "+balancer" (an
// equal split is what that author's SetRate makes); shards already there
// are not written. It undoes the balancer's split: the balancer calls it
// when it stops.
func (q *Queue) Equalize(ctx context.Context) (wrote int, err error) {
	cs, err := as[queue.Controller](q, "change its rate")
	if err != nil {
		return 0, err
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	live, err := q.controls(ctx, cs)
	if err != nil {
		return 0, err
	}
	var total float64
	var by string
	var latest time.Time
	for _, c := range live {
		total += c.Rate
		if c.At.After(latest) || (latest.IsZero() && by == "") {
			by, latest = c.By, c.At
		}
	}
	by = Author(by)
	if by == ByBalancer {
		by = ""
	}
	per := total / float64(len(live))
	var idx []int
	for i, c := range live {
		if math.Abs(c.Rate-per) > 1e-9*per {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return 0, nil
	}
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Go(func() {
			if err := cs[i].SetRate(ctx, per, by); err != nil {
				errs[k] = fmt.Errorf("shard %s: %w", q.shards[i].Name, err)
			}
		})
	}
	wg.Wait()
	return len(idx), errors.Join(errs...)
}

// controls reads every shard's Control at once (the caller holds ctlMu).
func (q *Queue) controls(ctx context.Context, cs []queue.Controller) ([]queue.Control, error) {
	got := make([]queue.Control, len(cs))
	if err := q.each(func(i int) (err error) {
		got[i], err = cs[i].Control(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("shardedqueue: %w", err)
	}
	return got, nil
}

func validRates(rates []float64) bool {
	for _, r := range rates {
		if !(r > 0) || math.IsInf(r, 0) {
			return false
		}
	}
	return true
}

// Balancer runs Balance every BalanceConfig.Interval (Run).
type Balancer struct {
	q      *Queue
	cfg    BalanceConfig
	active func() bool
	// name names the queue in the log lines.
	name string

	failing  bool
	balanced bool // a pass ran since Run started (Run equalizes on exit)
}

// NewBalancer returns the balancer WithBalance configured, or nil when
// there is none. active, when set, is asked before each pass: a pass runs
// only while it says true (the instance that holds the governor's lease).
func (q *Queue) NewBalancer(active func() bool) *Balancer {
	if q.balance.Interval <= 0 || len(q.shards) < 2 {
		return nil
	}
	return &Balancer{q: q, cfg: q.balance, active: active, name: q.shards[0].Name}
}

// Interval is the time between passes.
func (b *Balancer) Interval() time.Duration { return b.cfg.Interval }

// Run balances the shards every interval until ctx is done, then puts
// them back to an equal split of the live total (if it balanced at all),
// so a process that stops balancing leaves no skew behind that nobody
// corrects, and the embedded engine's restart rule, which judges each
// shard's rate against its configured share, sees plain shares. It returns
// nil: a failing pass is logged ("shard balancing failed") once when
// passes start failing, and once when one succeeds again ("shard
// balancing recovered"), and never stops it.
func (b *Balancer) Run(ctx context.Context) error {
	log := logging.FromContext(ctx).With("queue", b.name)
	log.InfoContext(ctx, "shard balancer started", "interval", b.cfg.Interval.String(),
		"floor", b.cfg.floor(), "threshold", b.cfg.threshold(), "shards", len(b.q.shards))
	tick := time.NewTicker(b.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			b.stop(ctx)
			return nil
		case <-tick.C:
			b.pass(ctx)
		}
	}
}

// pass runs one Balance and logs a change of failing state.
func (b *Balancer) pass(ctx context.Context) {
	if b.active != nil && !b.active() {
		return
	}
	log := logging.FromContext(ctx).With("queue", b.name)
	cctx, cancel := context.WithTimeout(ctx, balanceTimeout)
	// An engine logs every rate change at INFO ("queue: dispatch rate
	// changed"), one line per shard per pass while a backlog drains; the
	// pass's own DEBUG line below says it all once. Warnings still show.
	cctx = logging.WithLogger(cctx, slog.New(atLeast{logging.FromContext(ctx).Handler(), slog.LevelWarn}))
	res, err := b.q.Balance(cctx, b.cfg)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if !b.failing {
			log.WarnContext(ctx, "shard balancing failed; the shards keep their rates and it is retried every interval",
				"error", err.Error())
		}
		b.failing = true
		return
	}
	if b.failing {
		log.InfoContext(ctx, "shard balancing recovered")
	}
	b.failing, b.balanced = false, true
	if res.Wrote > 0 {
		log.DebugContext(ctx, "shard rates balanced", "total", res.Total, "backlog", res.Backlog,
			"rates", res.Rates, "wrote", res.Wrote, "by", res.By)
	}
}

// stop puts the shards back to an equal split, bounded, after ctx ended.
func (b *Balancer) stop(ctx context.Context) {
	if !b.balanced || (b.active != nil && !b.active()) {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), balanceTimeout)
	defer cancel()
	if _, err := b.q.Equalize(cctx); err != nil {
		logging.FromContext(ctx).WarnContext(ctx, "shard balancer could not put the shards back to an equal split",
			"queue", b.name, "error", err.Error())
	}
}

// atLeast is a handler that drops records below min.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}
