package sourcemock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Defaults applied by NewSender to zero fields.
const (
	// DefaultDeadline is the source application's rule: a 2xx within 500 ms.
	DefaultDeadline      = 500 * time.Millisecond
	DefaultConcurrency   = 64
	DefaultBurstInterval = time.Second
)

// Config says where to send events, how fast and for how long.
//
// Steady mode (Burst == 0) sends Rate events per second, evenly spaced.
// Burst mode (Burst > 0) sends Burst events at once every BurstInterval and
// ignores Rate. The run stops after Count events or Duration, whichever comes
// first; with neither it runs until its context is done.
type Config struct {
	// IngestURL is ingest's base URL; events go to POST {IngestURL}/events
	// (a URL already ending in /events is used as it is).
	IngestURL string `env:"INGEST_URL"`
	// Rate is events per second in steady mode.
	Rate float64 `env:"SOURCE_RATE, default=10"`
	// Burst is the number of events sent at once in burst mode; 0 is steady.
	Burst int `env:"SOURCE_BURST, default=0"`
	// BurstInterval is the time between bursts (default 1s).
	BurstInterval time.Duration `env:"SOURCE_BURST_INTERVAL, default=1s"`
	// Count stops the run after this many events; 0 is no limit.
	Count int `env:"SOURCE_COUNT, default=0"`
	// Duration stops the run after this long; 0 is no limit.
	Duration time.Duration `env:"SOURCE_DURATION, default=0s"`
	// Concurrency bounds requests in flight (default 64). When every slot is
	// busy the schedule waits, so the achieved rate can fall below Rate.
	Concurrency int `env:"SOURCE_CONCURRENCY, default=64"`
	// Deadline is how long the source waits for a 2xx (default 500ms); it is
	// also each request's timeout.
	Deadline time.Duration `env:"SOURCE_DEADLINE, default=500ms"`
}

// NewConfig reads a Config from l (envconfig.OsLookuper() in main, a map in
// tests) and validates it.
func NewConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return Config{}, fmt.Errorf("read sourcemock config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid sourcemock config: %w", err)
	}
	return c, nil
}

// withDefaults fills the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.Deadline == 0 {
		c.Deadline = DefaultDeadline
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Burst > 0 && c.BurstInterval == 0 {
		c.BurstInterval = DefaultBurstInterval
	}
	return c
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if _, err := eventsURL(c.IngestURL); err != nil {
		errs = append(errs, err)
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst must be >= 0, got %d", c.Burst))
	}
	if c.Burst <= 0 && (!(c.Rate > 0) || math.IsInf(c.Rate, 0)) {
		errs = append(errs, fmt.Errorf("rate must be a number > 0 events/s, got %v", c.Rate))
	}
	if c.Burst > 0 && c.BurstInterval <= 0 {
		errs = append(errs, fmt.Errorf("burst interval must be > 0, got %v", c.BurstInterval))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("count must be >= 0, got %d", c.Count))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration must be >= 0, got %v", c.Duration))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency must be >= 1, got %d", c.Concurrency))
	}
	if c.Deadline <= 0 {
		errs = append(errs, fmt.Errorf("deadline must be > 0, got %v", c.Deadline))
	}
	return errors.Join(errs...)
}

// eventsURL is the URL events are posted to.
func eventsURL(ingest string) (string, error) {
	if ingest == "" {
		return "", errors.New("ingest URL is required")
	}
	u, err := url.Parse(ingest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("ingest URL must be an absolute http(s) URL, got %q", ingest)
	}
	if strings.HasSuffix(u.Path, "/events") {
		return u.String(), nil
	}
	return u.JoinPath("events").String(), nil
}
