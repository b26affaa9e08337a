package targetmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/logging"
	"eventrelay/internal/targetmock/graph"
)

// Error codes in extensions.code of the GraphQL errors targetmock answers.
const (
	// CodeBadUserInput: a permanent rejection of the event (empty or missing
	// brand, bad timestamp, empty id). HTTP 200.
	CodeBadUserInput = "BAD_USER_INPUT"
	// CodeRateLimited: over the limit. HTTP 429 (http mode) or 200 (graphql
	// mode); extensions.retryAfterSeconds says when to come back.
	CodeRateLimited = "RATE_LIMITED"
	// CodeInternal: an injected fault or a storage failure. HTTP 500.
	CodeInternal = "INTERNAL_SERVER_ERROR"
	// CodeBadRequest: a request the target does not serve (batch, several
	// receiveEvent fields). HTTP 400.
	CodeBadRequest = "BAD_REQUEST"
	// CodeTooLarge: the request body is over MaxRequestBytes. HTTP 413.
	CodeTooLarge = "REQUEST_TOO_LARGE"
)

// Request headers recorded with every call.
const (
	HeaderTraceparent    = "Traceparent"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// MaxRequestBytes is the largest GraphQL request body the target reads.
const MaxRequestBytes = 1 << 20

// callState travels in the context of one receiveEvent request from the
// HTTP middleware to the resolver.
type callState struct {
	call Call
	// recorded is set by the resolver once the call is in the store.
	recorded bool
	// outcome is set by the resolver with recorded.
	outcome Outcome
	// internalErr is set by the resolver when the store failed; the
	// middleware then answers 500 instead of gqlgen's 200.
	internalErr error
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	cs, _ := ctx.Value(callStateKey{}).(*callState)
	return cs
}

// handleGraphQL is gqlgen behind the target's own gate. For a receiveEvent
// mutation the gate, in this order: takes a token (or answers rate limited),
// waits the configured latency, injects a fault by ratio (HTTP 500), refuses
// a missing brand; then gqlgen runs the resolver, which validates the rest
// and stores the event. Every step before the resolver is free of side
// effects, and every receiveEvent call is recorded exactly once.
func (s *Server) handleGraphQL() http.Handler {
	gql := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &resolver{s: s}}))
	gql.AddTransport(transport.POST{})
	gql.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	gql.Use(extension.Introspection{})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		at := s.now()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
		if err != nil {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				writeGraphQLError(w, http.StatusRequestEntityTooLarge, "request body too large", CodeTooLarge, nil)
				return
			}
			writeGraphQLError(w, http.StatusBadRequest, "cannot read request body", CodeBadRequest, nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		cl := classify(body)
		if cl.kind == kindOther {
			gql.ServeHTTP(w, r)
			return
		}
		c := Call{
			At:             at,
			Traceparent:    r.Header.Get(HeaderTraceparent),
			IdempotencyKey: r.Header.Get(HeaderIdempotencyKey),
		}
		c.EventID, _ = stringField(cl.input, "id")
		// The call joins the caller's trace (the dispatcher's
		// target.receiveEvent span) with a server span of its own.
		ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, "receiveEvent",
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("eventrelay.event.id", c.EventID)))
		defer span.End()
		r = r.WithContext(ctx)
		brand, hasBrand := stringField(cl.input, "brand")
		c.Brand = brand
		logger := logging.FromContext(ctx).With("event_id", c.EventID)

		if cl.kind == kindUnsupported {
			s.recordOutcome(ctx, logger, c, OutcomeRejected, cl.reason)
			writeGraphQLError(w, http.StatusBadRequest, cl.reason, CodeBadRequest, nil)
			return
		}

		knobs := s.Knobs()
		if ok, wait := s.admit(at); !ok {
			secs := retryAfterSeconds(wait)
			s.recordOutcome(ctx, logger, c, OutcomeRateLimited, "")
			ext := map[string]any{"retryAfterSeconds": secs}
			if knobs.RateLimitMode == ModeGraphQL {
				writeGraphQLError(w, http.StatusOK, "rate limited", CodeRateLimited, ext)
				return
			}
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeGraphQLError(w, http.StatusTooManyRequests, "rate limited", CodeRateLimited, ext)
			return
		}

		if d := knobs.delay(); d > 0 {
			// The call goes on even if the client gives up meanwhile, as a
			// real server's would: that is how duplicate calls arise.
			time.Sleep(d)
		}
		if knobs.faulty() {
			s.recordOutcome(ctx, logger, c, OutcomeFault, "injected fault")
			writeGraphQLError(w, http.StatusInternalServerError, "injected fault", CodeInternal, nil)
			return
		}
		if !hasBrand {
			// The schema makes brand required, so gqlgen would refuse this
			// before the resolver with a generic validation error; answer as
			// for an empty brand, a permanent rejection of the event.
			s.recordOutcome(ctx, logger, c, OutcomeRejected, "brand is missing")
			writeResolverError(w, "brand is required", CodeBadUserInput, "brand")
			return
		}

		cs := &callState{call: c}
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		// The resolver runs to its end even if the client has given up, as
		// a real server's would: gqlgen refuses work on a cancelled context,
		// which would hide the duplicate call a cut delivery causes.
		gql.ServeHTTP(rec, r.WithContext(context.WithValue(context.WithoutCancel(ctx), callStateKey{}, cs)))
		if cs.internalErr != nil {
			writeGraphQLError(w, http.StatusInternalServerError, "storage failure", CodeInternal, nil)
			return
		}
		if !cs.recorded {
			// gqlgen refused the request before the resolver (a validation
			// error): a permanent rejection with no side effect.
			s.recordOutcome(ctx, logger, c, OutcomeRejected, "graphql request refused before the resolver: HTTP "+strconv.Itoa(rec.status))
		}
		if (cs.outcome == OutcomeAccepted || cs.outcome == OutcomeDuplicate) && knobs.malformed() {
			// The event is stored; only the answer is broken.
			logger.DebugContext(ctx, "targetmock mangled an accepted call's answer")
			writeMalformed(w, rec.body.Bytes())
			return
		}
		rec.writeTo(w)
	})
}

