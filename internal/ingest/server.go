// Package ingest is the service the source application calls. POST /events
// authenticates the caller, validates the event and answers 202 only after the
// queue has durably accepted a task for it, within a deadline that keeps the
// answer inside the source's 500 ms; a repeated event id is a 202 again and
// no second task. Everything else it can answer is an RFC 9457 problem.
//
// The checks run in this order, each with its own stable problem slug:
// method (405) → content type (415) → content encoding (415) → bearer token
// (401/403) → body size (413) → JSON (400 malformed-json) → event fields
// (400 invalid-event) → enqueue (503 queue-unavailable). Only after a 202 is the status record created,
// best effort: the dispatcher creates it if ingest could not.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/auth"
	"eventrelay/internal/event"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// Paths the server serves.
const (
	EventsPath = "/events"
	HealthPath = "/health"
)

// Problem slugs (appended to serving.ProblemTypeBase) of every failure ingest
// answers itself; the bearer-token ones are auth.Slug*. They are stable:
// clients and alerts match on them.
const (
	SlugMethodNotAllowed           = serving.SlugMethodNotAllowed           // 405
	SlugUnsupportedMediaType       = serving.SlugUnsupportedMediaType       // 415: Content-Type
	SlugUnsupportedContentEncoding = serving.SlugUnsupportedContentEncoding // 415: Content-Encoding
	SlugPayloadTooLarge            = "payload-too-large"                    // 413
	SlugUnreadableBody             = "unreadable-body"                      // 400: the body could not be read
	SlugMalformedJSON              = "malformed-json"                       // 400: not exactly one JSON object
	SlugInvalidEvent               = "invalid-event"                        // 400: field problems in "errors"
	SlugQueueUnavailable           = "queue-unavailable"                    // 503, with Retry-After
	SlugNotFound                   = serving.SlugNotFound                   // 404
)

// Accepted is the 202 body of POST /events.
type Accepted struct {
	ID     string        `json:"id"`
	Status status.Status `json:"status"`
	// Duplicate is true when a task for this event id was accepted before;
	// no second task was created.
	Duplicate bool `json:"duplicate"`
}

// Server is the ingest service.
type Server struct {
	cfg      Config
	queue    queue.Queue
	store    status.Store
	verifier auth.Verifier
	tracer   trace.Tracer
	metrics  metrics
}

// metrics are ingest's instruments (names in package telemetry).
type metrics struct {
	requests   metric.Int64Counter
	duration   metric.Float64Histogram
	enqueue    metric.Float64Histogram
	duplicates metric.Int64Counter
	// outcomes holds one prebuilt attribute set per outcome, so counting a
	// request allocates nothing.
	outcomes map[string]metric.MeasurementOption
}

func newMetrics(mp metric.MeterProvider) (metrics, error) {
	m := mp.Meter("eventrelay/internal/ingest")
	requests, err1 := m.Int64Counter(telemetry.MetricIngestRequests,
		metric.WithDescription("POST /events answers by outcome."), metric.WithUnit("{request}"))
	duration, err2 := m.Float64Histogram(telemetry.MetricIngestDuration,
		metric.WithDescription("Time from the request's arrival to its answer."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	enqueue, err3 := m.Float64Histogram(telemetry.MetricEnqueueDuration,
		metric.WithDescription("Duration of one enqueue call, deadline included."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets...))
	duplicates, err4 := m.Int64Counter(telemetry.MetricIngestDuplicates,
		metric.WithDescription("Events accepted as duplicates of an earlier id: no second task."), metric.WithUnit("{event}"))
	outcomes := make(map[string]metric.MeasurementOption, 5)
	for _, o := range []string{
		telemetry.IngestOutcomeAccepted, telemetry.IngestOutcomeDuplicate, telemetry.IngestOutcomeRejected,
		telemetry.IngestOutcomeUnauthenticated, telemetry.IngestOutcomeUnavailable,
	} {
		outcomes[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.AttrOutcome, o)))
	}
	return metrics{requests: requests, duration: duration, enqueue: enqueue, duplicates: duplicates, outcomes: outcomes},
		errors.Join(err1, err2, err3, err4)
}

