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

	"eventrelay/internal/auth/devissuer"
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
	if err := cfg.validateServer(); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	if store == nil {
		return nil, errors.New("dispatcher: status store is required")
	}
	if cfg.Auth.Issuer == devissuer.IssuerID {
		devissuer.LogNotForProduction(ctx)
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
// GET /health, problem+json 405 and 404 for anything else, and panics turned
// into 500 problems. A task request is checked in this order: method (405),
// Content-Type application/json (415 unsupported-media-type), no
// Content-Encoding (415 unsupported-content-encoding), Authenticate
// (401/403), then the handler. Request contexts carry the logger of ctx.
func (s *Server) Routes(ctx context.Context) http.Handler {
	logger := logging.FromContext(ctx)
	task := s.handleTask()
	if s.Authenticate != nil {
		task = s.Authenticate(task)
	} else {
		logger.WarnContext(ctx, "the task endpoint is NOT authenticated (Server.Authenticate is nil): anyone can trigger deliveries")
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+TaskPath, requireJSON(task))
	mux.Handle(TaskPath, serving.MethodNotAllowed(http.MethodPost))
	mux.Handle("GET "+HealthPath, s.handleHealth())
	mux.Handle(HealthPath, serving.MethodNotAllowed(http.MethodGet, http.MethodHead))
	mux.Handle("/", serving.NotFound())
	h := serving.Recover(serving.CanonicalPaths(mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(logging.WithLogger(r.Context(), logger)))
	})
}

// requireJSON refuses a task body that is not plain JSON before anything
// else reads it. The queue always sends application/json; anything else is
// a misconfigured queue or someone else, so it is logged at WARN.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		switch {
		case !serving.IsJSON(r.Header.Get("Content-Type")):
			logging.FromContext(ctx).WarnContext(ctx, "task refused", "status", http.StatusUnsupportedMediaType,
				"problem", serving.SlugUnsupportedMediaType)
			serving.WriteProblem(w, http.StatusUnsupportedMediaType, serving.SlugUnsupportedMediaType,
				"Unsupported media type", "Send the task body as Content-Type: application/json.", nil)
		case serving.IsEncoded(r.Header):
			logging.FromContext(ctx).WarnContext(ctx, "task refused", "status", http.StatusUnsupportedMediaType,
				"problem", serving.SlugUnsupportedContentEncoding)
			serving.RefuseEncoded(w)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (s *Server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serving.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