// writeMalformed answers HTTP 200 with one of three broken bodies, picked at
// random: the real body cut in half, an HTML error page, or JSON without the
// receipt.
func writeMalformed(w http.ResponseWriter, body []byte) {
	switch rand.IntN(3) {
	case 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
	case 1:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html><body>upstream hiccup</body></html>")
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"data":null}`)
	}
}

// recordOutcome records a call that stored nothing. The call is answered
// whether or not recording works; a failure is logged.
func (s *Server) recordOutcome(ctx context.Context, logger *slog.Logger, c Call, o Outcome, detail string) {
	c.Outcome, c.Detail = o, detail
	spanOutcome(ctx, o, detail)
	if err := s.store.record(context.WithoutCancel(ctx), c); err != nil {
		logger.ErrorContext(ctx, "targetmock could not record a call", "outcome", string(o), "error", err)
		return
	}
	logger.DebugContext(ctx, "targetmock call", "outcome", string(o), "detail", detail)
}

// spanOutcome marks the call's span with its outcome; anything but accepted
// or duplicate is an error of the call.
func spanOutcome(ctx context.Context, o Outcome, detail string) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("eventrelay.target.outcome", string(o)))
	if o != OutcomeAccepted && o != OutcomeDuplicate {
		if detail == "" {
			detail = string(o)
		}
		span.SetStatus(codes.Error, detail)
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	secs := int(math.Ceil(d.Seconds()))
	return max(secs, 1)
}

// gqlError is one entry of a GraphQL response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []string       `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// writeGraphQLError writes a GraphQL-shaped request error:
// {"errors":[{"message":M,"extensions":{"code":C,...ext}}]}.
func writeGraphQLError(w http.ResponseWriter, status int, msg, code string, ext map[string]any) {
	e := map[string]any{"code": code}
	for k, v := range ext {
		e[k] = v
	}
	writeGraphQLJSON(w, status, map[string]any{"errors": []gqlError{{Message: msg, Extensions: e}}})
}

// writeResolverError writes what gqlgen writes when the receiveEvent
// resolver fails: HTTP 200, data null, the error at path receiveEvent.
func writeResolverError(w http.ResponseWriter, msg, code, field string) {
	writeGraphQLJSON(w, http.StatusOK, map[string]any{
		"errors": []gqlError{{
			Message:    msg,
			Path:       []string{"receiveEvent"},
			Extensions: map[string]any{"code": code, "field": field},
		}},
		"data": nil,
	})
}

func writeGraphQLJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bufferedResponse holds gqlgen's answer to a receiveEvent call until the
// resolver's outcome is known, so a storage failure can become a 500.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