// outcome names the answer for MetricIngestRequests.
func outcome(code int, duplicate bool) string {
	switch {
	case code == http.StatusAccepted && duplicate:
		return telemetry.IngestOutcomeDuplicate
	case code >= 200 && code < 300:
		return telemetry.IngestOutcomeAccepted
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return telemetry.IngestOutcomeUnauthenticated
	case code >= 400 && code < 500:
		return telemetry.IngestOutcomeRejected
	default: // 5xx, or nothing written (a panic: Recover answers 500)
		return telemetry.IngestOutcomeUnavailable
	}
}

// NewServer checks its dependencies and the fields of cfg the server uses
// (the deadlines; the AUTH_* fields only describe v, which the caller built).
// Spans and metrics go to the global providers unless opts choose others.
func NewServer(ctx context.Context, cfg Config, q queue.Queue, store status.Store, v auth.Verifier, opts ...telemetry.Option) (*Server, error) {
	var errs []error
	if err := cfg.validateServer(); err != nil {
		errs = append(errs, err)
	}
	if q == nil {
		errs = append(errs, errors.New("a queue is required"))
	}
	if store == nil {
		errs = append(errs, errors.New("a status store is required"))
	}
	if v == nil {
		errs = append(errs, errors.New("a token verifier is required"))
	}
	providers := telemetry.NewProviders(opts...)
	m, err := newMetrics(providers.Meter)
	if err != nil {
		errs = append(errs, fmt.Errorf("metrics: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return &Server{
		cfg:      cfg,
		queue:    q,
		store:    store,
		verifier: v,
		tracer:   providers.Tracer.Tracer("eventrelay/internal/ingest"),
		metrics:  m,
	}, nil
}

// Routes returns the service's handler: POST /events, GET /health, and a
// problem+json 404 elsewhere, with panics recovered and the logger from ctx
// in every request's context.
func (s *Server) Routes(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(EventsPath, s.handleEvents())
	mux.Handle(HealthPath, s.handleHealth())
	mux.Handle("/", serving.NotFound())
	return withLogger(logging.FromContext(ctx), serving.Recover(serving.CanonicalPaths(mux)))
}

func withLogger(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if logging.FromContext(r.Context()) != logger {
			r = r.WithContext(logging.WithLogger(r.Context(), logger))
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			serving.WriteProblem(w, http.StatusMethodNotAllowed, SlugMethodNotAllowed, "Method not allowed", "", nil)
			return
		}
		serving.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// request is what the handlers learn about one POST /events for its span
// and metrics; it travels in the request's context.
type request struct {
	start time.Time
	// answered is when the 202 was flushed (the status write follows it);
	// zero for every other answer, which ends the handler.
	answered  time.Time
	eventID   string // once parsed
	duplicate bool
}

type requestKey struct{}

// handleEvents traces the request and runs the checks that need no
// credentials, then the bearer check, then accept.
func (s *Server) handleEvents() http.Handler {
	authed := auth.RequireBearer(s.verifier, http.HandlerFunc(s.accept))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The trace starts at the source when it sends a traceparent.
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, "POST "+EventsPath,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
			))
		sw := &statusWriter{ResponseWriter: w}
		req := &request{start: start}
		defer func() {
			// One call for every attribute learnt on the way: each call
			// grows the span's attribute slice.
			if req.eventID != "" {
				span.SetAttributes(attribute.Int("http.response.status_code", sw.code),
					attribute.String("event.id", req.eventID), attribute.Bool("event.duplicate", req.duplicate))
			} else {
				span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
			}
			if sw.code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(sw.code))
			}
			span.End()
			end := req.answered
			if end.IsZero() {
				end = time.Now()
			}
			s.metrics.duration.Record(ctx, end.Sub(start).Seconds())
			s.metrics.requests.Add(ctx, 1, s.metrics.outcomes[outcome(sw.code, req.duplicate)])
		}()
		r = r.WithContext(context.WithValue(ctx, requestKey{}, req))

		if r.Method != http.MethodPost {
			sw.Header().Set("Allow", http.MethodPost)
			s.refuse(sw, r, http.StatusMethodNotAllowed, SlugMethodNotAllowed, "Method not allowed",
				"Send events with POST.", nil)
			return
		}
		if !serving.IsJSON(r.Header.Get("Content-Type")) {
			s.refuse(sw, r, http.StatusUnsupportedMediaType, SlugUnsupportedMediaType, "Unsupported media type",
				"Send the event as Content-Type: application/json (UTF-8).", nil)
			return
		}
		if serving.IsEncoded(r.Header) {
			logRefusal(r, http.StatusUnsupportedMediaType, SlugUnsupportedContentEncoding)
			serving.RefuseEncoded(sw)
			return
		}
		authed.ServeHTTP(sw, r)
	})
}

