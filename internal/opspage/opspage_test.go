package opspage

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"eventrelay/internal/event"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// newPage builds a Page over a fresh embedded store and a fake queue; edit tweaks the
// options first.
func newPage(t testing.TB, edit func(*Options)) (*Page, *spyStore, *fakeQueue) {
	t.Helper()
	store, q := newSpyStore(t), &fakeQueue{}
	o := Options{Store: store, Queue: q, Limit: func() float64 { return 10 }}
	if edit != nil {
		edit(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, store, q
}

func mustSample(t testing.TB, p *Page, at time.Time) {
	t.Helper()
	if err := p.sample(context.Background(), at); err != nil {
		t.Fatalf("sample at %v: %v", at, err)
	}
}

func get(t testing.TB, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, quietRequest(http.MethodGet, target))
	return rec
}

// quietRequest is a request whose context carries a logger that discards:
// the failure cases log errors by design.
func quietRequest(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	return r.WithContext(logging.WithLogger(r.Context(), slog.New(slog.DiscardHandler)))
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, rec.Body.String(), err)
	}
	return v
}

// wantProblem checks that rec is a problem+json with the code and slug.
func wantProblem(t testing.TB, rec *httptest.ResponseRecorder, code int, slug string) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	p := decode[serving.Problem](t, rec)
	if want := serving.ProblemTypeBase + slug; p.Type != want || p.Status != code {
		t.Errorf("problem = %+v, want type %s status %d", p, want, code)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{name: "no store", o: Options{}, wantErr: "a status store is required"},
		{name: "negative period", o: Options{Store: newSpyStore(t), SampleEvery: -time.Second}, wantErr: "sample period"},
		{name: "negative history", o: Options{Store: newSpyStore(t), History: -1}, wantErr: "history"},
		{name: "defaults", o: Options{Store: newSpyStore(t)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if p.o.SampleEvery != DefaultSampleEvery || p.o.History != DefaultHistory {
				t.Errorf("defaults = %v, %d; want %v, %d", p.o.SampleEvery, p.o.History, DefaultSampleEvery, DefaultHistory)
			}
		})
	}
}

// TestSampleRates drives the sampler by hand through known count changes
// and checks every number of the overview.
func TestSampleRates(t *testing.T) {
	t.Parallel()
	p, store, q := newPage(t, nil)

	// Baseline: 5 delivered, 2 queued. One reading gives no rate yet.
	store.addN(t, "a", 5, status.Delivered, t0)
	store.addN(t, "b", 2, status.Queued, t0)
	q.set(queue.Stats{Backlog: 2, InFlight: 1, OldestAge: 1500 * time.Millisecond}, nil)
	mustSample(t, p, t0)
	if ov := decode[Overview](t, get(t, p.Handler(), "/api/overview")); len(ov.Samples) != 0 || ov.Received != 7 {
		t.Fatalf("after one reading: %d samples, received %d; want 0 samples, received 7", len(ov.Samples), ov.Received)
	}

	// +1 s: 10 more records (4 delivered, 3 failed, 1 dead-lettered, 2 retrying).
	store.addN(t, "c", 4, status.Delivered, t0.Add(time.Second))
	store.addN(t, "d", 3, status.Failed, t0.Add(time.Second))
	store.addN(t, "e", 1, status.DeadLettered, t0.Add(time.Second))
	store.addN(t, "f", 2, status.Retrying, t0.Add(time.Second))
	q.set(queue.Stats{Backlog: 4, InFlight: 2, OldestAge: 2 * time.Second}, nil)
	mustSample(t, p, t0.Add(time.Second))

	// +3 s (a 2 s gap): 6 more, all delivered.
	store.addN(t, "g", 6, status.Delivered, t0.Add(3*time.Second))
	q.set(queue.Stats{}, nil)
	mustSample(t, p, t0.Add(3*time.Second))

	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	want := Overview{
		SampleEveryMS: 1000,
		Limit:         10,
		HasQueue:      true,
		TotalsAt:      t0.Add(3 * time.Second),
		Totals: map[status.Status]int64{
			status.Queued: 2, status.Delivering: 0, status.Retrying: 2,
			status.Delivered: 15, status.Failed: 3, status.DeadLettered: 1,
		},
		Received: 23,
		Samples: []Sample{
			{At: t0.Add(time.Second), ReceivedPerSecond: 10, DeliveredPerSecond: 4, Limit: 10,
				Backlog: 4, InFlight: 2, OldestAgeSeconds: 2,
				Received: 17, Delivered: 9, Failed: 3, DeadLettered: 1},
			{At: t0.Add(3 * time.Second), ReceivedPerSecond: 3, DeliveredPerSecond: 3, Limit: 10,
				Received: 23, Delivered: 15, Failed: 3, DeadLettered: 1},
		},
	}
	if diff := cmp.Diff(want, ov, cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("overview (-want +got):\n%s", diff)
	}
}

