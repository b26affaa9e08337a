package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/testutil"
)

// spans records every span the tests' dispatchers start.
var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetTextMapPropagator(telemetry.Propagator())
	os.Exit(m.Run())
}

const (
	testBrand    = "configuredBrand"
	testTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	testParent   = "00-" + testTraceID + "-00f067aa0ba902b7-01"
	testMaxTries = 5
)

// ---- the status store ----------------------------------------------------

// spyStore is the embedded status engine on a temporary file, with hooks to
// inject failures before Get and Apply. Everything else is the engine's own,
// so the transition rules the tests meet cannot drift from a real store.
type spyStore struct {
	*sqlitestatus.Store
	// getErr, when set, is returned by Get.
	getErr error
	// beforeApply, when set, runs before each Apply and may return an error
	// to fail it.
	beforeApply func(id string, u status.Update) error
}

var _ status.Store = (*spyStore)(nil)

// newSpyStore opens an empty embedded store in tb's temporary directory and
// closes it when tb ends.
func newSpyStore(tb testing.TB) *spyStore {
	tb.Helper()
	return &spyStore{Store: testutil.EmbeddedStatus(tb)}
}

func (f *spyStore) Get(ctx context.Context, id string) (status.Record, error) {
	if f.getErr != nil {
		return status.Record{}, f.getErr
	}
	return f.Store.Get(ctx, id)
}

func (f *spyStore) Apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	if f.beforeApply != nil {
		if err := f.beforeApply(id, u); err != nil {
			return status.Record{}, err
		}
	}
	return f.Store.Apply(ctx, id, u)
}

func (f *spyStore) record(t testing.TB, id string) status.Record {
	t.Helper()
	r, err := f.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("status record %s: %v", id, err)
	}
	return r
}

// count returns how many records the store holds.
func (f *spyStore) count(t testing.TB) int64 {
	t.Helper()
	counts, err := f.Counts(context.Background())
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	return n
}

// ---- a fake target ---------------------------------------------------------

// call is what the fake target saw of one request.
type call struct {
	IdempotencyKey string
	Traceparent    string
	Input          target.EventInput
}

type fakeTarget struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []call
}

