package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/event"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

// Span attribute keys of the per-attempt span.
const (
	attrEventID    = "eventrelay.event.id"
	attrRetryCount = "eventrelay.task.retry_count"
	attrTaskName   = "eventrelay.task.name"
	attrQueueName  = "eventrelay.queue.name"
	attrOutcome    = "eventrelay.outcome"
	attrHTTPStatus = "eventrelay.target.http_status"
)

// outcomeMalformed is the outcome answered for a task body that is not a
// valid event.
const outcomeMalformed = "malformed"

// outcomeRequeued is the outcome answered when an event rate limited on its
// last attempt was enqueued again under a new task.
const outcomeRequeued = "requeued"

// reasonRequeued is the record's reason after such a requeue.
const reasonRequeued = "requeued: rate limited on the last attempt"

// reasonStoreRequeued explains a requeue because the status store failed on
// the last attempt (nothing is recorded: the store is what failed).
const reasonStoreRequeued = "requeued: status store unavailable on the last attempt"

// requeueTimeout bounds the enqueue of a requeue. It runs even when the
// queue has stopped waiting: on the last attempt nobody else will.
const requeueTimeout = 10 * time.Second

// storeTimeout bounds a status write made after the target was called: it
// runs even when the queue has stopped waiting, so the record stays right.
const storeTimeout = 5 * time.Second

// delivery is the queue's metadata about one delivery, read from the
// X-CloudTasks-* headers. It describes the delivery; it is never identity.
type delivery struct {
	taskName       string
	queueName      string
	retryCount     int
	executionCount int
}

func readDelivery(h http.Header) delivery {
	return delivery{
		taskName:       h.Get(queue.HeaderTaskName),
		queueName:      h.Get(queue.HeaderQueueName),
		retryCount:     headerCount(h, queue.HeaderRetryCount),
		executionCount: headerCount(h, queue.HeaderExecutionCount),
	}
}

// headerCount reads a non-negative count; absent or invalid reads as 0.
func headerCount(h http.Header, name string) int {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(name)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// taskResponse is the body of a 2xx answer to the queue.
type taskResponse struct {
	EventID string        `json:"event_id,omitempty"`
	Outcome string        `json:"outcome"`
	Status  status.Status `json:"status,omitempty"`
	Reason  string        `json:"reason,omitempty"`
	// Task names the new task of a requeued event.
	Task string `json:"task,omitempty"`
}

// attempt carries one delivery through the handler's steps.
type attempt struct {
	w       http.ResponseWriter
	d       delivery
	span    trace.Span
	traceID string
	log     *slog.Logger
}

func (s *Server) handleTask() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := readDelivery(r.Header)
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, "dispatcher.deliver",
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.Int(attrRetryCount, d.retryCount),
				attribute.String(attrTaskName, d.taskName),
				attribute.String(attrQueueName, d.queueName),
			))
		defer span.End()

		a := &attempt{
			w:    w,
			d:    d,
			span: span,
			log: logging.FromContext(ctx).With(
				"task_name", d.taskName, "queue_name", d.queueName,
				"retry_count", d.retryCount, "execution_count", d.executionCount),
		}
		if sc := span.SpanContext(); sc.HasTraceID() {
			a.traceID = sc.TraceID().String()
		}

		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, event.MaxEncodedBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.malformed(ctx, a, nil, fmt.Sprintf("task body larger than %d bytes", tooBig.Limit))
				return
			}
			reason := "read task body: " + err.Error()
			a.log.ErrorContext(ctx, "task body unreadable; asking the queue to retry", "event_id", "", "reason", reason)
			a.end(codes.Error, reason)
			s.metrics.attempt(ctx, status.OutcomeRetryable)
			serving.WriteProblem(w, http.StatusServiceUnavailable, "task-body-unreadable", "Task body unreadable", reason, nil)
			return
		}
		ev, err := event.Parse(body)
		if err != nil {
			s.malformed(ctx, a, body, err.Error())
			return
		}
		s.deliver(ctx, a, ev)
	})
}

