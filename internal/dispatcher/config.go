package dispatcher

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"eventrelay/internal/auth"
)

// Config is the dispatcher's configuration, read from the environment with
// go-envconfig.
type Config struct {
	// Brand is added to every event before it is sent to the target. It
	// comes only from configuration, never from a request.
	Brand string `env:"BRAND, default=testBrand"`
	// TargetURL is the target's GraphQL endpoint, e.g.
	// http://127.0.0.1:8082/graphql.
	TargetURL string `env:"TARGET_URL, required"`
	// TargetTimeout bounds one call to the target. Keep it below the queue's
	// dispatch deadline so the dispatcher answers before the queue gives up.
	TargetTimeout time.Duration `env:"TARGET_TIMEOUT, default=10s"`
	// Port is the TCP port to listen on (Cloud Run sets PORT).
	Port string `env:"PORT, default=8081"`
	// Auth (AUTH_*) says whose tokens may deliver tasks: in production
	// Google-signed tokens for the dispatcher's audience whose email is the
	// Cloud Tasks token service account. The X-CloudTasks-* headers are
	// never identity. NewServer does not read it: main builds the verifier
	// (auth.NewVerifier) and passes it as Options.Authenticate.
	Auth auth.Settings
}

// Validate reports every problem in c, as main needs it: the server's
// fields and the AUTH_* settings.
func (c Config) Validate() error {
	return errors.Join(c.validateServer(), c.Auth.Validate())
}

// validateServer checks the fields the Server itself uses; NewServer needs
// no more, so a caller that wires its own Authenticate (devstack) need not
// fill Auth.
func (c Config) validateServer() error {
	var errs []error
	if strings.TrimSpace(c.Brand) == "" {
		errs = append(errs, errors.New("BRAND must not be empty"))
	}
	if c.TargetURL == "" {
		errs = append(errs, errors.New("TARGET_URL is required"))
	} else if u, err := url.Parse(c.TargetURL); err != nil {
		errs = append(errs, fmt.Errorf("TARGET_URL: %w", err))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("TARGET_URL must be an absolute http(s) URL, got %q", c.TargetURL))
	}
	if c.TargetTimeout <= 0 {
		errs = append(errs, fmt.Errorf("TARGET_TIMEOUT must be > 0, got %v", c.TargetTimeout))
	}
	if c.Port != "" {
		if p, err := strconv.Atoi(c.Port); err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("PORT must be a TCP port number, got %q", c.Port))
		}
	}
	return errors.Join(errs...)
}
