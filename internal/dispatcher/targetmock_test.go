package dispatcher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/dispatcher/target"
	"eventrelay/internal/event"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
)

// These tests run the dispatcher against the real target test double, so
// that the outcome rules are checked against the shapes the target really
// sends, not only against hand-written replies.

func newTargetmock(t testing.TB, cfg targetmock.Config) (*targetmock.Server, string) {
	t.Helper()
	if cfg.Port == "" {
		cfg.Port = "0"
	}
	if cfg.RateLimitMode == "" {
		cfg.RateLimitMode = targetmock.ModeHTTP
	}
	tm, err := targetmock.NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatalf("targetmock: %v", err)
	}
	t.Cleanup(func() { _ = tm.Close() })
	srv := httptest.NewServer(tm.Routes(context.Background()))
	t.Cleanup(srv.Close)
	return tm, srv.URL
}

// newDispatcherFor serves a dispatcher with its own fake store in front of
// the target at targetURL.
func newDispatcherFor(t testing.TB, targetURL string) *harness {
	t.Helper()
	h := &harness{store: newSpyStore(t)}
	s, err := NewServer(context.Background(), testConfig(targetURL), h.store, Options{Retry: testRetry})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv := httptest.NewServer(s.Routes(context.Background()))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func TestTargetmockDelivers(t *testing.T) {
	t.Parallel()
	tm, url := newTargetmock(t, targetmock.Config{Rate: 1000, Burst: 100})
	h := newDispatcherFor(t, url)

	if got := h.deliver(t, task{body: eventJSON("ev-tm")}); got.code != http.StatusOK {
		t.Fatalf("answer = %d %v, want 200", got.code, got.body)
	}
	if st := h.store.record(t, "ev-tm").Status; st != status.Delivered {
		t.Errorf("record status = %s, want delivered", st)
	}
	ev, err := tm.Event(context.Background(), "ev-tm")
	if err != nil {
		t.Fatalf("target has no event: %v", err)
	}
	if ev.Brand != testBrand || ev.Name != "test event" || ev.Calls != 1 {
		t.Errorf("target event = %+v, want brand %s from config and one call", ev, testBrand)
	}
	calls, err := tm.Calls(context.Background(), targetmock.CallFilter{EventID: "ev-tm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].IdempotencyKey != "ev-tm" || !strings.Contains(calls[0].Traceparent, testTraceID) {
		t.Errorf("target calls = %+v, want one with Idempotency-Key ev-tm and trace %s", calls, testTraceID)
	}

	// A second dispatcher that lost its status (or a replay) calls the
	// target again: the target answers duplicate and the event is delivered.
	other := newDispatcherFor(t, url)
	if got := other.deliver(t, task{body: eventJSON("ev-tm")}); got.code != http.StatusOK {
		t.Errorf("duplicate delivery answer = %d %v, want 200", got.code, got.body)
	}
	if st := other.store.record(t, "ev-tm").Status; st != status.Delivered {
		t.Errorf("duplicate delivery record = %s, want delivered", st)
	}
	stats, err := tm.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.DistinctEvents != 1 || stats.Duplicates != 1 {
		t.Errorf("target stats = %+v, want 1 event and 1 duplicate call", stats)
	}
}

func TestTargetmockRateLimited(t *testing.T) {
	t.Parallel()
	for _, mode := range []targetmock.RateLimitMode{targetmock.ModeHTTP, targetmock.ModeGraphQL} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			// One token, refilled every 1000 s: the second call is limited.
			_, url := newTargetmock(t, targetmock.Config{Rate: 0.001, Burst: 1, RateLimitMode: mode})
			h := newDispatcherFor(t, url)

			if got := h.deliver(t, task{body: eventJSON("ev-a")}); got.code != http.StatusOK {
				t.Fatalf("first answer = %d, want 200", got.code)
			}
			got := h.deliver(t, task{body: eventJSON("ev-b")})
			if got.code != http.StatusTooManyRequests {
				t.Fatalf("second answer = %d %v, want 429", got.code, got.body)
			}
			if secs, err := strconv.Atoi(got.retryAfter); err != nil || secs < 1 {
				t.Errorf("Retry-After = %q, want whole seconds >= 1", got.retryAfter)
			}
			rec := h.store.record(t, "ev-b")
			if rec.Status != status.Retrying || rec.Attempts[0].Outcome != status.OutcomeRateLimited {
				t.Errorf("record = %s %+v, want retrying after a rate_limited attempt", rec.Status, rec.Attempts)
			}
		})
	}
}

func TestTargetmockFault(t *testing.T) {
	t.Parallel()
	_, url := newTargetmock(t, targetmock.Config{Rate: 1000, Burst: 100, ErrorRatio: 1})
	h := newDispatcherFor(t, url)

	got := h.deliver(t, task{body: eventJSON("ev-f")})
	if got.code != http.StatusInternalServerError {
		t.Errorf("answer = %d %v, want 500: a per-event fault retries only its task", got.code, got.body)
	}
	if rec := h.store.record(t, "ev-f"); rec.Attempts[0].HTTPStatus != http.StatusInternalServerError {
		t.Errorf("attempt = %+v, want HTTP 500 recorded", rec.Attempts[0])
	}
}

func TestTargetmockEmptyBrandIsPermanent(t *testing.T) {
	t.Parallel()
	// The dispatcher's config cannot hold an empty brand, so the client is
	// driven directly to see the target's rejection shape.
	_, url := newTargetmock(t, targetmock.Config{Rate: 1000, Burst: 100})
	c := target.New(url+"/graphql", nil, 5*time.Second)
	ev := event.Enrich(event.Event{ID: "ev-nobrand", Name: "n", Body: "b", Timestamp: time.Now()}, "")

	res := c.Send(context.Background(), ev)
	o := Classify(res)
	if o.Kind != status.OutcomePermanent || !strings.Contains(o.Reason, target.CodeBadUserInput) {
		t.Errorf("Classify(%+v) = %+v, want permanent BAD_USER_INPUT", res, o)
	}
}