// deliver runs the steps for a well-formed event.
func (s *Server) deliver(ctx context.Context, a *attempt, ev event.Event) {
	a.log = a.log.With("event_id", ev.ID)
	a.span.SetAttributes(attribute.String(attrEventID, ev.ID))

	rec, err := s.store.Get(ctx, ev.ID)
	switch {
	case errors.Is(err, status.ErrNotFound):
		// Ingest's best-effort create never landed: Apply creates the record.
	case err != nil:
		s.storeUnavailable(ctx, a, ev, "read status: "+err.Error())
		return
	case rec.Status.Terminal():
		s.skip(ctx, a, ev.ID, rec.Status, "already "+string(rec.Status))
		return
	}

	now := s.now()
	last := s.retry.IsLastAttempt(a.d.retryCount, firstAttemptAt(rec), now)
	_, err = s.store.Apply(ctx, ev.ID, status.Update{Status: status.Delivering, At: now, Event: ev, TraceID: a.traceID})
	switch {
	case errors.Is(err, status.ErrConflict):
		// Another delivery of the same task finished first (at-least-once).
		s.skip(ctx, a, ev.ID, "", "finished by another delivery: "+err.Error())
		return
	case err != nil:
		s.storeUnavailable(ctx, a, ev, "record delivering: "+err.Error())
		return
	}

	a.log.InfoContext(ctx, "event delivering", "attempt", a.d.retryCount+1, "last_attempt", last)

	res, o := s.callTarget(ctx, ev)
	dec := decide(o, last)

	// A rate limit on the last attempt is the target asking us to wait, not
	// a failure: carry the event on in a new task rather than dead-letter
	// it. If that enqueue fails, dead-letter after all: the budget is spent,
	// and a final record is one replay can reach, whatever the queue does
	// with the task (it may keep finite attempts of its own).
	var requeued queue.Task
	var requeueErr error
	if dec.to == status.DeadLettered && o.Kind == status.OutcomeRateLimited && s.requeueInto != nil {
		if requeued, requeueErr = s.requeue(ctx, a, ev, o); requeueErr == nil {
			dec = decision{to: status.Retrying, attempt: status.OutcomeRateLimited, code: http.StatusOK}
		} else {
			a.log.ErrorContext(ctx, "event not requeued after a rate-limited last attempt; dead-lettering it",
				"reason", o.Reason, "error", requeueErr.Error())
		}
	}
	a.span.SetAttributes(attribute.String(attrOutcome, string(dec.attempt)), attribute.Int(attrHTTPStatus, res.HTTPStatus))

	at := status.Attempt{
		Number:     a.d.retryCount + 1,
		At:         now,
		Outcome:    dec.attempt,
		HTTPStatus: res.HTTPStatus,
		Duration:   res.Duration,
		TaskName:   a.d.taskName,
		TraceID:    a.traceID,
	}
	var reason string
	switch dec.to {
	case status.Failed:
		reason = o.Reason
	case status.DeadLettered:
		reason = fmt.Sprintf("gave up after attempt %d (the last allowed): %s", at.Number, o.Reason)
		if requeueErr != nil {
			reason += "; not requeued: " + requeueErr.Error()
		}
	case status.Retrying:
		if requeued.Name != "" {
			reason = reasonRequeued
		}
	}
	if dec.to != status.Delivered {
		at.Error = o.Reason
	}
	if requeued.Name != "" {
		at.Error += "; requeued as task " + requeued.Name
	}

	// The target has been called: record the outcome even if the queue has
	// stopped waiting for this request.
	storeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	after, err := s.store.Apply(storeCtx, ev.ID, status.Update{
		Status: dec.to, Attempt: &at, Reason: reason, At: s.now(), Event: ev, TraceID: a.traceID,
	})
	switch {
	case errors.Is(err, status.ErrConflict):
		// The record is terminal already: another delivery finished it.
		a.log.WarnContext(ctx, "outcome not recorded: event finished by another delivery",
			"reason", o.Reason, "outcome", string(dec.attempt), "error", err.Error())
		a.end(codes.Ok, "")
		s.metrics.attempt(ctx, status.OutcomeSkipped)
		serving.WriteJSON(a.w, http.StatusOK, taskResponse{EventID: ev.ID, Outcome: string(status.OutcomeSkipped), Reason: "finished by another delivery"})
		return
	case err != nil && requeued.Name != "":
		// The new task carries the event on; only this entry is lost.
		a.log.ErrorContext(ctx, "attempt not recorded", "reason", o.Reason, "error", err.Error())
	case err != nil && dec.code == http.StatusOK:
		// The target's verdict is final but not recorded. Retrying is safe
		// (the target is idempotent on the id and gets it as the
		// Idempotency-Key) and the next attempt records the verdict.
		s.storeUnavailable(ctx, a, ev, fmt.Sprintf("record %s: %v", dec.to, err))
		return
	case err != nil:
		// The queue retries anyway; only this attempt's entry is lost.
		a.log.ErrorContext(ctx, "attempt not recorded", "reason", o.Reason, "error", err.Error())
	}
	s.metrics.attempt(ctx, dec.attempt)
	if dec.to == status.Delivered && err == nil && !after.ReceivedAt.IsZero() {
		deliveredAt := at.At.Add(res.Duration)
		if after.DeliveredAt != nil {
			deliveredAt = *after.DeliveredAt
		}
		s.metrics.lag.Record(ctx, max(deliveredAt.Sub(after.ReceivedAt), 0).Seconds())
	}

	switch dec.to {
	case status.Delivered:
		a.log.InfoContext(ctx, "event delivered", "reason", o.Reason,
			"http_status", res.HTTPStatus, "duration_ms", res.Duration.Milliseconds(), "attempt", at.Number)
		a.end(codes.Ok, "")
	case status.Failed:
		a.log.ErrorContext(ctx, "event failed permanently", "reason", o.Reason,
			"http_status", res.HTTPStatus, "attempt", at.Number)
		a.end(codes.Error, o.Reason)
	case status.DeadLettered:
		a.log.ErrorContext(ctx, "event dead-lettered on the last attempt", "reason", reason,
			"http_status", res.HTTPStatus, "attempt", at.Number)
		a.end(codes.Error, reason)
	case status.Retrying:
		if requeued.Name != "" {
			s.metrics.requeues.Add(ctx, 1)
			a.log.WarnContext(ctx, "event requeued: rate limited on the last attempt", "reason", o.Reason,
				"http_status", res.HTTPStatus, "attempt", at.Number, "retry_after_s", o.RetryAfter.Seconds(),
				"new_task", requeued.Name, "not_before", requeued.NotBefore.UTC().Format(time.RFC3339Nano))
			a.end(codes.Error, reasonRequeued)
			break
		}
		fallthrough
	default:
		a.log.WarnContext(ctx, "delivery will be retried", "reason", o.Reason, "outcome", string(dec.attempt),
			"http_status", res.HTTPStatus, "retry_after_s", o.RetryAfter.Seconds(), "attempt", at.Number,
			"answer", dec.code)
		a.end(codes.Error, o.Reason)
	}

	switch dec.code {
	case http.StatusTooManyRequests:
		a.w.Header().Set("Retry-After", retryAfterHeader(o.RetryAfter))
		serving.WriteProblem(a.w, dec.code, "target-rate-limited", "Target rate limited", o.Reason, nil)
	case http.StatusServiceUnavailable:
		if o.RetryAfter > 0 {
			a.w.Header().Set("Retry-After", retryAfterHeader(o.RetryAfter))
		}
		serving.WriteProblem(a.w, dec.code, "target-unavailable", "Target unavailable", o.Reason, nil)
	case http.StatusInternalServerError:
		if o.RetryAfter > 0 {
			a.w.Header().Set("Retry-After", retryAfterHeader(o.RetryAfter))
		}
		serving.WriteProblem(a.w, dec.code, "target-failed-event", "Target failed this event", o.Reason, nil)
	default:
		resp := taskResponse{EventID: ev.ID, Outcome: string(dec.attempt), Status: dec.to}
		if dec.to != status.Delivered {
			resp.Reason = reason
		}
		if requeued.Name != "" {
			resp.Outcome, resp.Task = outcomeRequeued, requeued.Name
		}
		serving.WriteJSON(a.w, http.StatusOK, resp)
	}
}

