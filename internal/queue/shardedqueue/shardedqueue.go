// Package shardedqueue is one queue.Queue over N engine queues (shards), for
// a target faster than one engine queue may dispatch (a Cloud Tasks queue
// dispatches at most 500 tasks/s): the shards share the total rate, each at
// total / N unless a Balancer re-splits it by their backlogs (balance.go).
//
// It sits above the engines, so the embedded and the Cloud Tasks engines
// both shard the same way and the conformance suite runs over it. A task
// goes to the shard queue.ShardOf picks from its name, so every task of one
// event (its replays and requeues) goes to one shard, and a repeated event
// id meets its first task there and is deduplicated. docs/lld/queue.md,
// "Shards", says what the shards share and what they do not (the burst).
package shardedqueue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"eventrelay/internal/queue"
)

var (
	_ queue.Queue            = (*Queue)(nil)
	_ queue.Inspector        = (*Queue)(nil)
	_ queue.StatsReader      = (*Queue)(nil)
	_ queue.Controller       = (*Queue)(nil)
	_ queue.ShardStatsReader = (*Queue)(nil)
)

// Shard is one engine queue of a sharded queue.
type Shard struct {
	// Name is the engine queue's name, queue.ShardName(base, i) for shard i
	// (what its deliveries carry in X-CloudTasks-QueueName).
	Name string
	// Queue is the engine queue. Queue's Inspector, StatsReader and
	// Controller methods need every shard to implement that interface.
	Queue queue.Queue
}

// Queue routes each task to one of its shards and aggregates what the
// shards report. It is safe for concurrent use if its shards are.
type Queue struct {
	shards []Shard
	// balance configures NewBalancer (WithBalance).
	balance BalanceConfig
	// ctlMu serialises what reads or writes the split of the total rate
	// in this process: SetRate, Control, a balancing pass (Balance) and
	// Equalize, so none sees or writes a split computed from a stale
	// total.
	ctlMu sync.Mutex
}

// New returns a Queue over shards, in order: shard i carries the tasks
// queue.ShardOf(name, len(shards)) maps to i, so the order must stay the
// same for as long as the shards hold tasks (reordering or resizing moves
// events to shards that never saw their first task, and a repeated id is
// then no longer deduplicated).
func New(shards []Shard, opts ...Option) (*Queue, error) {
	if len(shards) == 0 {
		return nil, errors.New("shardedqueue: at least one shard is required")
	}
	seen := make(map[string]bool, len(shards))
	var errs []error
	for i, s := range shards {
		if s.Queue == nil {
			errs = append(errs, fmt.Errorf("shard %d (%q) has no queue", i, s.Name))
		}
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("shard %d has no name", i))
		} else if seen[s.Name] {
			errs = append(errs, fmt.Errorf("shard %d: name %q is used twice", i, s.Name))
		}
		seen[s.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("shardedqueue: %w", err)
	}
	q := &Queue{shards: append([]Shard(nil), shards...)}
	for _, o := range opts {
		o(q)
	}
	return q, nil
}

// Configs splits cfg, the configuration of the whole sharded queue, into
// the configuration of each of n shards (n >= 1):
//
//   - Name: queue.ShardName(cfg.Name, i);
//   - MaxDispatchesPerSecond: the total / n, so the shards together
//     dispatch at most the total;
//   - MaxBurstSize and MaxConcurrentDispatches: the total shared out in
//     whole units, the first shards taking one more when it does not
//     divide, so the shards' sum is the total; each shard gets at least 1,
//     so when the total is below n the sum is n, above it;
//   - the dispatch deadline and retry policy: unchanged.
//
// Cloud Tasks derives each shard's burst from its own rate, whatever
// MaxBurstSize says (docs/lld/queue.md, "Shards").
func Configs(cfg queue.Config, n int) []queue.Config {
	out := make([]queue.Config, n)
	for i := range out {
		c := cfg
		c.Name = queue.ShardName(cfg.Name, i)
		c.MaxDispatchesPerSecond = cfg.MaxDispatchesPerSecond / float64(n)
		c.MaxBurstSize = share(cfg.MaxBurstSize, n, i)
		c.MaxConcurrentDispatches = share(cfg.MaxConcurrentDispatches, n, i)
		out[i] = c
	}
	return out
}

// share is shard i's part of total split over n in whole units, at least 1.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return max(s, 1)
}

// Len is the number of shards.
func (q *Queue) Len() int { return len(q.shards) }

// Shards returns the shards, in routing order.
func (q *Queue) Shards() []Shard { return append([]Shard(nil), q.shards...) }

