package dispatcher

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/status"
)

// Outcome is the verdict on one call to the target.
type Outcome struct {
	// Kind is one of status.OutcomeDelivered, OutcomeRateLimited,
	// OutcomeRetryable or OutcomePermanent.
	Kind status.Outcome
	// RetryAfter is how long the target asked us to wait; 0 when it did not
	// say. Set only for RateLimited and Retryable.
	RetryAfter time.Duration
	// Overload, on a Retryable outcome, says the failure is about the
	// target as a whole (unreachable, timing out, or answering 502, 503,
	// 504 or 408) rather than about this one event (a 500, a malformed
	// answer): the queue is asked to back off as a whole (503), not only
	// this task (500).
	Overload bool
	// Reason says why, for the status record and the logs.
	Reason string
}

// permanentCodes are GraphQL error codes meaning the request itself is wrong:
// sending it again cannot succeed.
var permanentCodes = map[string]bool{
	target.CodeBadUserInput:     true,
	target.CodeValidationFailed: true,
	target.CodeParseFailed:      true,
}

// Classify is the one place that decides delivered, rate-limited, retry or
// give up, from what one call to the target produced. It is pure. The rules,
// first match wins:
//
//  1. no response (network error, timeout) → Retryable, Overload
//  2. HTTP 429 → RateLimited (Retry-After header, else the error's
//     retryAfterSeconds)
//  3. HTTP 5xx or 408 → Retryable (Retry-After when sent); Overload for
//     502, 503, 504 and 408, not for a 500 or another 5xx
//  4. any other 4xx → Permanent
//  5. any other non-2xx (1xx, 3xx) → Retryable: unexpected, not a verdict
//  6. 2xx with GraphQL errors: a validation code (BAD_USER_INPUT,
//     GRAPHQL_VALIDATION_FAILED, GRAPHQL_PARSE_FAILED) → Permanent; else
//     RATE_LIMITED → RateLimited; else (unknown or no code) → Retryable
//  7. 2xx whose body timed out (Overload), could not be decoded or has no
//     receipt → Retryable
//  8. otherwise → Delivered, a duplicate receipt included (the target is
//     idempotent on the event id)
func Classify(r target.Result) Outcome {
	if r.TransportErr != nil || (r.HTTPStatus == 0 && r.DecodeErr == nil) {
		return Outcome{Kind: status.OutcomeRetryable, Overload: true, Reason: transportReason(r)}
	}
	code := r.HTTPStatus
	switch {
	case code == http.StatusTooManyRequests:
		return Outcome{
			Kind:       status.OutcomeRateLimited,
			RetryAfter: firstPositive(r.RetryAfter, errorsRetryAfter(r.Errors)),
			Reason:     "target rate limited: HTTP 429",
		}
	case code >= 500 || code == http.StatusRequestTimeout:
		return Outcome{
			Kind:       status.OutcomeRetryable,
			RetryAfter: r.RetryAfter,
			Overload:   overloadStatus(code),
			Reason:     "target error: HTTP " + httpStatusText(code) + errorsSuffix(r.Errors),
		}
	case code >= 400:
		return Outcome{
			Kind:   status.OutcomePermanent,
			Reason: "target rejected the event: HTTP " + httpStatusText(code) + errorsSuffix(r.Errors),
		}
	case code < 200 || code >= 300:
		return Outcome{
			Kind:       status.OutcomeRetryable,
			RetryAfter: r.RetryAfter,
			Reason:     "unexpected target response: HTTP " + httpStatusText(code),
		}
	}

	if len(r.Errors) > 0 {
		for _, e := range r.Errors {
			if permanentCodes[e.Code] {
				return Outcome{
					Kind:   status.OutcomePermanent,
					Reason: "target rejected the event: " + describe(e),
				}
			}
		}
		for _, e := range r.Errors {
			if e.Code == target.CodeRateLimited {
				return Outcome{
					Kind:       status.OutcomeRateLimited,
					RetryAfter: firstPositive(e.RetryAfter, r.RetryAfter),
					Reason:     "target rate limited: GraphQL " + target.CodeRateLimited,
				}
			}
		}
		return Outcome{
			Kind:       status.OutcomeRetryable,
			RetryAfter: r.RetryAfter,
			Reason:     "target GraphQL error: " + describe(r.Errors[0]),
		}
	}
	if r.TimedOut {
		return Outcome{Kind: status.OutcomeRetryable, Overload: true, Reason: "target call timed out reading the response"}
	}
	if r.DecodeErr != nil {
		return Outcome{Kind: status.OutcomeRetryable, Reason: "undecodable target response: " + truncate(r.DecodeErr.Error())}
	}
	if r.Receipt == nil {
		return Outcome{Kind: status.OutcomeRetryable, Reason: "target response has no receipt"}
	}
	if r.Receipt.Duplicate {
		return Outcome{Kind: status.OutcomeDelivered, Reason: "delivered (duplicate: the target had this id already)"}
	}
	return Outcome{Kind: status.OutcomeDelivered, Reason: "delivered"}
}