// newFakeTarget serves reply(n) for the n-th call (0-based).
func newFakeTarget(t testing.TB, reply func(n int, w http.ResponseWriter, r *http.Request)) *fakeTarget {
	t.Helper()
	ft := &fakeTarget{}
	ft.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Variables struct {
				Input target.EventInput `json:"input"`
			} `json:"variables"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("target got a non-JSON body: %v", err)
		}
		ft.mu.Lock()
		n := len(ft.calls)
		ft.calls = append(ft.calls, call{
			IdempotencyKey: r.Header.Get(target.HeaderIdempotencyKey),
			Traceparent:    r.Header.Get("traceparent"),
			Input:          req.Variables.Input,
		})
		ft.mu.Unlock()
		reply(n, w, r)
	}))
	t.Cleanup(ft.srv.Close)
	return ft
}

func (ft *fakeTarget) seen() []call {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return slices.Clone(ft.calls)
}

// respond answers every call the same way.
func respond(code int, header map[string]string, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func receiptBody(id string, duplicate bool) string {
	return fmt.Sprintf(`{"data":{"receiveEvent":{"id":%q,"duplicate":%t,"receivedAt":"2026-01-02T03:04:05Z"}}}`, id, duplicate)
}

// ---- the dispatcher under test --------------------------------------------

type harness struct {
	url    string
	store  *spyStore
	target *fakeTarget
}

func testConfig(targetURL string) Config {
	return Config{
		Brand:         testBrand,
		TargetURL:     targetURL + "/graphql",
		TargetTimeout: 5 * time.Second,
	}
}

// testRetry is the queue's retry policy the test servers follow.
var testRetry = queue.RetryConfig{MaxAttempts: testMaxTries, MinBackoff: time.Second, MaxBackoff: time.Minute, MaxDoublings: 3}

// harnessOption changes the configuration and options a harness builds its
// server with (s nil), then the server built (s set).
type harnessOption func(c *Config, o *Options, s *Server)

func newHarness(t testing.TB, reply func(int, http.ResponseWriter, *http.Request), opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{store: newSpyStore(t), target: newFakeTarget(t, reply)}
	cfg := testConfig(h.target.srv.URL)
	o := Options{Retry: testRetry, Client: h.target.srv.Client()}
	for _, opt := range opts {
		opt(&cfg, &o, nil)
	}
	s, err := NewServer(context.Background(), cfg, h.store, o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	for _, opt := range opts {
		opt(&cfg, &o, s)
	}
	srv := httptest.NewServer(s.Routes(context.Background()))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func eventJSON(id string) string {
	return fmt.Sprintf(`{"id":%q,"name":"test event","body":"test body","timestamp":"2026-01-02T03:04:05Z","brand":"fromTheRequest"}`, id)
}

// task is one delivery as the queue makes it.
type task struct {
	body       string
	retryCount int
	noHeaders  bool
	// taskName is the X-CloudTasks-TaskName sent ("ev-task" when empty).
	taskName string
}

type answer struct {
	code       int
	retryAfter string
	body       map[string]any
}

func (h *harness) deliver(t testing.TB, tk task) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+TaskPath, strings.NewReader(tk.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if !tk.noHeaders {
		name := tk.taskName
		if name == "" {
			name = "ev-task"
		}
		req.Header.Set(queue.HeaderTaskName, name)
		req.Header.Set(queue.HeaderQueueName, "events")
		req.Header.Set(queue.HeaderRetryCount, strconv.Itoa(tk.retryCount))
		req.Header.Set(queue.HeaderExecutionCount, strconv.Itoa(tk.retryCount))
		req.Header.Set("traceparent", testParent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Errorf("answer body is not JSON: %v", err)
	}
	ct := resp.Header.Get("Content-Type")
	if a.code >= 300 && ct != "application/problem+json" {
		t.Errorf("%d answered with Content-Type %q, want application/problem+json", a.code, ct)
	}
	if a.code < 300 && ct != "application/json" {
		t.Errorf("%d answered with Content-Type %q, want application/json", a.code, ct)
	}
	return a
}

// attemptView is the part of an attempt the tests compare.
type attemptView struct {
	Number     int
	Outcome    status.Outcome
	HTTPStatus int
	HasError   bool
	TaskName   string
	TraceID    string
}

func viewAttempts(as []status.Attempt) []attemptView {
	out := make([]attemptView, 0, len(as))
	for _, a := range as {
		out = append(out, attemptView{a.Number, a.Outcome, a.HTTPStatus, a.Error != "", a.TaskName, a.TraceID})
	}
	return out
}

// ---- tests ---------------------------------------------------------------

func TestDeliverOutcomes(t *testing.T) {
	t.Parallel()

	rateLimitedGraphQL := `{"errors":[{"message":"rate limited","extensions":{"code":"RATE_LIMITED","retryAfterSeconds":2}}],"data":null}`
	badInput := `{"errors":[{"message":"brand must not be empty","path":["receiveEvent"],"extensions":{"code":"BAD_USER_INPUT"}}],"data":null}`

	cases := []struct {
		name       string
		reply      func(int, http.ResponseWriter, *http.Request)
		retryCount int
		// what the queue is told
		wantCode       int
		wantRetryAfter string
		// what the record says
		wantStatus    status.Status
		wantOutcome   status.Outcome
		wantHTTP      int
		wantReasonHas string
	}{
		{
			name:     "delivered",
			reply:    respond(200, nil, receiptBody("ev-1", false)),
			wantCode: 200, wantStatus: status.Delivered, wantOutcome: status.OutcomeDelivered, wantHTTP: 200,
		},
		{
			name:     "duplicate receipt is delivered",
			reply:    respond(200, nil, receiptBody("ev-1", true)),
			wantCode: 200, wantStatus: status.Delivered, wantOutcome: status.OutcomeDelivered, wantHTTP: 200,
		},
		{
			name:       "attempt number is retry count + 1",
			reply:      respond(200, nil, receiptBody("ev-1", false)),
			retryCount: 2,
			wantCode:   200, wantStatus: status.Delivered, wantOutcome: status.OutcomeDelivered, wantHTTP: 200,
		},
		{
			name:     "http 429 with Retry-After",
			reply:    respond(429, map[string]string{"Retry-After": "3"}, `{"errors":[{"message":"rate limited"}]}`),
			wantCode: 429, wantRetryAfter: "3", wantStatus: status.Retrying, wantOutcome: status.OutcomeRateLimited, wantHTTP: 429,
		},
		{
			name:     "http 429 without Retry-After answers at least 1",
			reply:    respond(429, nil, `{}`),
			wantCode: 429, wantRetryAfter: "1", wantStatus: status.Retrying, wantOutcome: status.OutcomeRateLimited, wantHTTP: 429,
		},
		{
			name:     "graphql RATE_LIMITED",
			reply:    respond(200, nil, rateLimitedGraphQL),
			wantCode: 429, wantRetryAfter: "2", wantStatus: status.Retrying, wantOutcome: status.OutcomeRateLimited, wantHTTP: 200,
		},
		{
			name:     "BAD_USER_INPUT fails permanently",
			reply:    respond(200, nil, badInput),
			wantCode: 200, wantStatus: status.Failed, wantOutcome: status.OutcomePermanent, wantHTTP: 200,
			wantReasonHas: "BAD_USER_INPUT",
		},
		{
			name:     "http 400 fails permanently",
			reply:    respond(400, nil, `{"errors":[{"message":"no"}]}`),
			wantCode: 200, wantStatus: status.Failed, wantOutcome: status.OutcomePermanent, wantHTTP: 400,
			wantReasonHas: "400",
		},
		{
			name:     "fault 500 retries only this task",
			reply:    respond(500, nil, `{"errors":[{"message":"injected fault"}]}`),
			wantCode: 500, wantStatus: status.Retrying, wantOutcome: status.OutcomeRetryable, wantHTTP: 500,
		},
		{
			name:     "502 backs the queue off",
			reply:    respond(502, nil, `bad gateway`),
			wantCode: 503, wantStatus: status.Retrying, wantOutcome: status.OutcomeRetryable, wantHTTP: 502,
		},
		{
			name:     "malformed 200 retries only this task",
			reply:    respond(200, nil, `<html>not json</html>`),
			wantCode: 500, wantStatus: status.Retrying, wantOutcome: status.OutcomeRetryable, wantHTTP: 200,
		},
		{
			name:     "503 passes Retry-After on",
			reply:    respond(503, map[string]string{"Retry-After": "7"}, `{}`),
			wantCode: 503, wantRetryAfter: "7", wantStatus: status.Retrying, wantOutcome: status.OutcomeRetryable, wantHTTP: 503,
		},
		{
			name:     "unknown GraphQL code retries only this task",
			reply:    respond(200, nil, `{"errors":[{"message":"x","extensions":{"code":"INTERNAL_SERVER_ERROR"}}],"data":null}`),
			wantCode: 500, wantStatus: status.Retrying, wantOutcome: status.OutcomeRetryable, wantHTTP: 200,
		},
		{
			name:       "last attempt dead-letters a fault",
			reply:      respond(500, nil, `{}`),
			retryCount: testMaxTries - 1,
			wantCode:   200, wantStatus: status.DeadLettered, wantOutcome: status.OutcomeDeadLettered, wantHTTP: 500,
			wantReasonHas: "attempt 5",
		},
		{
			name:       "last attempt dead-letters a rate limit",
			reply:      respond(429, map[string]string{"Retry-After": "3"}, `{}`),
			retryCount: testMaxTries - 1,
			wantCode:   200, wantStatus: status.DeadLettered, wantOutcome: status.OutcomeDeadLettered, wantHTTP: 429,
			wantReasonHas: "rate limited",
		},
		{
			name:       "last attempt can still deliver",
			reply:      respond(200, nil, receiptBody("ev-1", false)),
			retryCount: testMaxTries - 1,
			wantCode:   200, wantStatus: status.Delivered, wantOutcome: status.OutcomeDelivered, wantHTTP: 200,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.reply)
			got := h.deliver(t, task{body: eventJSON("ev-1"), retryCount: tc.retryCount})

			if got.code != tc.wantCode || got.retryAfter != tc.wantRetryAfter {
				t.Errorf("answer = %d Retry-After %q, want %d Retry-After %q (body %v)",
					got.code, got.retryAfter, tc.wantCode, tc.wantRetryAfter, got.body)
			}

			rec := h.store.record(t, "ev-1")
			if rec.Status != tc.wantStatus {
				t.Errorf("record status = %s, want %s", rec.Status, tc.wantStatus)
			}
			wantAttempts := []attemptView{{
				Number:     tc.retryCount + 1,
				Outcome:    tc.wantOutcome,
				HTTPStatus: tc.wantHTTP,
				HasError:   tc.wantOutcome != status.OutcomeDelivered,
				TaskName:   "ev-task",
				TraceID:    testTraceID,
			}}
			if diff := cmp.Diff(wantAttempts, viewAttempts(rec.Attempts)); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
			if rec.Attempts[0].Duration <= 0 {
				t.Errorf("attempt duration = %v, want > 0", rec.Attempts[0].Duration)
			}
			if (rec.DeliveredAt != nil) != (tc.wantStatus == status.Delivered) {
				t.Errorf("DeliveredAt = %v with status %s", rec.DeliveredAt, rec.Status)
			}
			if tc.wantStatus.Terminal() && tc.wantStatus != status.Delivered && !strings.Contains(rec.Reason, tc.wantReasonHas) {
				t.Errorf("record reason = %q, want it to contain %q", rec.Reason, tc.wantReasonHas)
			}
			if rec.TraceID != testTraceID {
				t.Errorf("record trace id = %q, want %q", rec.TraceID, testTraceID)
			}

			// What reached the target: one call, brand from config,
			// the event id as Idempotency-Key, the event's trace.
			calls := h.target.seen()
			if len(calls) != 1 {
				t.Fatalf("target saw %d calls, want 1", len(calls))
			}
			c := calls[0]
			wantInput := target.EventInput{
				Id: "ev-1", Name: "test event", Body: "test body",
				Timestamp: "2026-01-02T03:04:05Z", Brand: testBrand,
			}
			if diff := cmp.Diff(wantInput, c.Input); diff != "" {
				t.Errorf("target input (-want +got):\n%s", diff)
			}
			if c.IdempotencyKey != "ev-1" {
				t.Errorf("Idempotency-Key = %q, want ev-1", c.IdempotencyKey)
			}
			if !strings.HasPrefix(c.Traceparent, "00-"+testTraceID+"-") {
				t.Errorf("traceparent = %q, want trace %s", c.Traceparent, testTraceID)
			}
			if c.Traceparent == testParent {
				t.Errorf("traceparent = the queue's; want the dispatcher's own span as parent")
			}
		})
	}
}

func TestMissingRecordIsCreated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	h.deliver(t, task{body: eventJSON("ev-1")})

	rec := h.store.record(t, "ev-1")
	want := event.Event{ID: "ev-1", Name: "test event", Body: "test body", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if diff := cmp.Diff(want, rec.Event); diff != "" {
		t.Errorf("record event (-want +got):\n%s", diff)
	}
}

func TestTerminalRecordSkipsTarget(t *testing.T) {
	t.Parallel()
	for _, st := range []status.Status{status.Delivered, status.Failed, status.DeadLettered} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
			ctx := context.Background()
			if _, err := h.store.Create(ctx, status.Record{EventID: "ev-1"}); err != nil {
				t.Fatal(err)
			}
			prior, err := h.store.Apply(ctx, "ev-1", status.Update{Status: st, At: time.Now(), Attempt: &status.Attempt{Number: 1, Outcome: status.OutcomeDelivered}})
			if err != nil {
				t.Fatal(err)
			}

			got := h.deliver(t, task{body: eventJSON("ev-1"), retryCount: 1})
			if got.code != http.StatusOK || got.body["outcome"] != string(status.OutcomeSkipped) {
				t.Errorf("answer = %d %v, want 200 skipped", got.code, got.body)
			}
			if n := len(h.target.seen()); n != 0 {
				t.Errorf("target saw %d calls, want 0", n)
			}
			if diff := cmp.Diff(prior, h.store.record(t, "ev-1")); diff != "" {
				t.Errorf("record changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestMalformedTask(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		// wantFailed names the event recorded failed; "" means none.
		wantFailed string
	}{
		{name: "not json", body: `{not json`},
		{name: "empty", body: ``},
		{name: "array", body: `[1,2]`},
		{name: "invalid event with an id", body: `{"id":"ev-bad","name":"x"}`, wantFailed: "ev-bad"},
		{name: "invalid id", body: `{"id":"  padded","name":"x"}`},
		{name: "too large", body: `{"id":"ev-big","body":"` + strings.Repeat("a", event.MaxEventBytes) + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, respond(200, nil, receiptBody("x", false)))
			got := h.deliver(t, task{body: tc.body})

			if got.code != http.StatusOK || got.body["outcome"] != outcomeMalformed {
				t.Errorf("answer = %d %v, want 200 malformed", got.code, got.body)
			}
			if n := len(h.target.seen()); n != 0 {
				t.Errorf("target saw %d calls, want 0", n)
			}
			n := h.store.count(t)
			if tc.wantFailed == "" {
				if n != 0 {
					t.Errorf("store has %d records, want none", n)
				}
				return
			}
			rec := h.store.record(t, tc.wantFailed)
			if rec.Status != status.Failed || !strings.Contains(rec.Reason, "unparseable") {
				t.Errorf("record = %s %q, want failed with the parse reason", rec.Status, rec.Reason)
			}
			if diff := cmp.Diff([]attemptView{{Number: 1, Outcome: status.OutcomePermanent, HasError: true, TaskName: "ev-task", TraceID: testTraceID}}, viewAttempts(rec.Attempts)); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTargetTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHarness(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(c *Config, _ *Options, _ *Server) { c.TargetTimeout = 50 * time.Millisecond })
	t.Cleanup(func() { close(release) })

	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusServiceUnavailable || got.retryAfter != "" {
		t.Errorf("answer = %d Retry-After %q, want 503 without Retry-After", got.code, got.retryAfter)
	}
	rec := h.store.record(t, "ev-1")
	if rec.Status != status.Retrying || len(rec.Attempts) != 1 || !strings.Contains(rec.Attempts[0].Error, "timed out") {
		t.Errorf("record = %+v, want retrying with a timed-out attempt", rec)
	}
	if rec.Attempts[0].Duration < 50*time.Millisecond {
		t.Errorf("attempt duration = %v, want >= the 50ms timeout", rec.Attempts[0].Duration)
	}
}

func TestTargetUnreachableIsRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, "{}"))
	h.target.srv.Close()

	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("answer = %d, want 503", got.code)
	}
	rec := h.store.record(t, "ev-1")
	if rec.Status != status.Retrying || rec.Attempts[0].HTTPStatus != 0 || rec.Attempts[0].Error == "" {
		t.Errorf("record = %+v, want retrying with a network error", rec)
	}
}

