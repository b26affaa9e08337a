package targetmock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
	"eventrelay/internal/telemetry"
)

// Server is the target test double: the GraphQL endpoint, its rate limit,
// its fault knobs and its record of calls.
type Server struct {
	store   *store
	limiter *rate.Limiter
	tracer  trace.Tracer
	// now is the clock; tests in this package replace it before serving.
	now func() time.Time

	mu    sync.Mutex
	knobs Knobs

	closeOnce sync.Once
	closeErr  error
}

// Knobs are the settings tests change at run time.
type Knobs struct {
	// Rate is receiveEvent calls per second; Burst the bucket size.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// RateLimitMode is how a call over the limit is answered.
	RateLimitMode RateLimitMode `json:"rateLimitMode"`
	// ErrorRatio is the fraction of calls answered with an injected 500.
	ErrorRatio float64 `json:"errorRatio"`
	// MalformedRatio is the fraction of accepted calls whose answer is
	// mangled after the event was stored: a truncated body, a non-JSON body
	// or a response without the receipt, all with HTTP 200. The side effect
	// happened, the caller cannot tell: that is how a malformed response
	// turns into a duplicate call.
	MalformedRatio float64 `json:"malformedRatio"`
	// Latency (+ a uniform random [0, LatencyJitter)) is added to every call
	// that passes the limit.
	Latency       time.Duration `json:"-"`
	LatencyJitter time.Duration `json:"-"`
}

// NewServer opens the store (cfg.DataPath, or memory) and builds the target.
// It logs a warning that this is a test double. Close releases the store.
// Its spans go to the global tracer provider unless opts choose another.
func NewServer(ctx context.Context, cfg Config, opts ...telemetry.Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid targetmock config: %w", err)
	}
	st, err := openStore(ctx, cfg.DataPath)
	if err != nil {
		return nil, fmt.Errorf("open targetmock store: %w", err)
	}
	s := &Server{
		store:   st,
		limiter: rate.NewLimiter(toLimit(cfg.Rate), cfg.Burst),
		tracer:  telemetry.NewProviders(opts...).Tracer.Tracer("eventrelay/internal/targetmock"),
		now:     time.Now,
		knobs: Knobs{
			Rate:          cfg.Rate,
			Burst:         cfg.Burst,
			RateLimitMode: cfg.RateLimitMode,
			ErrorRatio:    cfg.ErrorRatio,
			Latency:       cfg.Latency,
			LatencyJitter: cfg.LatencyJitter,
		},
	}
	where := cfg.DataPath
	if where == "" {
		where = "memory"
	}
	logging.FromContext(ctx).WarnContext(ctx, "targetmock is a TEST DOUBLE of the target application, not for production",
		"rate", cfg.Rate, "burst", cfg.Burst, "rate_limit_mode", cfg.RateLimitMode,
		"error_ratio", cfg.ErrorRatio, "latency", cfg.Latency.String(), "data", where)
	return s, nil
}

func toLimit(r float64) rate.Limit { return rate.Limit(r) }

// Close closes the store. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if err := s.store.close(); err != nil {
			s.closeErr = fmt.Errorf("close targetmock store: %w", err)
		}
	})
	return s.closeErr
}

// Routes returns the target's handler:
//
//	POST /graphql       the GraphQL API (receiveEvent is rate limited)
//	GET  /health        liveness
//	GET  /admin/faults  the current Knobs
//	POST /admin/faults  change some Knobs (JSON, every field optional)
//
// The logger in ctx is carried into every request.
func (s *Server) Routes(ctx context.Context) http.Handler {
	logger := logging.FromContext(ctx)
	mux := http.NewServeMux()
	mux.Handle("POST /graphql", s.handleGraphQL())
	mux.Handle("GET /health", s.handleHealth())
	mux.Handle("GET /admin/faults", s.handleGetKnobs())
	mux.Handle("POST /admin/faults", s.handleSetKnobs())
	// Everything else is a problem+json 405 or 404, never net/http's text.
	mux.Handle("/graphql", serving.MethodNotAllowed(http.MethodPost))
	mux.Handle("/health", serving.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.Handle("/admin/faults", serving.MethodNotAllowed(http.MethodGet, http.MethodHead, http.MethodPost))
	mux.Handle("/", serving.NotFound())
	h := serving.CanonicalPaths(mux)
	return serving.Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(logging.WithLogger(r.Context(), logger)))
	}))
}

