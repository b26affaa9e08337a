// Package target is the dispatcher's client for the target's GraphQL API: the
// genqlient code generated from the target's schema (generated.go), and a
// Client that sends one event and reports everything the outcome rules need
// (HTTP status, Retry-After, transport error, GraphQL errors with their
// extensions.code, the receipt) as a typed Result rather than an error.
package target

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"eventrelay/internal/event"
)

// HeaderIdempotencyKey carries the event id on every call so that the target
// can deduplicate a call the dispatcher repeats.
const HeaderIdempotencyKey = "Idempotency-Key"

// GraphQL error codes (extensions.code) the target and gqlgen use.
const (
	CodeRateLimited      = "RATE_LIMITED"
	CodeBadUserInput     = "BAD_USER_INPUT"
	CodeValidationFailed = "GRAPHQL_VALIDATION_FAILED"
	CodeParseFailed      = "GRAPHQL_PARSE_FAILED"
)

// Result is what one call to the target produced. Exactly one of these holds:
// TransportErr is set (no HTTP response arrived), or HTTPStatus is set and
// the remaining fields describe the response.
type Result struct {
	// HTTPStatus is the status of the response; 0 when none arrived.
	HTTPStatus int
	// RetryAfter is the response's Retry-After header (delta-seconds or
	// HTTP-date); 0 when absent or unparseable.
	RetryAfter time.Duration
	// TransportErr is why no response arrived (dial, TLS, timeout, reset).
	TransportErr error
	// DecodeErr is set when a response arrived but its body could not be
	// read or decoded as a GraphQL response.
	DecodeErr error
	// TimedOut reports that the per-call timeout expired, before or while
	// the response was read.
	TimedOut bool
	// Errors are the GraphQL errors of the response, in order.
	Errors []GraphQLError
	// Receipt is the target's acknowledgement; nil when the response carried
	// none.
	Receipt *Receipt
	// Duration is how long the call took.
	Duration time.Duration
}

// GraphQLError is one entry of a GraphQL response's errors.
type GraphQLError struct {
	Message string
	// Code is extensions.code; empty when absent.
	Code string
	// RetryAfter is extensions.retryAfterSeconds; 0 when absent.
	RetryAfter time.Duration
}

// Receipt is the target's acknowledgement of one event.
type Receipt struct {
	ID string
	// Duplicate reports that the target had received the id before, so the
	// call had no new side effect.
	Duplicate bool
	// ReceivedAt is when the target first received the id (RFC 3339).
	ReceivedAt string
}

// Client sends events to the target's GraphQL endpoint.
type Client struct {
	gql     graphql.Client
	timeout time.Duration
	now     func() time.Time
}

// New returns a Client for the GraphQL endpoint (e.g.
// http://127.0.0.1:8082/graphql). Each call is bounded by timeout (0 means no
// bound beyond the caller's context). hc may be nil for a default client; its
// transport is wrapped by a Transport and hc itself is not modified.
func New(endpoint string, hc *http.Client, timeout time.Duration) *Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.Transport = &Transport{Base: c.Transport}
	return &Client{gql: graphql.NewClient(endpoint, &c), timeout: timeout, now: time.Now}
}

// Send calls receiveEvent with e, sending e.ID as the Idempotency-Key and the
// trace context of ctx. It never returns an error: every failure is described
// by the Result, for the outcome rules to classify.
func (c *Client) Send(ctx context.Context, e event.Enriched) Result {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	call := &callInfo{idempotencyKey: e.ID}
	ctx = context.WithValue(ctx, callKey{}, call)

	start := c.now()
	resp, err := ReceiveEvent(ctx, c.gql, EventInput{
		Id:        e.ID,
		Name:      e.Name,
		Body:      e.Body,
		Timestamp: event.FormatTimestamp(e.Timestamp),
		Brand:     e.Brand,
	})
	now := c.now()
	r := Result{Duration: now.Sub(start), HTTPStatus: call.status}
	if call.status != 0 {
		r.RetryAfter = ParseRetryAfter(call.retryAfter, now)
	}
	r.TimedOut = err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded))

	var (
		httpErr *graphql.HTTPError
		gqlErrs gqlerror.List
	)
	switch {
	case err == nil:
	case errors.As(err, &httpErr):
		r.HTTPStatus = httpErr.StatusCode
		r.Errors = convertErrors(httpErr.Response.Errors)
	case errors.As(err, &gqlErrs):
		r.Errors = convertErrors(gqlErrs)
	case call.status == 0:
		r.TransportErr = err
	default:
		r.DecodeErr = fmt.Errorf("decode target response: %w", err)
	}
	if err == nil || len(gqlErrs) > 0 {
		// A 200 decoded into resp, possibly alongside GraphQL errors.
		if resp != nil && resp.ReceiveEvent.Id != "" {
			r.Receipt = &Receipt{
				ID:         resp.ReceiveEvent.Id,
				Duplicate:  resp.ReceiveEvent.Duplicate,
				ReceivedAt: resp.ReceiveEvent.ReceivedAt,
			}
		}
	}
	return r
}

func convertErrors(list gqlerror.List) []GraphQLError {
	if len(list) == 0 {
		return nil
	}
	out := make([]GraphQLError, 0, len(list))
	for _, e := range list {
		if e == nil {
			continue
		}
		g := GraphQLError{Message: e.Message}
		if code, ok := e.Extensions["code"].(string); ok {
			g.Code = code
		}
		g.RetryAfter = secondsValue(e.Extensions["retryAfterSeconds"])
		out = append(out, g)
	}
	return out
}

// secondsValue reads a JSON number or numeric string of seconds.
func secondsValue(v any) time.Duration {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case string:
		parsed, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0
		}
		f = parsed
	default:
		return 0
	}
	return secondsToDuration(f)
}

// maxRetryAfter caps absurd values so that arithmetic cannot overflow.
const maxRetryAfter = 24 * time.Hour

func secondsToDuration(f float64) time.Duration {
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(f * float64(time.Second))
}

// ParseRetryAfter reads a Retry-After header value: delta-seconds or an
// HTTP-date (RFC 9110 §10.2.3), relative to now. It returns 0 when v is
// empty, unparseable or not in the future.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return secondsToDuration(float64(n))
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return secondsToDuration(t.Sub(now).Seconds())
}

// callKey keys the per-call holder in a request's context.
type callKey struct{}

// callInfo carries the idempotency key into the Transport and the response's
// status and Retry-After back out of it: genqlient's errors carry no headers.
// One Send owns one callInfo; the Transport writes it before Send reads it.
type callInfo struct {
	idempotencyKey string
	status         int
	retryAfter     string
}

// Transport is the round-tripper for calls to the target. For requests made
// by Client.Send it sets Idempotency-Key and captures the response's status
// and Retry-After; for every request it injects the W3C trace context of the
// request's context through the global OpenTelemetry propagator.
type Transport struct {
	// Base makes the request; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper. It does not modify req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	ctx := req.Context()
	out := req.Clone(ctx)
	call, _ := ctx.Value(callKey{}).(*callInfo)
	if call != nil && call.idempotencyKey != "" {
		out.Header.Set(HeaderIdempotencyKey, call.idempotencyKey)
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(out.Header))

	resp, err := base.RoundTrip(out)
	if err == nil && call != nil {
		call.status = resp.StatusCode
		call.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}