func TestStoreReadFailureIsRetriedWithoutCallingTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	h.store.getErr = errors.New("disk on fire")

	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("answer = %d, want 503", got.code)
	}
	if n := len(h.target.seen()); n != 0 {
		t.Errorf("target saw %d calls, want 0", n)
	}
}

func TestStoreWriteFailureAfterDeliveryIsRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(n int, w http.ResponseWriter, r *http.Request) {
		respond(200, nil, receiptBody("ev-1", n > 0))(n, w, r)
	})
	var failOnce sync.Once
	h.store.beforeApply = func(_ string, u status.Update) error {
		var err error
		if u.Status == status.Delivered {
			failOnce.Do(func() { err = errors.New("write timeout") })
		}
		return err
	}

	first := h.deliver(t, task{body: eventJSON("ev-1")})
	if first.code != http.StatusServiceUnavailable {
		t.Fatalf("first answer = %d, want 503 so the verdict gets recorded on retry", first.code)
	}
	if st := h.store.record(t, "ev-1").Status; st != status.Delivering {
		t.Errorf("after the failed write the record is %s, want delivering", st)
	}

	second := h.deliver(t, task{body: eventJSON("ev-1"), retryCount: 1})
	if second.code != http.StatusOK {
		t.Errorf("retry answer = %d, want 200", second.code)
	}
	rec := h.store.record(t, "ev-1")
	if rec.Status != status.Delivered {
		t.Errorf("record status = %s, want delivered", rec.Status)
	}
	calls := h.target.seen()
	if len(calls) != 2 || calls[0].IdempotencyKey != "ev-1" || calls[1].IdempotencyKey != "ev-1" {
		t.Errorf("target calls = %+v, want two with Idempotency-Key ev-1", calls)
	}
}

func TestConflictAfterDeliveryIsSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	// Another delivery of the same task finishes while this one calls
	// the target.
	h.store.beforeApply = func(id string, u status.Update) error {
		if u.Status == status.Delivered {
			// The other delivery's write, straight to the engine.
			if _, err := h.store.Store.Apply(context.Background(), id, status.Update{Status: status.Delivered, At: u.At}); err != nil {
				t.Errorf("the other delivery's write: %v", err)
			}
		}
		return nil
	}
	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusOK {
		t.Errorf("answer = %d, want 200", got.code)
	}
	if n := len(h.target.seen()); n != 1 {
		t.Errorf("target saw %d calls, want 1", n)
	}
}

func TestConflictBeforeCallSkipsTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	h.store.beforeApply = func(id string, u status.Update) error {
		if u.Status == status.Delivering {
			return &status.TransitionError{EventID: id, From: status.Delivered, To: status.Delivering}
		}
		return nil
	}
	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusOK || got.body["outcome"] != string(status.OutcomeSkipped) {
		t.Errorf("answer = %d %v, want 200 skipped", got.code, got.body)
	}
	if n := len(h.target.seen()); n != 0 {
		t.Errorf("target saw %d calls, want 0", n)
	}
}

func TestConcurrentDeliveriesNeverAnswer5xx(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(n int, w http.ResponseWriter, r *http.Request) {
		respond(200, nil, receiptBody("ev-1", n > 0))(n, w, r)
	})
	const n = 8
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { codes <- h.deliver(t, task{body: eventJSON("ev-1")}).code })
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a concurrent delivery answered %d, want 200", c)
		}
	}
	if st := h.store.record(t, "ev-1").Status; st != status.Delivered {
		t.Errorf("record status = %s, want delivered", st)
	}
}

func TestMissingDeliveryHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	got := h.deliver(t, task{body: eventJSON("ev-1"), noHeaders: true})
	if got.code != http.StatusOK {
		t.Errorf("answer = %d, want 200", got.code)
	}
	rec := h.store.record(t, "ev-1")
	if len(rec.Attempts) != 1 || rec.Attempts[0].Number != 1 || rec.Attempts[0].TraceID == "" {
		t.Errorf("attempts = %+v, want one attempt numbered 1 with a fresh trace id", rec.Attempts)
	}
}

func TestAttemptSpan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(429, map[string]string{"Retry-After": "2"}, `{}`))
	h.deliver(t, task{body: eventJSON("ev-span"), retryCount: 3})

	var found bool
	for _, s := range spans.Ended() {
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs[attrEventID] != "ev-span" {
			continue
		}
		found = true
		want := map[string]string{
			attrEventID:    "ev-span",
			attrRetryCount: "3",
			attrTaskName:   "ev-task",
			attrQueueName:  "events",
			attrOutcome:    string(status.OutcomeRateLimited),
			attrHTTPStatus: "429",
		}
		if diff := cmp.Diff(want, attrs); diff != "" {
			t.Errorf("span attributes (-want +got):\n%s", diff)
		}
		if got := s.SpanContext().TraceID().String(); got != testTraceID {
			t.Errorf("span trace = %s, want the event's %s", got, testTraceID)
		}
		if got := s.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
			t.Errorf("span parent = %s, want the queue's span", got)
		}
	}
	if !found {
		t.Error("no span recorded for ev-span")
	}
}