// accept runs once the caller is authenticated: read, parse, enqueue, answer.
func (s *Server) accept(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, _ := ctx.Value(requestKey{}).(*request)
	if req == nil { // only handleEvents calls accept; keep it safe all the same
		req = &request{start: time.Now()}
	}
	start := req.start

	body, err := readBody(w, r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, SlugPayloadTooLarge, "Event too large",
				fmt.Sprintf("An event body is at most %d bytes.", event.MaxEventBytes), nil)
			return
		}
		s.refuse(w, r, http.StatusBadRequest, SlugUnreadableBody, "Unreadable body",
			"The request body could not be read.", nil)
		return
	}
	ev, err := event.Parse(body)
	if err != nil {
		if verr, ok := errors.AsType[*event.ValidationError](err); ok {
			s.refuse(w, r, http.StatusBadRequest, SlugInvalidEvent, "Invalid event",
				"One or more fields are invalid; see errors.", verr.Problems)
			return
		}
		reason := err.Error()
		if merr, ok := errors.AsType[*event.MalformedError](err); ok {
			reason = merr.Reason
		}
		s.refuse(w, r, http.StatusBadRequest, SlugMalformedJSON, "Malformed JSON",
			"The body must be exactly one JSON object: "+reason+".", nil)
		return
	}
	req.eventID = ev.ID
	logger := logging.FromContext(ctx)

	payload, err := ev.MarshalJSON() // not json.Marshal: no HTML escaping
	if err != nil {
		// A parsed event always marshals; reaching this is a bug.
		panic(fmt.Sprintf("marshal parsed event %q: %v", ev.ID, err))
	}
	task := queue.Task{Name: queue.TaskName(ev.ID), Body: payload, Header: make(http.Header, 2)}
	duplicate, err := s.tracedEnqueue(ctx, task)
	if err != nil {
		logger.ErrorContext(ctx, "event not queued", "event_id", ev.ID, "task", task.Name, "reason", err.Error())
		w.Header().Set("Retry-After", "1")
		serving.WriteProblem(w, http.StatusServiceUnavailable, SlugQueueUnavailable, "Queue unavailable",
			"The event could not be queued in time.", nil)
		return
	}
	req.duplicate = duplicate
	if duplicate {
		s.metrics.duplicates.Add(ctx, 1)
	}

	// The queue has the task: the 202 is earned. It goes out (and is flushed)
	// before the status record is written, so that write costs the source
	// nothing; graceful shutdown still waits for it, as the handler runs on.
	writeAccepted(w, Accepted{ID: ev.ID, Status: status.Queued, Duplicate: duplicate})
	req.answered = time.Now()

	var caller string
	if c, ok := auth.ClaimsFromContext(ctx); ok {
		caller = c.Subject
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "event accepted",
		slog.String("event_id", ev.ID),
		slog.Bool("duplicate", duplicate),
		slog.String("task", task.Name),
		slog.String("caller", caller),
		slog.Float64("latency_ms", float64(req.answered.Sub(start).Microseconds())/1000),
	)
	if !duplicate {
		s.createStatus(ctx, ev, start)
	}
}

