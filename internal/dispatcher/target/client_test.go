package target

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/event"
)

func TestMain(m *testing.M) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

// seen is what the fake target saw of one request.
type seen struct {
	IdempotencyKey string
	Traceparent    string
	Input          EventInput
}

// fakeTarget serves reply for every request and records what it saw.
func fakeTarget(t testing.TB, reply http.HandlerFunc) (*httptest.Server, func() []seen) {
	t.Helper()
	var (
		mu    sync.Mutex
		seens []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Variables struct {
				Input EventInput `json:"input"`
			} `json:"variables"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		mu.Lock()
		seens = append(seens, seen{
			IdempotencyKey: r.Header.Get(HeaderIdempotencyKey),
			Traceparent:    r.Header.Get("traceparent"),
			Input:          req.Variables.Input,
		})
		mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), seens...)
	}
}

func reply(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func testEvent(id string) event.Enriched {
	return event.Enrich(event.Event{
		ID:        id,
		Name:      "test event",
		Body:      "test body",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}, "testBrand")
}

const okBody = `{"data":{"receiveEvent":{"id":"ev-1","duplicate":false,"receivedAt":"2026-01-02T03:04:05Z"}}}`

func TestSendResults(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name  string
		reply http.HandlerFunc
		want  Result
	}{
		{
			name:  "accepted",
			reply: reply(200, nil, okBody),
			want:  Result{HTTPStatus: 200, Receipt: &Receipt{ID: "ev-1", ReceivedAt: "2026-01-02T03:04:05Z"}},
		},
		{
			name:  "duplicate",
			reply: reply(200, nil, `{"data":{"receiveEvent":{"id":"ev-1","duplicate":true,"receivedAt":"x"}}}`),
			want:  Result{HTTPStatus: 200, Receipt: &Receipt{ID: "ev-1", Duplicate: true, ReceivedAt: "x"}},
		},
		{
			name:  "http 429 with Retry-After",
			reply: reply(429, map[string]string{"Retry-After": "3"}, `{"errors":[{"message":"rate limited"}]}`),
			want:  Result{HTTPStatus: 429, RetryAfter: 3 * time.Second, Errors: []GraphQLError{{Message: "rate limited"}}},
		},
		{
			name:  "graphql rate limited",
			reply: reply(200, nil, `{"errors":[{"message":"rate limited","extensions":{"code":"RATE_LIMITED","retryAfterSeconds":2}}],"data":null}`),
			want:  Result{HTTPStatus: 200, Errors: []GraphQLError{{Message: "rate limited", Code: CodeRateLimited, RetryAfter: 2 * time.Second}}},
		},
		{
			name:  "bad user input",
			reply: reply(200, nil, `{"errors":[{"message":"brand is required","path":["receiveEvent"],"extensions":{"code":"BAD_USER_INPUT"}}],"data":null}`),
			want:  Result{HTTPStatus: 200, Errors: []GraphQLError{{Message: "brand is required", Code: CodeBadUserInput}}},
		},
		{
			name:  "validation failed as 422",
			reply: reply(422, nil, `{"errors":[{"message":"Unknown field","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}],"data":null}`),
			want:  Result{HTTPStatus: 422, Errors: []GraphQLError{{Message: "Unknown field", Code: CodeValidationFailed}}},
		},
		{
			name:  "fault with a text body",
			reply: reply(500, nil, "boom"),
			want:  Result{HTTPStatus: 500, Errors: []GraphQLError{{Message: "boom"}}},
		},
		{
			name:  "503 with an HTTP-date Retry-After in the past",
			reply: reply(503, map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, `{}`),
			want:  Result{HTTPStatus: 503},
		},
		{
			name:  "200 that is not JSON",
			reply: reply(200, nil, "<html>"),
			want:  Result{HTTPStatus: 200, DecodeErr: errAny},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := fakeTarget(t, tc.reply)
			c := New(srv.URL, srv.Client(), 5*time.Second)

			got := c.Send(context.Background(), testEvent("ev-1"))
			if got.Duration <= 0 {
				t.Errorf("Duration = %v, want > 0", got.Duration)
			}
			got.Duration = 0
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(sameErrPresence)); diff != "" {
				t.Errorf("Send result (-want +got):\n%s", diff)
			}
			if n := len(calls()); n != 1 {
				t.Errorf("target saw %d calls, want 1", n)
			}
		})
	}
}

// errAny stands for "some error" in wanted Results.
var errAny = errors.New("any error")

func sameErrPresence(a, b error) bool { return (a == nil) == (b == nil) }

func TestSendHeadersAndInput(t *testing.T) {
	t.Parallel()
	srv, calls := fakeTarget(t, reply(200, nil, okBody))
	c := New(srv.URL, srv.Client(), 5*time.Second)

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanID := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	c.Send(ctx, testEvent("ev-1"))

	want := []seen{{
		IdempotencyKey: "ev-1",
		Traceparent:    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Input: EventInput{
			Id: "ev-1", Name: "test event", Body: "test body",
			Timestamp: "2026-01-02T03:04:05.000006Z", Brand: "testBrand",
		},
	}}
	if diff := cmp.Diff(want, calls()); diff != "" {
		t.Errorf("target saw (-want +got):\n%s", diff)
	}
}

func TestSendDoesNotModifyCallerClient(t *testing.T) {
	t.Parallel()
	hc := &http.Client{}
	New("http://127.0.0.1:1/graphql", hc, time.Second)
	if hc.Transport != nil {
		t.Errorf("caller's client transport = %T, want untouched nil", hc.Transport)
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := fakeTarget(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	c := New(srv.URL, srv.Client(), 50*time.Millisecond)

	got := c.Send(context.Background(), testEvent("ev-1"))
	if !got.TimedOut || got.TransportErr == nil || got.HTTPStatus != 0 {
		t.Errorf("Send = %+v, want TimedOut with a transport error and no status", got)
	}
	if got.Duration < 50*time.Millisecond {
		t.Errorf("Duration = %v, want >= the 50ms timeout", got.Duration)
	}
}

func TestSendUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := New(url, nil, time.Second)

	got := c.Send(context.Background(), testEvent("ev-1"))
	if got.TransportErr == nil || got.TimedOut || got.HTTPStatus != 0 {
		t.Errorf("Send = %+v, want a transport error, not a timeout, no status", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		in   string
		want time.Duration
	}{
		{name: "empty", in: "", want: 0},
		{name: "seconds", in: "7", want: 7 * time.Second},
		{name: "padded", in: " 2 ", want: 2 * time.Second},
		{name: "zero", in: "0", want: 0},
		{name: "negative", in: "-3", want: 0},
		{name: "garbage", in: "soon", want: 0},
		{name: "fraction is not delta-seconds", in: "1.5", want: 0},
		{name: "http date ahead", in: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "http date past", in: now.Add(-time.Minute).Format(http.TimeFormat), want: 0},
		{name: "huge is capped", in: "99999999999", want: maxRetryAfter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ParseRetryAfter(tc.in, now); got != tc.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSecondsValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   any
		want time.Duration
	}{
		{name: "json number", in: float64(2), want: 2 * time.Second},
		{name: "fractional", in: 0.5, want: 500 * time.Millisecond},
		{name: "string", in: "4", want: 4 * time.Second},
		{name: "missing", in: nil, want: 0},
		{name: "negative", in: float64(-1), want: 0},
		{name: "wrong type", in: true, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := secondsValue(tc.in); got != tc.want {
				t.Errorf("secondsValue(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