func TestAuthenticateSeam(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)), func(_ *Config, o *Options, s *Server) {
		if s != nil {
			return
		}
		o.Authenticate = func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"status":401}`)
			})
		}
	})
	got := h.deliver(t, task{body: eventJSON("ev-1")})
	if got.code != http.StatusUnauthorized {
		t.Errorf("answer = %d, want 401 from the Authenticate middleware", got.code)
	}
	if n := len(h.target.seen()); n != 0 {
		t.Errorf("target saw %d calls, want 0", n)
	}
	resp, err := http.Get(h.url + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health = %d, want 200 (never authenticated)", resp.StatusCode)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-1", false)))
	cases := []struct {
		name     string
		method   string
		path     string
		wantCode int
	}{
		{name: "health", method: http.MethodGet, path: HealthPath, wantCode: 200},
		{name: "task by GET", method: http.MethodGet, path: TaskPath, wantCode: 405},
		{name: "unknown", method: http.MethodGet, path: "/nope", wantCode: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, h.url+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.wantCode)
			}
		})
	}
}

func TestNewServerRejects(t *testing.T) {
	t.Parallel()
	if _, err := NewServer(context.Background(), Config{}, newSpyStore(t), Options{Retry: testRetry}); err == nil {
		t.Error("NewServer with an empty config succeeded, want an error")
	}
	if _, err := NewServer(context.Background(), testConfig("http://127.0.0.1:1"), nil, Options{Retry: testRetry}); err == nil {
		t.Error("NewServer without a store succeeded, want an error")
	}
	if _, err := NewServer(context.Background(), testConfig("http://127.0.0.1:1"), newSpyStore(t), Options{}); err == nil ||
		!strings.Contains(err.Error(), "max attempts") {
		t.Errorf("NewServer without a retry policy = %v, want a max attempts error", err)
	}
}