// tracedEnqueue enqueues t in a producer span, queue.enqueue, whose context
// the task carries (traceparent, tracestate, baggage): each delivery attempt
// of the task is a child of it, in the source's trace.
func (s *Server) tracedEnqueue(ctx context.Context, t queue.Task) (duplicate bool, err error) {
	ctx, span := s.tracer.Start(ctx, "queue.enqueue",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("eventrelay.task.name", t.Name)))
	defer span.End()
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(t.Header))
	start := time.Now()
	duplicate, err = s.enqueue(ctx, t)
	s.metrics.enqueue.Record(ctx, time.Since(start).Seconds())
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case duplicate:
		span.SetAttributes(attribute.Bool("eventrelay.task.duplicate", true))
	}
	return duplicate, err
}

// enqueue calls the queue under EnqueueTimeout. It does not trust the engine
// to honour the deadline: an engine that overruns it gets a 503 all the
// same, and one that panics too. A client that hangs up does not cancel the enqueue (the event may
// still be delivered, which beats losing it).
func (s *Server) enqueue(ctx context.Context, t queue.Task) (duplicate bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.EnqueueTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			// This goroutine is outside serving.Recover: a panicking engine
			// must cost one 503, not the process.
			if v := recover(); v != nil {
				done <- fmt.Errorf("%w: queue panicked: %v", queue.ErrUnavailable, v)
			}
		}()
		done <- s.queue.Enqueue(ctx, t)
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		select {
		case err = <-done: // answered just in time
		default:
			err = fmt.Errorf("%w: no answer within %v: %w", queue.ErrUnavailable, s.cfg.EnqueueTimeout, ctx.Err())
		}
	}
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, queue.ErrAlreadyExists):
		return true, nil
	default:
		return false, fmt.Errorf("enqueue task %s: %w", t.Name, err)
	}
}

// createStatus records the accepted event as queued, best effort: the task
// is durable in the queue, and the dispatcher creates a missing record.
func (s *Server) createStatus(ctx context.Context, ev event.Event, receivedAt time.Time) {
	var traceID string
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		traceID = sc.TraceID().String()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StatusTimeout)
	defer cancel()
	rec := status.Record{
		EventID:    ev.ID,
		Status:     status.Queued,
		Event:      ev,
		ReceivedAt: receivedAt.UTC(),
		UpdatedAt:  receivedAt.UTC(),
		TraceID:    traceID,
	}
	if _, err := s.store.Create(ctx, rec); err != nil {
		logging.FromContext(ctx).WarnContext(ctx, "status record not created; the dispatcher will create it",
			"event_id", ev.ID, "reason", err.Error())
	}
}

// refuse answers a problem for bad input and logs it without the body.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, slug, title, detail string, errs any) {
	logRefusal(r, code, slug)
	serving.WriteProblem(w, code, slug, title, detail, errs)
}

// logRefusal logs a refused request at INFO: status and slug only, never
// the body or the headers.
func logRefusal(r *http.Request, code int, slug string) {
	logging.FromContext(r.Context()).LogAttrs(r.Context(), slog.LevelInfo, "event refused",
		slog.Int("status", code), slog.String("problem", slug))
}

// writeAccepted writes the 202 with a Content-Length and flushes it, so the
// client has the whole answer even while the handler goes on.
func writeAccepted(w http.ResponseWriter, a Accepted) {
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("marshal accepted: %v", err))
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
	_ = http.NewResponseController(w).Flush()
}

// readBody reads at most event.MaxEventBytes; a larger body is an
// *http.MaxBytesError, refused from Content-Length alone when it says so.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > event.MaxEventBytes {
		return nil, &http.MaxBytesError{Limit: event.MaxEventBytes}
	}
	body := http.MaxBytesReader(w, r.Body, event.MaxEventBytes)
	size := 512
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1 // +1: room to see EOF without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// statusWriter remembers the status code for the span.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
