package governor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Modes of QUEUE_GOVERNOR.
const (
	// ModeOn lets the governor slow and raise the queue's rate.
	ModeOn = "on"
	// ModeOff keeps it watching (the live-rate gauge, the ops page) but it
	// never changes the queue.
	ModeOff = "off"
)

// Config is the governor's configuration, read with go-envconfig. Its
// defaults are the env tags' and nowhere else: a zero field takes its tag's
// default (withDefaults), so a zero Config is a governor that is on with
// the defaults.
type Config struct {
	// Mode is on (default) or off.
	Mode string `env:"QUEUE_GOVERNOR, default=on"`
	// Window is how often the governor judges the outcomes seen since the
	// last look, and so how often it may change the rate.
	Window time.Duration `env:"QUEUE_GOVERNOR_WINDOW, default=10s"`
	// Threshold is the share of a window's target calls that must be rate
	// limited (strictly more than it) for the governor to slow the queue.
	Threshold float64 `env:"QUEUE_GOVERNOR_THRESHOLD, default=0.2"`
	// MinAttempts is how many target calls a window needs before the
	// governor slows the queue on its share: fewer say too little.
	MinAttempts int `env:"QUEUE_GOVERNOR_MIN_ATTEMPTS, default=20"`
	// Floor is the lowest rate, in dispatches per second, the governor
	// sets. The queue keeps probing the target at this rate, which is how
	// the governor sees the target recover (it never pauses the queue).
	Floor float64 `env:"QUEUE_GOVERNOR_FLOOR, default=1"`
	// Hold is how long the governor leaves the queue alone after ops
	// changed its rate by hand.
	Hold time.Duration `env:"QUEUE_GOVERNOR_HOLD, default=10m"`
	// LongRetryAfter: a window whose largest Retry-After is at least this
	// long, and that is slowed, goes straight to Floor.
	LongRetryAfter time.Duration `env:"QUEUE_GOVERNOR_LONG_RETRY_AFTER, default=30s"`
	// BreakerThreshold is the share of a window's target calls that must
	// fail (Classify's retryable: 5xx, no answer; strictly more than it)
	// for the circuit breaker to open, sending the queue to Floor.
	BreakerThreshold float64 `env:"QUEUE_GOVERNOR_BREAKER_THRESHOLD, default=0.5"`
	// BreakerMinAttempts is how many target calls a window needs before
	// the breaker opens on its failed share.
	BreakerMinAttempts int `env:"QUEUE_GOVERNOR_BREAKER_MIN_ATTEMPTS, default=20"`
	// BreakerOpen is how long the open breaker holds the queue at Floor
	// before probing the target for one window (half-open).
	BreakerOpen time.Duration `env:"QUEUE_GOVERNOR_BREAKER_OPEN, default=30s"`
}

// withDefaults fills the zero fields of c from the env tags' defaults (an
// explicit zero in the environment reads as zero, so it takes the default
// too) and normalises the mode.
func (c Config) withDefaults() Config {
	// Nothing is looked up: only the tags' defaults apply, and a non-zero
	// field is kept. The defaults are constants that parse, so this cannot
	// fail; if it did, c would keep its zero fields and Validate say so.
	_ = envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(nil)})
	c.Mode = strings.ToLower(strings.TrimSpace(c.Mode))
	return c
}

// Enabled reports whether the governor may change the queue's rate.
func (c Config) Enabled() bool { return c.withDefaults().Mode != ModeOff }

// Validate reports every problem in c (zero fields take their defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Mode != ModeOn && c.Mode != ModeOff {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR must be %s or %s, got %q", ModeOn, ModeOff, c.Mode))
	}
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_WINDOW must be > 0, got %v", c.Window))
	}
	if !(c.Threshold > 0 && c.Threshold < 1) {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_THRESHOLD must be within (0, 1), got %v", c.Threshold))
	}
	if c.MinAttempts < 1 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_MIN_ATTEMPTS must be >= 1, got %d", c.MinAttempts))
	}
	if !(c.Floor > 0) || math.IsInf(c.Floor, 0) {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_FLOOR must be > 0, got %v", c.Floor))
	}
	if c.Hold < 0 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_HOLD must be >= 0, got %v", c.Hold))
	}
	if c.LongRetryAfter < 0 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_LONG_RETRY_AFTER must be >= 0, got %v", c.LongRetryAfter))
	}
	if !(c.BreakerThreshold > 0 && c.BreakerThreshold < 1) {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_BREAKER_THRESHOLD must be within (0, 1), got %v", c.BreakerThreshold))
	}
	if c.BreakerMinAttempts < 1 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_BREAKER_MIN_ATTEMPTS must be >= 1, got %d", c.BreakerMinAttempts))
	}
	if c.BreakerOpen < 0 {
		errs = append(errs, fmt.Errorf("QUEUE_GOVERNOR_BREAKER_OPEN must be >= 0, got %v", c.BreakerOpen))
	}
	return errors.Join(errs...)
}

// Policy is the decision rule c configures.
func (c Config) Policy() Policy {
	c = c.withDefaults()
	return Policy{
		Threshold:      c.Threshold,
		MinAttempts:    c.MinAttempts,
		Floor:          c.Floor,
		Decrease:       DefaultDecrease,
		Increase:       DefaultIncrease,
		LongRetryAfter: c.LongRetryAfter,

		BreakerThreshold:   c.BreakerThreshold,
		BreakerMinAttempts: c.BreakerMinAttempts,
		BreakerOpen:        c.BreakerOpen,
	}
}