func TestSampleHistoryIsBounded(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, func(o *Options) { o.History = 3 })
	for i := range 7 {
		store.addN(t, "x"+string(rune('a'+i)), i, status.Queued, t0)
		mustSample(t, p, t0.Add(time.Duration(i)*time.Second))
	}
	var got []float64
	for _, s := range p.snapshot().samples {
		got = append(got, s.ReceivedPerSecond)
	}
	// Readings 1..6 add 1..6 records a second; only the newest three stay.
	if diff := cmp.Diff([]float64{4, 5, 6}, got); diff != "" {
		t.Errorf("kept rates, oldest first (-want +got):\n%s", diff)
	}
}

func TestSampleNegativeDeltaIsZero(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, nil)
	store.addN(t, "a", 5, status.Delivered, t0)
	mustSample(t, p, t0)
	store.Store = newSpyStore(t).Store // the store was emptied
	mustSample(t, p, t0.Add(time.Second))
	s := p.snapshot().samples
	if len(s) != 1 || s[0].ReceivedPerSecond != 0 || s[0].DeliveredPerSecond != 0 {
		t.Errorf("samples = %+v, want one with zero rates", s)
	}
}

func TestSampleErrors(t *testing.T) {
	t.Parallel()
	p, store, q := newPage(t, nil)
	h := p.Handler()
	store.addN(t, "a", 2, status.Delivered, t0)
	mustSample(t, p, t0)

	// The store fails: no sample, the error shows.
	store.setErr(errBoom)
	if err := p.sample(context.Background(), t0.Add(time.Second)); err == nil {
		t.Fatal("sample with a failing store: no error")
	}
	store.setErr(nil)
	ov := decode[Overview](t, get(t, h, "/api/overview"))
	if len(ov.Samples) != 0 || !strings.Contains(ov.Error, "boom") {
		t.Errorf("after a failed read: %d samples, error %q; want 0 and the error", len(ov.Samples), ov.Error)
	}

	// The queue fails: the sample is kept with zero queue fields.
	q.set(queue.Stats{Backlog: 9}, errBoom)
	store.addN(t, "b", 2, status.Delivered, t0)
	if err := p.sample(context.Background(), t0.Add(2*time.Second)); err == nil {
		t.Fatal("sample with a failing queue: no error")
	}
	ov = decode[Overview](t, get(t, h, "/api/overview"))
	if len(ov.Samples) != 1 || ov.Samples[0].Backlog != 0 || ov.Samples[0].DeliveredPerSecond != 1 || !strings.Contains(ov.Error, "queue stats") {
		t.Errorf("after a failed stats read: samples %+v, error %q", ov.Samples, ov.Error)
	}

	// Both work again: the error clears.
	q.set(queue.Stats{Backlog: 1}, nil)
	mustSample(t, p, t0.Add(3*time.Second))
	if ov := decode[Overview](t, get(t, h, "/api/overview")); ov.Error != "" || ov.Samples[1].Backlog != 1 {
		t.Errorf("after recovery: error %q, last sample %+v", ov.Error, ov.Samples[len(ov.Samples)-1])
	}
}

func TestOverviewWithoutQueueOrLimit(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, func(o *Options) { o.Queue, o.Limit = nil, nil })
	store.addN(t, "a", 3, status.Failed, t0)
	// Before any sample the overview reads the counts itself.
	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	if ov.HasQueue || ov.Limit != 0 || ov.Totals[status.Failed] != 3 || ov.Received != 3 || ov.TotalsAt.IsZero() {
		t.Errorf("overview = %+v; want no queue, no limit, 3 failed", ov)
	}
	if len(ov.Totals) != len(status.All) {
		t.Errorf("totals has %d statuses, want all %d", len(ov.Totals), len(status.All))
	}
}