// overloadStatus reports whether an HTTP status says the target (or a proxy
// in front of it) cannot serve anyone right now, rather than that this one
// request failed.
func overloadStatus(code int) bool {
	switch code {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return true
	}
	return false
}

func transportReason(r target.Result) string {
	switch {
	case r.TimedOut:
		return "target call timed out"
	case r.TransportErr == nil:
		return "no response from target"
	default:
		return "target unreachable: " + truncate(r.TransportErr.Error())
	}
}

func httpStatusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprint(code)
}

func errorsSuffix(errs []target.GraphQLError) string {
	if len(errs) == 0 {
		return ""
	}
	return ": " + describe(errs[0])
}

func describe(e target.GraphQLError) string {
	if e.Code == "" {
		return truncate(e.Message)
	}
	return e.Code + ": " + truncate(e.Message)
}

func errorsRetryAfter(errs []target.GraphQLError) time.Duration {
	for _, e := range errs {
		if e.RetryAfter > 0 {
			return e.RetryAfter
		}
	}
	return 0
}

func firstPositive(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

// maxReasonBytes bounds text copied from the target into reasons, so a large
// error body cannot bloat the status record or the logs.
const maxReasonBytes = 300

func truncate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxReasonBytes {
		return s
	}
	cut := maxReasonBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// decision is what the handler does with an Outcome: the status the record
// moves to, the outcome its attempt records, and the answer to the queue.
type decision struct {
	to      status.Status
	attempt status.Outcome
	code    int
}

// decide maps an Outcome to a decision. last reports that the queue will not
// retry after this attempt: a retryable verdict then dead-letters the event
// and answers 200, so the record says why the event stopped. Before the last
// attempt, the answer tells the queue how much to back off: 429 (rate
// limited) and 503 (Overload: the target as a whole) make the queue slow
// down or pause every dispatch, as Cloud Tasks and the embedded engine do;
// 500 (this event failed) makes it retry only this task after its backoff,
// so that a target failing a share of its calls does not slow the others.
func decide(o Outcome, last bool) decision {
	switch o.Kind {
	case status.OutcomeDelivered:
		return decision{to: status.Delivered, attempt: status.OutcomeDelivered, code: http.StatusOK}
	case status.OutcomePermanent:
		return decision{to: status.Failed, attempt: status.OutcomePermanent, code: http.StatusOK}
	}
	if last {
		return decision{to: status.DeadLettered, attempt: status.OutcomeDeadLettered, code: http.StatusOK}
	}
	if o.Kind == status.OutcomeRateLimited {
		return decision{to: status.Retrying, attempt: status.OutcomeRateLimited, code: http.StatusTooManyRequests}
	}
	if o.Overload {
		return decision{to: status.Retrying, attempt: status.OutcomeRetryable, code: http.StatusServiceUnavailable}
	}
	return decision{to: status.Retrying, attempt: status.OutcomeRetryable, code: http.StatusInternalServerError}
}