// ShardFor returns the shard that carries the task named name.
func (q *Queue) ShardFor(name string) Shard { return q.shards[queue.ShardOf(name, len(q.shards))] }

// Enqueue enqueues t on the shard its name maps to. Errors keep their
// meaning (errors.Is ErrAlreadyExists, ErrUnavailable) and name the shard.
func (q *Queue) Enqueue(ctx context.Context, t queue.Task) error {
	s := q.ShardFor(t.Name)
	if err := s.Queue.Enqueue(ctx, t); err != nil {
		return fmt.Errorf("shard %s: %w", s.Name, err)
	}
	return nil
}

// TaskExists asks the shard name maps to, the only one that can hold it.
func (q *Queue) TaskExists(ctx context.Context, name string) (bool, error) {
	s := q.ShardFor(name)
	in, ok := s.Queue.(queue.Inspector)
	if !ok {
		return false, fmt.Errorf("shardedqueue: shard %s (%T) cannot tell whether a task exists: %w", s.Name, s.Queue, errors.ErrUnsupported)
	}
	exists, err := in.TaskExists(ctx, name)
	if err != nil {
		return false, fmt.Errorf("shard %s: %w", s.Name, err)
	}
	return exists, nil
}

// Stats sums the shards' Backlog and InFlight and takes the largest
// OldestAge. If any shard cannot report, it returns zero Stats and an error
// naming each such shard: a sum that left a shard out would understate the
// backlog.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	srs, err := as[queue.StatsReader](q, "report its backlog")
	if err != nil {
		return queue.Stats{}, err
	}
	stats := make([]queue.Stats, len(q.shards))
	if err := q.each(func(i int) (err error) {
		stats[i], err = srs[i].Stats(ctx)
		return err
	}); err != nil {
		return queue.Stats{}, err
	}
	var out queue.Stats
	for _, s := range stats {
		out.Backlog += s.Backlog
		out.InFlight += s.InFlight
		out.OldestAge = max(out.OldestAge, s.OldestAge)
	}
	return out, nil
}

// ShardStats reads every shard's Stats at once. A shard that cannot answer
// has its error in Err; the others are still listed.
func (q *Queue) ShardStats(ctx context.Context) []queue.ShardStat {
	out := make([]queue.ShardStat, len(q.shards))
	var wg sync.WaitGroup
	for i, s := range q.shards {
		out[i].Name = s.Name
		sr, ok := s.Queue.(queue.StatsReader)
		if !ok {
			out[i].Err = fmt.Errorf("shardedqueue: shard %s (%T) cannot report its backlog: %w", s.Name, s.Queue, errors.ErrUnsupported)
			continue
		}
		wg.Go(func() { out[i].Stats, out[i].Err = sr.Stats(ctx) })
	}
	wg.Wait()
	return out
}

// ShardControl is one shard's live dispatch settings (its own rate and
// burst among them), for the pages and commands that list the shards.
type ShardControl struct {
	Name    string
	Control queue.Control
	// Err is why the shard's settings could not be read; Control is then
	// zero.
	Err error
}

// ShardControls reads every shard's dispatch settings. A shard that cannot
// answer has its error in Err; the others are still listed.
func (q *Queue) ShardControls(ctx context.Context) []ShardControl {
	out := make([]ShardControl, len(q.shards))
	var wg sync.WaitGroup
	for i, s := range q.shards {
		out[i].Name = s.Name
		c, ok := s.Queue.(queue.Controller)
		if !ok {
			out[i].Err = fmt.Errorf("shardedqueue: shard %s (%T) has no dispatch controls: %w", s.Name, s.Queue, errors.ErrUnsupported)
			continue
		}
		wg.Go(func() { out[i].Control, out[i].Err = c.Control(ctx) })
	}
	wg.Wait()
	return out
}

// Control reports the sharded queue's settings: Rate is the sum of the
// shards' rates (the total SetRate set), rounded to a millionth of a task
// per second so the split's floating-point error does not show; Burst is
// the sum of the shards' bursts, so Rate + Burst is the most the shards
// together send in the first second after an idle spell (a shard whose
// engine cannot tell its burst counts 0); Paused is
// true if any shard is paused (a shard left paused by a partial Resume
// holds its tasks); By and At are those of the most recent change on any
// shard ("" and zero when no shard keeps a record, as on Cloud Tasks),
// By naming the total's author: without the "+balancer" a re-split adds
// (Author), so a total the governor set reads as the governor's.
// If any shard cannot answer, it returns an error naming each such shard.
func (q *Queue) Control(ctx context.Context) (queue.Control, error) {
	cs, err := as[queue.Controller](q, "report its dispatch settings")
	if err != nil {
		return queue.Control{}, err
	}
	got := make([]queue.Control, len(q.shards))
	q.ctlMu.Lock()
	err = q.each(func(i int) (err error) {
		got[i], err = cs[i].Control(ctx)
		return err
	})
	q.ctlMu.Unlock()
	if err != nil {
		return queue.Control{}, err
	}
	var out queue.Control
	for _, c := range got {
		out.Rate += c.Rate
		out.Burst += c.Burst
		out.Paused = out.Paused || c.Paused
		if c.At.After(out.At) {
			out.By, out.At = Author(c.By), c.At
		}
	}
	out.Rate = math.Round(out.Rate*1e6) / 1e6
	return out, nil
}

