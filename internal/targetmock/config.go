package targetmock

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// RateLimitMode is how the target answers a call over its limit.
type RateLimitMode string

// The rate-limit modes.
const (
	// ModeHTTP answers HTTP 429 with a Retry-After header.
	ModeHTTP RateLimitMode = "http"
	// ModeGraphQL answers HTTP 200 with a GraphQL error whose
	// extensions.code is RATE_LIMITED.
	ModeGraphQL RateLimitMode = "graphql"
)

func (m RateLimitMode) valid() bool { return m == ModeHTTP || m == ModeGraphQL }

// Config configures targetmock. Every field has an environment variable.
type Config struct {
	// Port is the TCP port targetmock/main.go listens on.
	Port string `env:"PORT, default=8082"`
	// Rate is the token bucket's refill rate: receiveEvent calls per second.
	Rate float64 `env:"TARGET_RATE, default=10"`
	// Burst is the token bucket's size.
	Burst int `env:"TARGET_BURST, default=1"`
	// RateLimitMode is http (429 + Retry-After) or graphql (200 + RATE_LIMITED).
	RateLimitMode RateLimitMode `env:"TARGET_RATE_LIMIT_MODE, default=http"`
	// ErrorRatio is the fraction of receiveEvent calls (0..1) that get an
	// injected HTTP 500 before any side effect.
	ErrorRatio float64 `env:"TARGET_ERROR_RATIO, default=0"`
	// Latency is added to every receiveEvent call that passes the limit.
	Latency time.Duration `env:"TARGET_LATENCY, default=0s"`
	// LatencyJitter adds a uniform random [0, LatencyJitter) on top of Latency.
	LatencyJitter time.Duration `env:"TARGET_LATENCY_JITTER, default=0s"`
	// DataPath is the SQLite file that keeps the calls and the idempotency
	// set across restarts; empty keeps them in memory.
	DataPath string `env:"TARGET_DATA"`
}

// LoadConfig reads a Config from l (envconfig.OsLookuper() in main, a
// envconfig.MapLookuper in tests) and validates it.
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var cfg Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: l}); err != nil {
		return Config{}, fmt.Errorf("read targetmock config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid targetmock config: %w", err)
	}
	return cfg, nil
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Port == "" {
		errs = append(errs, errors.New("PORT is required"))
	}
	errs = append(errs, validateRate(c.Rate, c.Burst)...)
	if !c.RateLimitMode.valid() {
		errs = append(errs, fmt.Errorf("TARGET_RATE_LIMIT_MODE must be %q or %q, got %q", ModeHTTP, ModeGraphQL, c.RateLimitMode))
	}
	if err := validateRatio(c.ErrorRatio); err != nil {
		errs = append(errs, fmt.Errorf("TARGET_ERROR_RATIO: %w", err))
	}
	if c.Latency < 0 {
		errs = append(errs, fmt.Errorf("TARGET_LATENCY must not be negative, got %s", c.Latency))
	}
	if c.LatencyJitter < 0 {
		errs = append(errs, fmt.Errorf("TARGET_LATENCY_JITTER must not be negative, got %s", c.LatencyJitter))
	}
	return errors.Join(errs...)
}

func validateRate(rate float64, burst int) []error {
	var errs []error
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		errs = append(errs, fmt.Errorf("TARGET_RATE must be a finite number above 0 (calls per second), got %v", rate))
	}
	if burst < 1 {
		errs = append(errs, fmt.Errorf("TARGET_BURST must be at least 1, got %d", burst))
	}
	return errs
}

func validateRatio(r float64) error {
	if math.IsNaN(r) || r < 0 || r > 1 {
		return fmt.Errorf("must be within [0, 1], got %v", r)
	}
	return nil
}
