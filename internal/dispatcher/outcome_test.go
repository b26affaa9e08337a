package dispatcher

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/status"
)

func TestClassify(t *testing.T) {
	t.Parallel()

	receipt := &target.Receipt{ID: "ev-1", ReceivedAt: "2026-01-02T03:04:05Z"}
	rateLimitedErr := target.GraphQLError{Message: "rate limited", Code: target.CodeRateLimited, RetryAfter: 2 * time.Second}
	badInput := target.GraphQLError{Message: "brand must not be empty", Code: target.CodeBadUserInput}
	netErr := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

	cases := []struct {
		name string
		in   target.Result
		want Outcome
		// reasonHas, when set, must appear in the reason.
		reasonHas string
	}{
		// Success.
		{
			name: "200 with receipt",
			in:   target.Result{HTTPStatus: 200, Receipt: receipt},
			want: Outcome{Kind: status.OutcomeDelivered},
		},
		{
			name:      "200 duplicate receipt is delivered",
			in:        target.Result{HTTPStatus: 200, Receipt: &target.Receipt{ID: "ev-1", Duplicate: true}},
			want:      Outcome{Kind: status.OutcomeDelivered},
			reasonHas: "duplicate",
		},
		// No response.
		{
			name:      "network error",
			in:        target.Result{TransportErr: netErr},
			want:      Outcome{Kind: status.OutcomeRetryable, Overload: true},
			reasonHas: "connection refused",
		},
		{
			name:      "timeout before a response",
			in:        target.Result{TransportErr: errors.New("context deadline exceeded"), TimedOut: true},
			want:      Outcome{Kind: status.OutcomeRetryable, Overload: true},
			reasonHas: "timed out",
		},
		{
			name: "empty result",
			in:   target.Result{},
			want: Outcome{Kind: status.OutcomeRetryable, Overload: true},
		},
		// Rate limited.
		{
			name:      "429 with Retry-After",
			in:        target.Result{HTTPStatus: 429, RetryAfter: 3 * time.Second},
			want:      Outcome{Kind: status.OutcomeRateLimited, RetryAfter: 3 * time.Second},
			reasonHas: "429",
		},
		{
			name: "429 without Retry-After",
			in:   target.Result{HTTPStatus: 429},
			want: Outcome{Kind: status.OutcomeRateLimited},
		},
		{
			name: "429 takes retryAfterSeconds when the header is missing",
			in:   target.Result{HTTPStatus: 429, Errors: []target.GraphQLError{rateLimitedErr}},
			want: Outcome{Kind: status.OutcomeRateLimited, RetryAfter: 2 * time.Second},
		},
		{
			name: "429 header wins over the error's hint",
			in:   target.Result{HTTPStatus: 429, RetryAfter: 5 * time.Second, Errors: []target.GraphQLError{rateLimitedErr}},
			want: Outcome{Kind: status.OutcomeRateLimited, RetryAfter: 5 * time.Second},
		},
		{
			name:      "200 with RATE_LIMITED",
			in:        target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{rateLimitedErr}},
			want:      Outcome{Kind: status.OutcomeRateLimited, RetryAfter: 2 * time.Second},
			reasonHas: target.CodeRateLimited,
		},
		{
			name: "200 with RATE_LIMITED and no hint falls back to the header",
			in:   target.Result{HTTPStatus: 200, RetryAfter: time.Second, Errors: []target.GraphQLError{{Code: target.CodeRateLimited}}},
			want: Outcome{Kind: status.OutcomeRateLimited, RetryAfter: time.Second},
		},
		{
			name: "RATE_LIMITED after an unknown error still rate limits",
			in:   target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{{Message: "x", Code: "WHATEVER"}, rateLimitedErr}},
			want: Outcome{Kind: status.OutcomeRateLimited, RetryAfter: 2 * time.Second},
		},
		// Retryable HTTP statuses.
		{
			name:      "500",
			in:        target.Result{HTTPStatus: 500, Errors: []target.GraphQLError{{Message: "boom"}}},
			want:      Outcome{Kind: status.OutcomeRetryable},
			reasonHas: "500",
		},
		{
			name: "502",
			in:   target.Result{HTTPStatus: 502},
			want: Outcome{Kind: status.OutcomeRetryable, Overload: true},
		},
		{
			name: "503 with Retry-After keeps it",
			in:   target.Result{HTTPStatus: 503, RetryAfter: 4 * time.Second},
			want: Outcome{Kind: status.OutcomeRetryable, RetryAfter: 4 * time.Second, Overload: true},
		},
		{
			name: "504",
			in:   target.Result{HTTPStatus: 504},
			want: Outcome{Kind: status.OutcomeRetryable, Overload: true},
		},
		{
			name: "408",
			in:   target.Result{HTTPStatus: 408},
			want: Outcome{Kind: status.OutcomeRetryable, Overload: true},
		},
		{
			name: "501 is about this request, not overload",
			in:   target.Result{HTTPStatus: 501},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		{
			name: "500 with a permanent code is still a fault",
			in:   target.Result{HTTPStatus: 500, Errors: []target.GraphQLError{badInput}},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		// Permanent HTTP statuses.
		{
			name:      "400",
			in:        target.Result{HTTPStatus: 400, Errors: []target.GraphQLError{{Message: "bad request"}}},
			want:      Outcome{Kind: status.OutcomePermanent},
			reasonHas: "bad request",
		},
		{
			name: "401",
			in:   target.Result{HTTPStatus: 401},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name: "403",
			in:   target.Result{HTTPStatus: 403},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name: "404",
			in:   target.Result{HTTPStatus: 404},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name: "413",
			in:   target.Result{HTTPStatus: 413},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name:      "422 validation failed",
			in:        target.Result{HTTPStatus: 422, Errors: []target.GraphQLError{{Message: "unknown field", Code: target.CodeValidationFailed}}},
			want:      Outcome{Kind: status.OutcomePermanent},
			reasonHas: target.CodeValidationFailed,
		},
		// Unexpected statuses.
		{
			name: "204 without a decodable body",
			in:   target.Result{HTTPStatus: 204},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		{
			name: "302",
			in:   target.Result{HTTPStatus: 302},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		{
			name: "101",
			in:   target.Result{HTTPStatus: 101},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		// GraphQL errors on a 2xx.
		{
			name:      "BAD_USER_INPUT",
			in:        target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{badInput}},
			want:      Outcome{Kind: status.OutcomePermanent},
			reasonHas: "BAD_USER_INPUT: brand must not be empty",
		},
		{
			name: "GRAPHQL_VALIDATION_FAILED on 200",
			in:   target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{{Code: target.CodeValidationFailed}}},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name: "GRAPHQL_PARSE_FAILED on 200",
			in:   target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{{Code: target.CodeParseFailed}}},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name: "permanent code wins over RATE_LIMITED",
			in:   target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{rateLimitedErr, badInput}},
			want: Outcome{Kind: status.OutcomePermanent},
		},
		{
			name:      "unknown code is retryable",
			in:        target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{{Message: "db down", Code: "INTERNAL_SERVER_ERROR"}}},
			want:      Outcome{Kind: status.OutcomeRetryable},
			reasonHas: "INTERNAL_SERVER_ERROR: db down",
		},
		{
			name: "error without a code is retryable",
			in:   target.Result{HTTPStatus: 200, Errors: []target.GraphQLError{{Message: "oops"}}},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		{
			name: "errors beside a receipt are not success",
			in:   target.Result{HTTPStatus: 200, Receipt: receipt, Errors: []target.GraphQLError{{Message: "partial"}}},
			want: Outcome{Kind: status.OutcomeRetryable},
		},
		{
			name: "unknown code keeps a Retry-After header",
			in:   target.Result{HTTPStatus: 200, RetryAfter: 2 * time.Second, Errors: []target.GraphQLError{{Code: "X"}}},
			want: Outcome{Kind: status.OutcomeRetryable, RetryAfter: 2 * time.Second},
		},
		// Broken 2xx bodies.
		{
			name:      "undecodable 200",
			in:        target.Result{HTTPStatus: 200, DecodeErr: errors.New("invalid character '<'")},
			want:      Outcome{Kind: status.OutcomeRetryable},
			reasonHas: "undecodable",
		},
		{
			name:      "timeout while reading a 200",
			in:        target.Result{HTTPStatus: 200, DecodeErr: errors.New("context deadline exceeded"), TimedOut: true},
			want:      Outcome{Kind: status.OutcomeRetryable, Overload: true},
			reasonHas: "timed out",
		},
		{
			name:      "200 without receipt",
			in:        target.Result{HTTPStatus: 200},
			want:      Outcome{Kind: status.OutcomeRetryable},
			reasonHas: "no receipt",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Classify(tc.in)
			if got.Reason == "" {
				t.Errorf("Classify(%+v) has an empty reason", tc.in)
			}
			if !strings.Contains(got.Reason, tc.reasonHas) {
				t.Errorf("reason %q does not contain %q", got.Reason, tc.reasonHas)
			}
			got.Reason = ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Classify (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyEveryStatusCode(t *testing.T) {
	t.Parallel()
	for code := 100; code < 600; code++ {
		got := Classify(target.Result{HTTPStatus: code})
		var want status.Outcome
		overload := false
		switch {
		case code == 429:
			want = status.OutcomeRateLimited
		case code == 502, code == 503, code == 504, code == 408:
			want, overload = status.OutcomeRetryable, true
		case code >= 500:
			want = status.OutcomeRetryable
		case code >= 400:
			want = status.OutcomePermanent
		default: // 1xx, 3xx, and 2xx without a receipt
			want = status.OutcomeRetryable
		}
		if got.Kind != want || got.Overload != overload {
			t.Errorf("HTTP %d: got %s overload %t, want %s overload %t", code, got.Kind, got.Overload, want, overload)
		}
	}
}

func TestClassifyTruncatesReasons(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1000)
	got := Classify(target.Result{HTTPStatus: 400, Errors: []target.GraphQLError{{Message: long}}})
	if len(got.Reason) > maxReasonBytes+100 {
		t.Errorf("reason is %d bytes, want it bounded near %d", len(got.Reason), maxReasonBytes)
	}
	if !strings.HasSuffix(got.Reason, "…") {
		t.Errorf("truncated reason %q does not end with an ellipsis", got.Reason[len(got.Reason)-10:])
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		kind     status.Outcome
		overload bool
		last     bool
		want     decision
	}{
		{name: "delivered", kind: status.OutcomeDelivered, want: decision{status.Delivered, status.OutcomeDelivered, http.StatusOK}},
		{name: "delivered on last", kind: status.OutcomeDelivered, last: true, want: decision{status.Delivered, status.OutcomeDelivered, http.StatusOK}},
		{name: "permanent", kind: status.OutcomePermanent, want: decision{status.Failed, status.OutcomePermanent, http.StatusOK}},
		{name: "permanent on last", kind: status.OutcomePermanent, last: true, want: decision{status.Failed, status.OutcomePermanent, http.StatusOK}},
		{name: "rate limited", kind: status.OutcomeRateLimited, want: decision{status.Retrying, status.OutcomeRateLimited, http.StatusTooManyRequests}},
		{name: "rate limited on last", kind: status.OutcomeRateLimited, last: true, want: decision{status.DeadLettered, status.OutcomeDeadLettered, http.StatusOK}},
		{name: "retryable: this event failed, retry only this task", kind: status.OutcomeRetryable, want: decision{status.Retrying, status.OutcomeRetryable, http.StatusInternalServerError}},
		{name: "retryable overload: the whole queue backs off", kind: status.OutcomeRetryable, overload: true, want: decision{status.Retrying, status.OutcomeRetryable, http.StatusServiceUnavailable}},
		{name: "retryable on last", kind: status.OutcomeRetryable, last: true, want: decision{status.DeadLettered, status.OutcomeDeadLettered, http.StatusOK}},
		{name: "retryable overload on last", kind: status.OutcomeRetryable, overload: true, last: true, want: decision{status.DeadLettered, status.OutcomeDeadLettered, http.StatusOK}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := decide(Outcome{Kind: tc.kind, Overload: tc.overload}, tc.last)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "unknown is at least one second", in: 0, want: "1"},
		{name: "sub-second rounds up", in: 200 * time.Millisecond, want: "1"},
		{name: "whole", in: 3 * time.Second, want: "3"},
		{name: "fraction rounds up", in: 3500 * time.Millisecond, want: "4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retryAfterHeader(tc.in); got != tc.want {
				t.Errorf("retryAfterHeader(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