// requeue enqueues ev again, in its trace, under the next task name of its
// chain, not before the target's Retry-After (at least the queue's
// MinBackoff). A task of that name existing already is success: it is this
// same requeue, made by an earlier delivery of the same last attempt.
func (s *Server) requeue(ctx context.Context, a *attempt, ev event.Event, o Outcome) (queue.Task, error) {
	if s.requeueInto == nil {
		return queue.Task{}, errors.New("the dispatcher has no queue to requeue into")
	}
	name, ok := queue.RequeueTaskName(ev.ID, a.d.taskName)
	if !ok {
		return queue.Task{}, fmt.Errorf("the delivery's task name %q is not one of the event's", a.d.taskName)
	}
	body, err := ev.MarshalJSON()
	if err != nil {
		return queue.Task{}, fmt.Errorf("encode the event: %w", err)
	}
	t := queue.Task{
		Name:      name,
		Body:      body,
		Header:    http.Header{},
		NotBefore: s.now().Add(max(o.RetryAfter, s.retry.MinBackoff)),
	}
	// The attempt's span context: the new task's deliveries join the
	// event's trace under this attempt.
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(t.Header))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requeueTimeout)
	defer cancel()
	if err := s.requeueInto.Enqueue(ctx, t); err != nil && !errors.Is(err, queue.ErrAlreadyExists) {
		return queue.Task{}, fmt.Errorf("enqueue task %s: %w", name, err)
	}
	return t, nil
}