func TestOverviewStoreDown(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, nil)
	store.setErr(errBoom)
	wantProblem(t, get(t, p.Handler(), "/api/overview"), http.StatusServiceUnavailable, SlugStoreUnavailable)
}

func TestRun(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, func(o *Options) { o.SampleEvery = 5 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	n := 0
	for deadline := time.Now().Add(30 * time.Second); len(p.snapshot().samples) < 3; {
		if time.Now().After(deadline) {
			t.Fatal("Run took no three samples in 30s")
		}
		n++
		store.addN(t, "r"+strings.Repeat("x", n), 1, status.Queued, t0)
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel, want nil", err)
	}
}

func TestEventsEndpoint(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, nil)
	store.addN(t, "q", 30, status.Queued, t0)
	store.addN(t, "d", 5, status.Delivered, t0.Add(time.Minute))
	h := p.Handler()

	cases := []struct {
		name      string
		query     string
		wantCount int
		wantFirst string
		wantLimit int
		wantSlug  string
	}{
		{name: "default limit, newest first", query: "", wantCount: 20, wantFirst: "d-004", wantLimit: 20},
		{name: "by status", query: "?status=queued", wantCount: 20, wantFirst: "q-029", wantLimit: 20},
		{name: "by status and limit", query: "?status=delivered&limit=3", wantCount: 3, wantFirst: "d-004", wantLimit: 3},
		{name: "limit above count", query: "?status=delivered&limit=200", wantCount: 5, wantFirst: "d-004", wantLimit: 200},
		{name: "no match", query: "?status=dead_lettered", wantCount: 0, wantLimit: 20},
		{name: "unknown status", query: "?status=lost", wantSlug: SlugInvalidStatus},
		{name: "limit zero", query: "?limit=0", wantSlug: SlugInvalidLimit},
		{name: "limit too big", query: "?limit=201", wantSlug: SlugInvalidLimit},
		{name: "limit not a number", query: "?limit=ten", wantSlug: SlugInvalidLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := get(t, h, "/api/events"+tc.query)
			if tc.wantSlug != "" {
				wantProblem(t, rec, http.StatusBadRequest, tc.wantSlug)
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body.String())
			}
			list := decode[EventList](t, rec)
			if len(list.Events) != tc.wantCount || list.Limit != tc.wantLimit {
				t.Fatalf("got %d events, limit %d; want %d, %d", len(list.Events), list.Limit, tc.wantCount, tc.wantLimit)
			}
			if list.Events == nil {
				t.Error("events is null, want a list")
			}
			if tc.wantFirst != "" && list.Events[0].EventID != tc.wantFirst {
				t.Errorf("first = %s, want %s", list.Events[0].EventID, tc.wantFirst)
			}
			for i := 1; i < len(list.Events); i++ {
				if list.Events[i].ReceivedAt.After(list.Events[i-1].ReceivedAt) {
					t.Errorf("event %d received after event %d: not newest first", i, i-1)
				}
			}
		})
	}
}

func TestEventsStoreDown(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, nil)
	store.setErr(errBoom)
	wantProblem(t, get(t, p.Handler(), "/api/events"), http.StatusServiceUnavailable, SlugStoreUnavailable)
}

