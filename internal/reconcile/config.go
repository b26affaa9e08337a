package reconcile

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy is what the reconciler does with a record whose task is gone.
type Policy string

const (
	// PolicyRequeue enqueues the event again under the next task name of
	// its chain, so it is delivered without anyone's help.
	PolicyRequeue Policy = "requeue"
	// PolicyDeadLetter dead-letters the record, with the missing task as
	// its reason; `relayctl replay` sends it again.
	PolicyDeadLetter Policy = "dead_letter"
)

// MaxPageSize bounds RECONCILE_PAGE_SIZE: one page is held in memory.
const MaxPageSize = 1000

// Config is the reconciler's configuration, read once with the
// dispatcher's (go-envconfig). Every default is in the env tags.
type Config struct {
	// Grace is how long a record must have been left alone (UpdatedAt)
	// before a missing task counts: longer than any moment where a task is
	// legitimately gone while its record is not yet final or its next task
	// not yet there (docs/lld/reconciler.md, "Grace").
	Grace time.Duration `env:"RECONCILE_GRACE, default=15m"`
	// Interval is the time between two runs (each jittered by ±10 %).
	Interval time.Duration `env:"RECONCILE_INTERVAL, default=5m"`
	// Policy is requeue or dead_letter.
	Policy Policy `env:"RECONCILE_POLICY, default=requeue"`
	// PageSize is how many records one List call reads.
	PageSize int `env:"RECONCILE_PAGE_SIZE, default=200"`
	// ChecksPerSecond bounds how fast a pass asks the queue about records
	// (and so how fast it reads them): a large backlog then costs a
	// longer pass, never a burst of reads and GetTask calls.
	ChecksPerSecond float64 `env:"RECONCILE_CHECKS_PER_SECOND, default=50"`
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Grace <= 0 {
		errs = append(errs, fmt.Errorf("RECONCILE_GRACE must be > 0, got %v", c.Grace))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("RECONCILE_INTERVAL must be > 0, got %v", c.Interval))
	}
	switch c.Policy {
	case PolicyRequeue, PolicyDeadLetter:
	default:
		errs = append(errs, fmt.Errorf("RECONCILE_POLICY must be %s or %s, got %q", PolicyRequeue, PolicyDeadLetter, c.Policy))
	}
	if !(c.ChecksPerSecond > 0) || math.IsInf(c.ChecksPerSecond, 0) {
		errs = append(errs, fmt.Errorf("RECONCILE_CHECKS_PER_SECOND must be > 0, got %v", c.ChecksPerSecond))
	}
	if c.PageSize < 1 || c.PageSize > MaxPageSize {
		errs = append(errs, fmt.Errorf("RECONCILE_PAGE_SIZE must be between 1 and %d, got %d", MaxPageSize, c.PageSize))
	}
	return errors.Join(errs...)
}
