// Package targetmock is a TEST DOUBLE of the target application: a
// rate-limited GraphQL API that receives enriched events. It is not for
// production and guards nothing; eventrelay's tests, benchmarks and local
// stack use it to watch what the real target would see.
//
// It serves the schema in graph/schema.graphqls (the wire contract from which
// the dispatcher's client is generated) with gqlgen, and adds what tests need
// to judge the relay through gqlgen's extension points (gate.go):
//
//   - receiveEvent requires a non-empty brand and an RFC 3339 timestamp, and
//     is idempotent on the event id: the first accepted call stores the event
//     (the side effect), later calls answer duplicate=true and change nothing.
//   - A token bucket limits receiveEvent calls (queries are never limited).
//     Over the limit it answers HTTP 429 with Retry-After, or, in graphql
//     mode, HTTP 200 with a GraphQL error whose extensions.code is
//     RATE_LIMITED.
//   - Fault knobs: a ratio of receiveEvent calls answered with HTTP 500
//     before any side effect, and added latency; both can be changed at run
//     time through Go setters or POST /admin/faults.
//   - Every call is recorded (event id, time, outcome, brand, traceparent,
//     Idempotency-Key) and exposed through GraphQL queries and Go accessors.
//   - With a data path the record and the idempotency set live in a SQLite
//     file (WAL) and survive kill -9; without one they live in memory.
//
// What a receiveEvent call gets back (every body is GraphQL-shaped JSON):
//
//	200 {"data":{"receiveEvent":{...,"duplicate":false}}}   accepted (stored)
//	200 {"data":{"receiveEvent":{...,"duplicate":true}}}    duplicate (nothing changed)
//	200 errors[0].extensions.code BAD_USER_INPUT, data null  rejected: empty or missing
//	    brand, empty id, timestamp not RFC 3339 (extensions.field names it)
//	422 errors[0].extensions.code GRAPHQL_VALIDATION_FAILED  rejected by the schema
//	400 errors[0].extensions.code BAD_REQUEST                refused: not one JSON request
//	    (a batch), several receiveEvent fields or directives on it in one request
//	413 errors[0].extensions.code REQUEST_TOO_LARGE          body over MaxRequestBytes
//	429 + Retry-After: N, code RATE_LIMITED, extensions.retryAfterSeconds N  (http mode)
//	200 code RATE_LIMITED, extensions.retryAfterSeconds N, no data            (graphql mode)
//	500 errors[0].extensions.code INTERNAL_SERVER_ERROR      injected fault or storage failure
//
// Only accepted and duplicate answers mean the target has the event; 4xx
// (other than 429) and BAD_USER_INPUT are permanent; 429, RATE_LIMITED and 5xx
// are worth a retry.
package targetmock

//go:generate go tool gqlgen generate --config gqlgen.yml