// retried is a record delivered on its third attempt.
func retried(id string) status.Record {
	delivered := t0.Add(2500 * time.Millisecond)
	return status.Record{
		EventID:     id,
		Status:      status.Delivered,
		Event:       event.Event{ID: id, Name: "test event", Body: "test body", Timestamp: t0},
		ReceivedAt:  t0,
		UpdatedAt:   delivered,
		DeliveredAt: &delivered,
		TraceID:     "4bf92f3577b34da6a3ce929d0e0e4736",
		Attempts: []status.Attempt{
			{Number: 1, At: t0.Add(100 * time.Millisecond), Outcome: status.OutcomeRateLimited, HTTPStatus: 429,
				Error: "target rate limited", Duration: 3 * time.Millisecond, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
			{Number: 2, At: t0.Add(1200 * time.Millisecond), Outcome: status.OutcomeRetryable,
				Error: "target timeout", Duration: 10 * time.Second, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
			{Number: 3, At: t0.Add(2400 * time.Millisecond), Outcome: status.OutcomeDelivered, HTTPStatus: 200,
				Duration: 7 * time.Millisecond, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
		},
	}
}

func TestEventTimeline(t *testing.T) {
	t.Parallel()
	spans := &fakeSpans{traces: map[string][]Span{
		"4bf92f3577b34da6a3ce929d0e0e4736": {
			{SpanID: "c1", ParentID: "b1", Name: "dispatch attempt 1", Start: t0.Add(100 * time.Millisecond)},
			{SpanID: "a1", Name: "POST /events", Service: "ingest", Start: t0},
			{SpanID: "b1", ParentID: "a1", Name: "enqueue", Service: "ingest", Start: t0.Add(time.Millisecond)},
			{SpanID: "c2", ParentID: "b1", Name: "dispatch attempt 2", Start: t0.Add(1200 * time.Millisecond)},
			{SpanID: "d1", ParentID: "c1", Name: "receiveEvent", Service: "targetmock", Start: t0.Add(101 * time.Millisecond), Status: "error: rate limited"},
		},
	}}
	p, store, _ := newPage(t, func(o *Options) {
		o.Spans = spans
		o.TraceURL = func(id string) string { return "https://console.cloud.google.com/traces/list?tid=" + id }
	})
	store.put(t, retried("evt/1"))

	rec := get(t, p.Handler(), "/api/events/evt%2F1")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; body %s", rec.Code, rec.Body.String())
	}
	d := decode[EventDetail](t, rec)
	wantTimeline := []TimelineEntry{
		{At: t0, Kind: KindReceived},
		{At: t0.Add(100 * time.Millisecond), Kind: KindAttempt, Attempt: 1, Outcome: status.OutcomeRateLimited,
			HTTPStatus: 429, Duration: 3 * time.Millisecond, Error: "target rate limited"},
		{At: t0.Add(1200 * time.Millisecond), Kind: KindAttempt, Attempt: 2, Outcome: status.OutcomeRetryable,
			Duration: 10 * time.Second, Error: "target timeout"},
		{At: t0.Add(2400 * time.Millisecond), Kind: KindAttempt, Attempt: 3, Outcome: status.OutcomeDelivered,
			HTTPStatus: 200, Duration: 7 * time.Millisecond},
		{At: t0.Add(2500 * time.Millisecond), Kind: KindDelivered, Detail: "after 2.5s"},
	}
	if diff := cmp.Diff(wantTimeline, d.Timeline); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if d.Record.EventID != "evt/1" || len(d.Record.Attempts) != 3 {
		t.Errorf("record = %s with %d attempts, want evt/1 with 3", d.Record.EventID, len(d.Record.Attempts))
	}
	if want := "https://console.cloud.google.com/traces/list?tid=4bf92f3577b34da6a3ce929d0e0e4736"; d.TraceURL != want {
		t.Errorf("trace_url = %q, want %q", d.TraceURL, want)
	}
	type row struct {
		ID    string
		Depth int
	}
	var got []row
	for _, s := range d.Spans {
		got = append(got, row{s.SpanID, s.Depth})
	}
	wantSpans := []row{{"a1", 0}, {"b1", 1}, {"c1", 2}, {"d1", 3}, {"c2", 2}}
	if diff := cmp.Diff(wantSpans, got); diff != "" {
		t.Errorf("spans in tree order (-want +got):\n%s", diff)
	}

	// The raw JSON uses the documented names.
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"record", "timeline", "spans", "trace_url"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, rec.Body.String())
		}
	}
}

func TestEventTerminalEntries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		st   status.Status
		want []string // kinds
	}{
		{name: "queued", st: status.Queued, want: []string{KindReceived}},
		{name: "retrying", st: status.Retrying, want: []string{KindReceived, KindAttempt}},
		{name: "failed", st: status.Failed, want: []string{KindReceived, KindAttempt, KindFailed}},
		{name: "dead-lettered", st: status.DeadLettered, want: []string{KindReceived, KindAttempt, KindDeadLettered}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := status.Record{EventID: "e", Status: tc.st, ReceivedAt: t0, UpdatedAt: t0.Add(time.Second), Reason: "why"}
			if tc.st != status.Queued {
				r.Attempts = []status.Attempt{{Number: 1, At: t0, Outcome: status.OutcomeRetryable}}
			}
			var kinds []string
			tl := Timeline(r)
			for _, e := range tl {
				kinds = append(kinds, e.Kind)
			}
			if diff := cmp.Diff(tc.want, kinds); diff != "" {
				t.Fatalf("kinds (-want +got):\n%s", diff)
			}
			if last := tl[len(tl)-1]; r.Status.Terminal() && (last.Detail != "why" || !last.At.Equal(r.UpdatedAt)) {
				t.Errorf("terminal entry = %+v, want the reason at updated_at", last)
			}
		})
	}
}