// SetRate sets the total rate, keeping the shards' proportions: shard i
// gets perSecond × rateᵢ / Σrate, read from the shards just before, each
// shard naming BalancedBy(by) (an equal split, perSecond / N each naming
// by, when the shards run equal, as they do without a balancer, or when a
// rate cannot be read). So a new total from
// the governor or an operator does not undo the balancer's split, and the
// balancer's next pass re-splits the new total by the backlogs. A rate
// that is not > 0 and finite is queue.ErrInvalidRate, and a share above
// an engine's maximum is refused by that engine (wrapping ErrInvalidRate).
// All shards are asked at once; if some fail, the error names each, the
// others run at their new share and the failed ones keep theirs, so
// Control reports a total between the old and the new: call SetRate again.
// A balancing pass in this process waits for SetRate, and SetRate for it.
func (q *Queue) SetRate(ctx context.Context, perSecond float64, by string) error {
	if !(perSecond > 0) || math.IsInf(perSecond, 0) {
		return fmt.Errorf("shardedqueue: set rate to %v: %w (want > 0 and finite)", perSecond, queue.ErrInvalidRate)
	}
	cs, err := as[queue.Controller](q, "change its rate")
	if err != nil {
		return err
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	shares := make([]float64, len(q.shards))
	for i := range shares {
		shares[i] = perSecond / float64(len(q.shards))
	}
	if live, err := q.controls(ctx, cs); err == nil {
		rates := make([]float64, len(live))
		var sum float64
		for i, c := range live {
			rates[i] = c.Rate
			sum += c.Rate
		}
		if validRates(rates) && !allEqual(rates) {
			for i, r := range rates {
				shares[i] = perSecond * r / sum
			}
			// The shares are a re-split of by's total, not by's equal
			// split: name them so (BalancedBy).
			by = BalancedBy(by)
		}
	}
	return q.each(func(i int) error { return cs[i].SetRate(ctx, shares[i], by) })
}

// allEqual reports whether every rate is the first.
func allEqual(rates []float64) bool {
	for _, r := range rates {
		if r != rates[0] {
			return false
		}
	}
	return true
}

// Pause pauses every shard. If some fail, the error names each; the others
// are paused, the failed ones keep dispatching (at their share of the
// rate), and Control reports Paused: call Pause again.
func (q *Queue) Pause(ctx context.Context, by string) error {
	cs, err := as[queue.Controller](q, "pause")
	if err != nil {
		return err
	}
	return q.each(func(i int) error { return cs[i].Pause(ctx, by) })
}

// Resume resumes every shard. If some fail, the error names each; the
// others dispatch again, the failed ones stay paused and hold their
// tasks, and Control still reports Paused: call Resume again.
func (q *Queue) Resume(ctx context.Context, by string) error {
	cs, err := as[queue.Controller](q, "resume")
	if err != nil {
		return err
	}
	return q.each(func(i int) error { return cs[i].Resume(ctx, by) })
}

// as returns every shard's queue as a T, or an error naming the shards that
// are not one (before any shard is asked anything, so nothing is left half
// done).
func as[T any](q *Queue, what string) ([]T, error) {
	out := make([]T, len(q.shards))
	var errs []error
	for i, s := range q.shards {
		v, ok := s.Queue.(T)
		if !ok {
			errs = append(errs, fmt.Errorf("shard %s (%T) cannot %s: %w", s.Name, s.Queue, what, errors.ErrUnsupported))
			continue
		}
		out[i] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("shardedqueue: %w", err)
	}
	return out, nil
}

// each runs fn for every shard at once and joins the errors, each naming
// its shard.
func (q *Queue) each(fn func(i int) error) error {
	errs := make([]error, len(q.shards))
	var wg sync.WaitGroup
	for i, s := range q.shards {
		wg.Go(func() {
			if err := fn(i); err != nil {
				errs[i] = fmt.Errorf("shard %s: %w", s.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
