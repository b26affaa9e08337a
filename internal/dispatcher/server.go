// Package dispatcher is the task handler the queue (Cloud Tasks in
// production, sqlitequeue locally) POSTs each event to. For every delivery it
// checks the event's status record, enriches the event with the configured
// brand, calls the target through the genqlient client in package target,
// classifies the result in one place (Classify), records the attempt and
// answers the queue: 2xx to stop; 429 or 503 (with Retry-After) to have the
// queue back off as a whole (rate limited, target overloaded or down); 500
// to retry only this task (the target failed this one event).
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
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

// Server is the dispatcher's HTTP service. It is built complete by
// NewServer; nothing is set on it afterwards.
type Server struct {
	authenticate func(next http.Handler) http.Handler
	requeueInto  queue.Queue
	observer     Observer
	retry        queue.RetryConfig

	cfg     Config
	store   status.Store
	target  *target.Client
	tracer  trace.Tracer
	metrics metrics
	now     func() time.Time
}

// Options are what a Server uses beside its Config and status store. Retry
// is required; with the other fields zero the server calls the target with a
// default client, does not authenticate deliveries, never requeues and tells
// no one its verdicts.
type Options struct {
	// Retry is the dispatcher's retry policy: the queue's backoff with the
	// dispatcher's own budget (wiring.DeliveryBudget), by which
	// IsLastAttempt picks the attempt the dispatcher dead-letters on. The
	// queue retries without limit (ADR 0008), so an attempt the dispatcher
	// answers 503 is retried even after the budget is spent.
	Retry queue.RetryConfig
	// Client calls the target (nil: a default client). It is not modified:
	// its transport is wrapped by a target.Transport in a copy.
	Client *http.Client
	// Authenticate wraps the task handler (never /health). It is the seam
	// for verifying the queue's OIDC token: it must answer 401/403 itself
	// and call the next handler only for an authenticated request. Nil
	// means no authentication (Routes logs a WARN).
	Authenticate func(next http.Handler) http.Handler
	// Requeue is the queue an event is enqueued into again when the target
	// rate limited its last allowed attempt: under a new task name
	// (queue.RequeueTaskName), not before the target's Retry-After, and the
	// record stays retrying. A rate limit is the target asking us to wait,
	// not a failure, so it must not dead-letter the event. Nil: such an
	// event is dead-lettered like any other failure of the last attempt.
	Requeue queue.Queue
	// Observer is told the verdict of every target call (the rate
	// governor). Its Observe must be cheap and safe for concurrent use.
	Observer Observer
}

// Observer is told the verdict of every target call: Classify's kind
// (delivered, rate_limited, retryable or permanent) and the Retry-After the
// target asked for. *governor.Governor is one.
type Observer interface {
	Observe(kind status.Outcome, retryAfter time.Duration)
}

// metrics are the dispatcher's instruments (names in package telemetry).
type metrics struct {
	requeues metric.Int64Counter
	attempts metric.Int64Counter
	target   metric.Float64Histogram
	lag      metric.Float64Histogram
	// outcomes holds one prebuilt attribute set per attempt outcome.
	outcomes map[status.Outcome]metric.MeasurementOption
}

func newMetrics(mp metric.MeterProvider) (metrics, error) {
	m := mp.Meter(tracerName)
	attempts, err1 := m.Int64Counter(telemetry.DispatchAttempts.Name,
		metric.WithDescription(telemetry.DispatchAttempts.Description), metric.WithUnit(telemetry.DispatchAttempts.Unit))
	target, err2 := m.Float64Histogram(telemetry.MetricTargetDuration,
		metric.WithDescription("Duration of one receiveEvent call to the target."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	lag, err3 := m.Float64Histogram(telemetry.MetricDeliveryLag,
		metric.WithDescription("Time from ingest receiving an event to the target having it."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.LagBuckets...))
	requeues, err4 := m.Int64Counter(telemetry.MetricDispatchRequeues,
		metric.WithDescription("Events enqueued again because the target rate limited their last allowed attempt."),
		metric.WithUnit("{event}"))
	outcomes := make(map[status.Outcome]metric.MeasurementOption, 6)
	for _, o := range []status.Outcome{
		status.OutcomeDelivered, status.OutcomeRateLimited, status.OutcomeRetryable,
		status.OutcomePermanent, status.OutcomeDeadLettered, status.OutcomeSkipped,
	} {
		outcomes[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.AttrOutcome, string(o))))
	}
	return metrics{requeues: requeues, attempts: attempts, target: target, lag: lag, outcomes: outcomes}, errors.Join(err1, err2, err3, err4)
}

// attempt counts one handled delivery.
func (m metrics) attempt(ctx context.Context, o status.Outcome) {
	m.attempts.Add(ctx, 1, m.outcomes[o])
}

// NewServer validates cfg and builds a Server recording status in store,
// with what o gives it (see Options). Spans and metrics go to the global
// providers unless opts choose others.
func NewServer(ctx context.Context, cfg Config, store status.Store, o Options, opts ...telemetry.Option) (*Server, error) {
	if err := errors.Join(cfg.validateServer(), o.Retry.Validate()); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	if store == nil {
		return nil, errors.New("dispatcher: status store is required")
	}
	providers := telemetry.NewProviders(opts...)
	m, err := newMetrics(providers.Meter)
	if err != nil {
		return nil, fmt.Errorf("dispatcher metrics: %w", err)
	}
	logging.FromContext(ctx).DebugContext(ctx, "dispatcher configured",
		"target_url", cfg.TargetURL, "target_timeout", cfg.TargetTimeout.String(),
		"brand", cfg.Brand, "max_attempts", o.Retry.MaxAttempts)
	return &Server{
		authenticate: o.Authenticate,
		requeueInto:  o.Requeue,
		observer:     o.Observer,
		retry:        o.Retry,
		cfg:          cfg,
		store:        store,
		target:       target.New(cfg.TargetURL, o.Client, cfg.TargetTimeout),
		tracer:       providers.Tracer.Tracer(tracerName),
		metrics:      m,
		now:          time.Now,
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
	if s.authenticate != nil {
		task = s.authenticate(task)
	} else {
		logger.WarnContext(ctx, "the task endpoint is NOT authenticated (Options.Authenticate is nil): anyone can trigger deliveries")
	}
	if s.requeueInto == nil {
		logger.WarnContext(ctx, "no queue to requeue into (Options.Requeue is nil): an event the target rate limits on its last attempt is dead-lettered")
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