// callTarget sends the enriched event in a client span, target.receiveEvent,
// whose context the request carries as traceparent (the Transport injects
// it), and classifies the result.
func (s *Server) callTarget(ctx context.Context, ev event.Event) (target.Result, Outcome) {
	ctx, span := s.tracer.Start(ctx, "target.receiveEvent",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", http.MethodPost)))
	defer span.End()
	res := s.target.Send(ctx, event.Enrich(ev, s.cfg.Brand))
	o := Classify(res)
	if s.observer != nil {
		s.observer.Observe(o.Kind, o.RetryAfter)
	}
	s.metrics.target.Record(ctx, res.Duration.Seconds())
	span.SetAttributes(attribute.Int("http.response.status_code", res.HTTPStatus), attribute.String(attrOutcome, string(o.Kind)))
	if o.Kind != status.OutcomeDelivered {
		span.SetStatus(codes.Error, o.Reason)
	}
	return res, o
}

// malformed handles a task body that is not a valid event. Retrying cannot
// fix it, so it answers 200; it records the event failed when an id can be
// read from the body.
func (s *Server) malformed(ctx context.Context, a *attempt, body []byte, reason string) {
	reason = "unparseable task body: " + reason
	id := extractID(body)
	a.span.SetAttributes(attribute.String(attrEventID, id), attribute.String(attrOutcome, outcomeMalformed))
	a.log.ErrorContext(ctx, "task body is not a valid event; dropping it", "event_id", id, "reason", reason)
	a.end(codes.Error, reason)
	s.metrics.attempt(ctx, status.OutcomePermanent)

	resp := taskResponse{EventID: id, Outcome: outcomeMalformed, Reason: reason}
	if id != "" {
		now := s.now()
		_, err := s.store.Apply(ctx, id, status.Update{
			Status: status.Failed,
			Reason: reason,
			At:     now,
			Attempt: &status.Attempt{
				Number:   a.d.retryCount + 1,
				At:       now,
				Outcome:  status.OutcomePermanent,
				Error:    reason,
				TaskName: a.d.taskName,
				TraceID:  a.traceID,
			},
			Event:   event.Event{ID: id},
			TraceID: a.traceID,
		})
		switch {
		case err == nil:
			resp.Status = status.Failed
		case errors.Is(err, status.ErrConflict):
			a.log.WarnContext(ctx, "malformed task for a finished event; record unchanged", "event_id", id, "reason", reason)
		default:
			a.log.ErrorContext(ctx, "could not record malformed task as failed", "event_id", id, "reason", reason, "error", err.Error())
		}
	}
	serving.WriteJSON(a.w, http.StatusOK, resp)
}

// skip answers 200 without calling the target.
func (s *Server) skip(ctx context.Context, a *attempt, id string, st status.Status, reason string) {
	a.span.SetAttributes(attribute.String(attrOutcome, string(status.OutcomeSkipped)))
	a.log.InfoContext(ctx, "target not called", "reason", reason, "status", string(st))
	a.end(codes.Ok, "")
	s.metrics.attempt(ctx, status.OutcomeSkipped)
	serving.WriteJSON(a.w, http.StatusOK, taskResponse{EventID: id, Outcome: string(status.OutcomeSkipped), Status: st, Reason: reason})
}

// storeUnavailable answers 503 so that the queue retries once the status
// store is back.
func (s *Server) storeUnavailable(ctx context.Context, a *attempt, ev event.Event, reason string) {
	a.end(codes.Error, reason)
	s.metrics.attempt(ctx, status.OutcomeRetryable)
	// On the budget's last attempt, carry the event on in a new task, as
	// for a rate limit: our own store's outage must not spend the event's
	// budget, and the new task starts again from the shortest backoff,
	// where the queue's retries of this one are at their longest. If the
	// queue is down too, the 503 below is still safe: the queue retries
	// without limit (ADR 0008), so the task waits for the store. The record
	// is unreadable here, so MaxRetryDuration cannot be judged: the attempt
	// count alone decides, and a requeue that was not needed costs one
	// skipped or duplicate delivery, never a second side effect.
	if s.requeueInto != nil && s.retry.MaxAttempts > 0 && a.d.retryCount+1 >= s.retry.MaxAttempts {
		t, err := s.requeue(ctx, a, ev, Outcome{})
		if err == nil {
			s.metrics.requeues.Add(ctx, 1)
			a.log.WarnContext(ctx, "event requeued: status store unavailable on the last attempt", "reason", reason,
				"attempt", a.d.retryCount+1, "new_task", t.Name, "not_before", t.NotBefore.UTC().Format(time.RFC3339Nano))
			serving.WriteJSON(a.w, http.StatusOK, taskResponse{EventID: ev.ID, Outcome: outcomeRequeued, Reason: reasonStoreRequeued + ": " + reason, Task: t.Name})
			return
		}
		a.log.ErrorContext(ctx, "event not requeued after the status store failed on its last attempt; the queue retries the task",
			"reason", reason, "error", err.Error())
	}
	a.log.ErrorContext(ctx, "status store unavailable; asking the queue to retry", "reason", reason)
	serving.WriteProblem(a.w, http.StatusServiceUnavailable, "status-unavailable", "Status store unavailable", "", nil)
}

// end sets the span's status.
func (a *attempt) end(c codes.Code, description string) {
	a.span.SetStatus(c, description)
}

// firstAttemptAt is when the event was first tried, for the queue's
// MaxRetryDuration; zero when no attempt is recorded.
func firstAttemptAt(r status.Record) time.Time {
	var first time.Time
	for _, at := range r.Attempts {
		if first.IsZero() || at.At.Before(first) {
			first = at.At
		}
	}
	return first
}

// retryAfterHeader renders d as whole seconds, rounded up, at least 1.
func retryAfterHeader(d time.Duration) string {
	secs := int64(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// extractID reads the "id" of a body that failed to parse as an event, when
// it is a usable id; "" otherwise.
func extractID(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	var v struct {
		ID any `json:"id"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return ""
	}
	id, ok := v.ID.(string)
	if !ok || id == "" || len(id) > event.MaxIDBytes || !utf8.ValidString(id) || strings.TrimSpace(id) != id {
		return ""
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return id
}
