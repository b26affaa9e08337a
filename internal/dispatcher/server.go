// Package dispatcher is the task handler the queue (Cloud Tasks in
// production, sqlitequeue locally) POSTs each event to. For every delivery it
// checks the event's status record, enriches the event with the configured
// brand, calls the target through the genqlient client in package target,
// classifies the result in one place (Classify), records the attempt and
// answers the queue: 2xx to stop, 429 or 503 (with Retry-After) to retry.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

// Paths the dispatcher serves.
const (
	// TaskPath is where the queue delivers tasks: the queue's target URL is
	// the dispatcher's base URL + TaskPath.
	TaskPath = "/tasks/events"
	// HealthPath answers 200 while the process serves.
	HealthPath = "/health"
)

// tracerName names the dispatcher's tracer.
const tracerName = "eventrelay/internal/dispatcher"

// Server is the dispatcher's HTTP service.
type Server struct {
	// Authenticate, when set before Routes is called, wraps the task handler
	// (never /health). It is the seam for verifying the queue's OIDC token:
	// it must answer 401/403 itself and call the next handler only for an
	// authenticated request. Nil means no authentication.
	Authenticate func(next http.Handler) http.Handler

	cfg    Config
	store  status.Store
	target *target.Client
	tracer trace.Tracer
	now    func() time.Time
}

// NewServer validates cfg and builds a Server recording status in store and
// calling the target with client (nil means a default client). client is not
// modified: its transport is wrapped by a target.Transport in a copy.
func NewServer(ctx context.Context, cfg Config, store status.Store, client *http.Client) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	if store == nil {
		return nil, errors.New("dispatcher: status store is required")
	}
	logging.FromContext(ctx).DebugContext(ctx, "dispatcher configured",
		"target_url", cfg.TargetURL, "target_timeout", cfg.TargetTimeout.String(),
		"brand", cfg.Brand, "max_attempts", cfg.Retry.MaxAttempts)
	return &Server{
		cfg:    cfg,
		store:  store,
		target: target.New(cfg.TargetURL, client, cfg.TargetTimeout),
		tracer: otel.Tracer(tracerName),
		now:    time.Now,
	}, nil
}

// Routes returns the dispatcher's handler: POST /tasks/events and
// GET /health, with panics turned into 500 problems. Request contexts carry
// the logger of ctx.
func (s *Server) Routes(ctx context.Context) http.Handler {
	logger := logging.FromContext(ctx)
	task := s.handleTask()
	if s.Authenticate != nil {
		task = s.Authenticate(task)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+TaskPath, task)
	mux.Handle("GET "+HealthPath, s.handleHealth())
	h := serving.Recover(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(logging.WithLogger(r.Context(), logger)))
	})
}

func (s *Server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serving.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
