package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth"
)

// SourceDeadline is how long the source application waits for a 2xx before
// it counts an event as failed (and never resends it). Every deadline inside
// a request must fit well inside it.
const SourceDeadline = 500 * time.Millisecond

// Config is the ingest service's configuration, read from the environment.
type Config struct {
	// Port is the TCP port to listen on (Cloud Run sets PORT).
	Port string `env:"PORT, default=8080"`

	// Auth (AUTH_*) says whose ID tokens are accepted: in production
	// Google-signed tokens for the ingest URL whose email is one of the
	// source's service accounts.
	Auth auth.Settings

	// EnqueueTimeout bounds one Queue.Enqueue: past it the source gets a 503
	// instead of a late answer it would ignore.
	EnqueueTimeout time.Duration `env:"ENQUEUE_TIMEOUT, default=250ms"`
	// StatusTimeout bounds the best-effort creation of the status record.
	StatusTimeout time.Duration `env:"STATUS_TIMEOUT, default=100ms"`
}

// NewConfig reads a Config from l (envconfig.OsLookuper() in main, a map in
// tests) and validates it.
func NewConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return Config{}, fmt.Errorf("read ingest config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid ingest config: %w", err)
	}
	return c, nil
}

// Validate reports every problem in c, as main needs it: the listener, the
// token rules and the deadlines.
func (c Config) Validate() error {
	var errs []error
	if p, err := strconv.Atoi(c.Port); err != nil || p < 0 || p > 65535 {
		errs = append(errs, fmt.Errorf("PORT must be a TCP port number, got %q", c.Port))
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateServer(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateServer checks the fields the Server itself uses; NewServer needs
// no more, so a caller that builds its own Verifier (relayctl dev) need not
// fill Auth.
func (c Config) validateServer() error {
	var errs []error
	if c.EnqueueTimeout <= 0 || c.EnqueueTimeout >= SourceDeadline {
		errs = append(errs, fmt.Errorf("ENQUEUE_TIMEOUT must be > 0 and < %v (the source's deadline), got %v", SourceDeadline, c.EnqueueTimeout))
	}
	if c.StatusTimeout <= 0 || c.StatusTimeout >= SourceDeadline {
		errs = append(errs, fmt.Errorf("STATUS_TIMEOUT must be > 0 and < %v, got %v", SourceDeadline, c.StatusTimeout))
	}
	return errors.Join(errs...)
}