func TestEventLookupEdges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		opts       func(*Options)
		path       string
		wantCode   int
		wantSlug   string
		check      func(t *testing.T, d EventDetail, raw string)
		storeError bool
	}{
		{name: "unknown id", path: "/api/events/nope", wantCode: 404, wantSlug: SlugEventNotFound},
		{name: "empty id", path: "/api/events/", wantCode: 400, wantSlug: SlugInvalidID},
		{name: "store down", path: "/api/events/evt-1", wantCode: 503, wantSlug: SlugStoreUnavailable, storeError: true},
		{name: "no span source: spans null", path: "/api/events/evt-1", wantCode: 200,
			check: func(t *testing.T, d EventDetail, raw string) {
				if d.Spans != nil || !strings.Contains(raw, `"spans":null`) || d.TraceURL != "" {
					t.Errorf("spans %v, trace_url %q; want null and none", d.Spans, d.TraceURL)
				}
			}},
		{name: "span source fails: the rest shows", path: "/api/events/evt-1", wantCode: 200,
			opts: func(o *Options) { o.Spans = &fakeSpans{err: errBoom} },
			check: func(t *testing.T, d EventDetail, _ string) {
				if d.Spans == nil || len(d.Spans) != 0 || !strings.Contains(d.SpansError, "boom") || len(d.Timeline) != 5 {
					t.Errorf("spans %v, error %q, %d timeline entries", d.Spans, d.SpansError, len(d.Timeline))
				}
			}},
		{name: "javascript trace URL is dropped", path: "/api/events/evt-1", wantCode: 200,
			opts: func(o *Options) { o.TraceURL = func(string) string { return "javascript:alert(1)" } },
			check: func(t *testing.T, d EventDetail, _ string) {
				if d.TraceURL != "" {
					t.Errorf("trace_url = %q, want none", d.TraceURL)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, store, _ := newPage(t, tc.opts)
			store.put(t, retried("evt-1"))
			if tc.storeError {
				store.setErr(errBoom)
			}
			rec := get(t, p.Handler(), tc.path)
			if tc.wantSlug != "" {
				wantProblem(t, rec, tc.wantCode, tc.wantSlug)
				return
			}
			if rec.Code != tc.wantCode {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body.String())
			}
			tc.check(t, decode[EventDetail](t, rec), rec.Body.String())
		})
	}
}

func TestSpanTree(t *testing.T) {
	t.Parallel()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cases := []struct {
		name  string
		spans []Span
		want  []string // "id@depth"
	}{
		{name: "empty", spans: nil, want: nil},
		{name: "children by start",
			spans: []Span{
				{SpanID: "r", Start: at(0)},
				{SpanID: "late", ParentID: "r", Start: at(9)},
				{SpanID: "early", ParentID: "r", Start: at(1)},
				{SpanID: "grand", ParentID: "early", Start: at(2)},
			},
			want: []string{"r@0", "early@1", "grand@2", "late@1"}},
		{name: "orphan is a root",
			spans: []Span{{SpanID: "a", ParentID: "missing", Start: at(5)}, {SpanID: "r", Start: at(0)}},
			want:  []string{"r@0", "a@0"}},
		{name: "duplicates kept once",
			spans: []Span{{SpanID: "r", Start: at(0)}, {SpanID: "r", Start: at(0)}, {SpanID: "c", ParentID: "r", Start: at(1)}},
			want:  []string{"r@0", "c@1"}},
		{name: "cycle loses nothing",
			spans: []Span{{SpanID: "x", ParentID: "y", Start: at(0)}, {SpanID: "y", ParentID: "x", Start: at(1)}, {SpanID: "self", ParentID: "self", Start: at(2)}},
			want:  []string{"self@0", "x@0", "y@1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, n := range SpanTree(tc.spans) {
				got = append(got, n.SpanID+"@"+string(rune('0'+n.Depth)))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
		})
	}
}