func (s *Server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serving.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Knobs returns the current settings.
func (s *Server) Knobs() Knobs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.knobs
}

// SetErrorRatio sets the fraction of receiveEvent calls (0..1) answered with
// an injected HTTP 500.
func (s *Server) SetErrorRatio(r float64) error {
	if err := validateRatio(r); err != nil {
		return fmt.Errorf("error ratio: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.ErrorRatio = r
	return nil
}

// SetMalformedRatio sets the fraction of accepted receiveEvent calls (0..1)
// whose answer is mangled after the event was stored.
func (s *Server) SetMalformedRatio(r float64) error {
	if err := validateRatio(r); err != nil {
		return fmt.Errorf("malformed ratio: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.MalformedRatio = r
	return nil
}

// SetLatency sets the fixed latency added to every receiveEvent call that
// passes the limit.
func (s *Server) SetLatency(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("latency must not be negative, got %s", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.Latency = d
	return nil
}

// SetLatencyJitter sets the random latency [0, d) added on top of SetLatency.
func (s *Server) SetLatencyJitter(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("latency jitter must not be negative, got %s", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.LatencyJitter = d
	return nil
}

// SetRate changes the token bucket: r calls per second (finite, above 0; a
// huge r such as 1e9 means no limit), burst at least 1.
func (s *Server) SetRate(r float64, burst int) error {
	if errs := validateRate(r, burst); len(errs) > 0 {
		return fmt.Errorf("rate: %w", errors.Join(errs...))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.limiter.SetLimitAt(now, toLimit(r))
	s.limiter.SetBurstAt(now, burst)
	s.knobs.Rate, s.knobs.Burst = r, burst
	return nil
}

// SetRateLimitMode changes how calls over the limit are answered.
func (s *Server) SetRateLimitMode(m RateLimitMode) error {
	if !m.valid() {
		return fmt.Errorf("rate limit mode must be %q or %q, got %q", ModeHTTP, ModeGraphQL, m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.knobs.RateLimitMode = m
	return nil
}

// Stats summarises every call recorded so far.
func (s *Server) Stats(ctx context.Context) (Stats, error) { return s.store.stats(ctx) }

// Events lists the stored events (the side effects), oldest first.
func (s *Server) Events(ctx context.Context) ([]ReceivedEvent, error) { return s.store.events(ctx) }

// Event returns one stored event, or an error wrapping ErrNotFound.
func (s *Server) Event(ctx context.Context, id string) (ReceivedEvent, error) {
	return s.store.event(ctx, id)
}

// Calls lists recorded receiveEvent calls, oldest first.
func (s *Server) Calls(ctx context.Context, f CallFilter) ([]Call, error) {
	return s.store.calls(ctx, f)
}

// PerSecond counts calls per wall-clock second, oldest first; seconds
// without calls are left out.
func (s *Server) PerSecond(ctx context.Context) ([]SecondCount, error) {
	return s.store.perSecond(ctx)
}

// admit takes a token for one receiveEvent call at now. When the bucket is
// empty it returns false and how long until a token is due.
func (s *Server) admit(now time.Time) (bool, time.Duration) {
	if s.limiter.AllowN(now, 1) {
		return true, 0
	}
	lim := s.limiter.Limit()
	if lim <= 0 {
		return false, time.Minute
	}
	missing := 1 - s.limiter.TokensAt(now)
	return false, time.Duration(missing / float64(lim) * float64(time.Second))
}

// delay is the latency to add to one call, drawn from the knobs.
func (k Knobs) delay() time.Duration {
	d := k.Latency
	if k.LatencyJitter > 0 {
		d += rand.N(k.LatencyJitter)
	}
	return d
}

// malformed reports whether one accepted call gets a mangled answer.
func (k Knobs) malformed() bool {
	return k.MalformedRatio > 0 && rand.Float64() < k.MalformedRatio
}

// faulty reports whether one call gets an injected fault.
func (k Knobs) faulty() bool {
	return k.ErrorRatio > 0 && rand.Float64() < k.ErrorRatio
}
