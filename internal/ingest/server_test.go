package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/event"
	"eventrelay/internal/ingest"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

func decodeAccepted(tb testing.TB, rec *httptest.ResponseRecorder) ingest.Accepted {
	tb.Helper()
	if rec.Code != http.StatusAccepted {
		tb.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		tb.Errorf("Content-Length = %q, body is %d bytes", cl, rec.Body.Len())
	}
	var a ingest.Accepted
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		tb.Fatalf("202 body %q: %v", rec.Body, err)
	}
	return a
}

func decodeProblem(tb testing.TB, rec *httptest.ResponseRecorder) serving.Problem {
	tb.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p serving.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		tb.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		tb.Errorf("problem status %d != HTTP status %d", p.Status, rec.Code)
	}
	return p
}

func TestAccept(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tok := token(t)
	req := newRequest(t, eventJSON("evt-1"), func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+tok)
	})
	before := time.Now()
	rec := h.do(req)

	got := decodeAccepted(t, rec)
	if diff := cmp.Diff(ingest.Accepted{ID: "evt-1", Status: status.Queued}, got); diff != "" {
		t.Errorf("202 body (-want +got):\n%s", diff)
	}

	wantEvent := event.Event{ID: "evt-1", Name: "test event", Body: "test body", Timestamp: time.UnixMilli(1767225600000).UTC()}
	wantBody, err := json.Marshal(wantEvent)
	if err != nil {
		t.Fatal(err)
	}
	tasks := h.queue.Tasks()
	if len(tasks) != 1 {
		t.Fatalf("queue has %d tasks, want 1", len(tasks))
	}
	task := tasks[0]
	if task.Name != queue.TaskName("evt-1") {
		t.Errorf("task name = %q, want %q", task.Name, queue.TaskName("evt-1"))
	}
	// The body is the normalised event: epoch milliseconds became RFC 3339.
	if diff := cmp.Diff(string(wantBody), string(task.Body)); diff != "" {
		t.Errorf("task body (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(task.Body), `"timestamp":"2026-01-01T00:00:00Z"`) {
		t.Errorf("task body %s does not carry the normalised timestamp", task.Body)
	}
	tp := task.Header.Get("traceparent")
	if tp == "" {
		t.Fatalf("task header has no traceparent: %v", task.Header)
	}

	recs := h.store.Records(t)
	r, ok := recs["evt-1"]
	if !ok || len(recs) != 1 {
		t.Fatalf("status records = %v, want one for evt-1", recs)
	}
	if r.Status != status.Queued || !cmp.Equal(r.Event, wantEvent) {
		t.Errorf("record = %+v, want queued with the event", r)
	}
	if r.ReceivedAt.Before(before.Add(-time.Second)) || r.ReceivedAt.IsZero() {
		t.Errorf("record received at %v, request sent at %v", r.ReceivedAt, before)
	}
	if wantTrace := strings.Split(tp, "-")[1]; r.TraceID != wantTrace {
		t.Errorf("record trace id = %q, want the task's %q", r.TraceID, wantTrace)
	}

	logs := h.logs.String()
	if !strings.Contains(logs, `"message":"event accepted"`) || !strings.Contains(logs, `"event_id":"evt-1"`) ||
		!strings.Contains(logs, `"task":"`+task.Name+`"`) || !strings.Contains(logs, `"duplicate":false`) ||
		!strings.Contains(logs, `"latency_ms":`) {
		t.Errorf("no accepted-event log line with event_id, task, duplicate and latency; logs:\n%s", logs)
	}
	if strings.Contains(logs, "test body") || strings.Contains(logs, tok) {
		t.Errorf("logs carry the event body or the token:\n%s", logs)
	}
}

func TestAcceptContentTypes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for i, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
		id := fmt.Sprintf("ct-%d", i)
		rec := h.do(newRequest(t, eventJSON(id), func(r *http.Request) { r.Header.Set("Content-Type", ct) }))
		if got := decodeAccepted(t, rec); got.ID != id {
			t.Errorf("Content-Type %q: accepted %+v", ct, got)
		}
	}
	if n := len(h.queue.Tasks()); n != 3 {
		t.Errorf("queue has %d tasks, want 3", n)
	}
}

func TestTraceContextCarried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// Fresh ids: the span recorder is shared by every run (-count) and test.
	traceID, parentID := rand.Text()[:16], rand.Text()[:8]
	traceID, parentID = hex.EncodeToString([]byte(traceID)), hex.EncodeToString([]byte(parentID))
	rec := h.do(newRequest(t, eventJSON("traced"), func(r *http.Request) {
		r.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
		r.Header.Set("tracestate", "vendor=abc")
	}))
	decodeAccepted(t, rec)

	tasks := h.queue.Tasks()
	if len(tasks) != 1 {
		t.Fatalf("queue has %d tasks, want 1", len(tasks))
	}
	parts := strings.Split(tasks[0].Header.Get("traceparent"), "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("task traceparent = %q, want trace %s", tasks[0].Header.Get("traceparent"), traceID)
	}
	if parts[2] == parentID {
		t.Error("task traceparent names the source's span, not ingest's enqueue span")
	}
	if got := tasks[0].Header.Get("tracestate"); got != "vendor=abc" {
		t.Errorf("task tracestate = %q, want vendor=abc", got)
	}
	if rec := h.store.Records(t)["traced"]; rec.TraceID != traceID {
		t.Errorf("record trace id = %q, want %q", rec.TraceID, traceID)
	}

	// The trace: the source's span → ingest's server span → queue.enqueue,
	// the producer span the task carries.
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID().String() == traceID {
			byName[s.Name()] = s
		}
	}
	server, enqueue := byName["POST /events"], byName["queue.enqueue"]
	if server == nil || enqueue == nil || len(byName) != 2 {
		t.Fatalf("spans of the trace = %v, want POST /events and queue.enqueue", slices.Sorted(maps.Keys(byName)))
	}
	if server.SpanKind() != trace.SpanKindServer || server.Parent().SpanID().String() != parentID {
		t.Errorf("server span kind %v parent %v, want a server span under the source's", server.SpanKind(), server.Parent().SpanID())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range server.Attributes() {
		attrs[a.Key] = a.Value
	}
	if attrs["event.id"].AsString() != "traced" || attrs["http.response.status_code"].AsInt64() != 202 {
		t.Errorf("server span attributes = %v", server.Attributes())
	}
	if enqueue.SpanKind() != trace.SpanKindProducer || enqueue.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("enqueue span kind %v parent %v, want a producer span under the server span %v",
			enqueue.SpanKind(), enqueue.Parent().SpanID(), server.SpanContext().SpanID())
	}
	if got := enqueue.SpanContext().SpanID().String(); parts[2] != got {
		t.Errorf("task carries span %s, the enqueue span is %s", parts[2], got)
	}
}

func TestDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	first := decodeAccepted(t, h.do(newRequest(t, eventJSON("dup"), nil)))
	// The same id with other content is still the same event.
	second := decodeAccepted(t, h.do(newRequest(t, `{"id":"dup","name":"other","body":"","timestamp":"2026-01-01T00:00:00Z"}`, nil)))

	if diff := cmp.Diff(ingest.Accepted{ID: "dup", Status: status.Queued}, first); diff != "" {
		t.Errorf("first answer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ingest.Accepted{ID: "dup", Status: status.Queued, Duplicate: true}, second); diff != "" {
		t.Errorf("second answer (-want +got):\n%s", diff)
	}
	if n := len(h.queue.Tasks()); n != 1 {
		t.Errorf("queue has %d tasks, want exactly 1", n)
	}
	if n := h.store.Creates(); n != 1 {
		t.Errorf("status Create called %d times, want 1 (not for the duplicate)", n)
	}
	if !strings.Contains(h.logs.String(), `"duplicate":true`) {
		t.Errorf("duplicate not logged:\n%s", h.logs)
	}
}

func TestQueueFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*ingest.Config, *fakeQueue, *spyStore)
		// minElapsed is a lower bound: a slow queue is waited for only up
		// to EnqueueTimeout (the upper bound is BenchmarkIngest's business).
		minElapsed time.Duration
	}{
		{name: "unavailable", mod: func(_ *ingest.Config, q *fakeQueue, _ *spyStore) {
			q.err = fmt.Errorf("disk full: %w", queue.ErrUnavailable)
		}},
		{name: "other error", mod: func(_ *ingest.Config, q *fakeQueue, _ *spyStore) {
			q.err = errors.New("boom")
		}},
		{name: "slower than the deadline, honouring it", mod: func(c *ingest.Config, q *fakeQueue, _ *spyStore) {
			c.EnqueueTimeout = 30 * time.Millisecond
			q.block, q.honorCtx = make(chan struct{}), true
		}, minElapsed: 30 * time.Millisecond},
		{name: "slower than the deadline, ignoring it", mod: func(c *ingest.Config, q *fakeQueue, _ *spyStore) {
			c.EnqueueTimeout = 30 * time.Millisecond
			q.block = make(chan struct{})
		}, minElapsed: 30 * time.Millisecond},
		{name: "panics", mod: func(_ *ingest.Config, q *fakeQueue, _ *spyStore) {
			q.panics = true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.mod)
			if h.queue.block != nil {
				t.Cleanup(func() { close(h.queue.block) })
			}
			start := time.Now()
			rec := h.do(newRequest(t, eventJSON("q-fail"), nil))
			elapsed := time.Since(start)

			if rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("status = %d, want 503; body %s", rec.Code, rec.Body)
			}
			if p := decodeProblem(t, rec); p.Type != serving.ProblemTypeBase+ingest.SlugQueueUnavailable {
				t.Errorf("problem type = %q", p.Type)
			}
			if ra := rec.Header().Get("Retry-After"); ra != "1" {
				t.Errorf("Retry-After = %q, want 1", ra)
			}
			if elapsed < tc.minElapsed {
				t.Errorf("answered after %v, before the enqueue deadline %v", elapsed, tc.minElapsed)
			}
			if h.queue.Calls() != 1 || len(h.queue.Tasks()) != 0 {
				t.Errorf("queue calls = %d, tasks = %d; want 1 call, no task", h.queue.Calls(), len(h.queue.Tasks()))
			}
			if n := h.store.Creates(); n != 0 {
				t.Errorf("status Create called %d times for an event that was not queued", n)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, `"severity":"ERROR"`) || !strings.Contains(logs, `"event_id":"q-fail"`) {
				t.Errorf("no ERROR log with event_id:\n%s", logs)
			}
		})
	}
}

func TestStatusCreateFailureStillAccepts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(_ *ingest.Config, _ *fakeQueue, st *spyStore) {
		st.err = errors.New("status store down")
	})
	got := decodeAccepted(t, h.do(newRequest(t, eventJSON("st-fail"), nil)))
	if got.ID != "st-fail" || got.Duplicate {
		t.Errorf("202 body = %+v", got)
	}
	if n := len(h.queue.Tasks()); n != 1 {
		t.Errorf("queue has %d tasks, want 1", n)
	}
	if n := h.store.Creates(); n != 1 {
		t.Errorf("status Create called %d times, want 1", n)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"severity":"WARNING"`) || !strings.Contains(logs, "status record not created") ||
		!strings.Contains(logs, `"event_id":"st-fail"`) {
		t.Errorf("no WARNING about the status record with event_id:\n%s", logs)
	}
}

// TestStatusCreateDoesNotDelayAnswer: over real HTTP, the client has the
// whole 202 while the status write is still blocked.
func TestStatusCreateDoesNotDelayAnswer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := newHarness(t, func(_ *ingest.Config, _ *fakeQueue, st *spyStore) {
		st.entered = make(chan struct{}, 1)
		st.block = release
	})
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	req := newRequest(t, eventJSON("fast"), nil)
	out, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+ingest.EventsPath, req.Body)
	if err != nil {
		t.Fatal(err)
	}
	out.Header = req.Header
	type answer struct {
		code   int
		length int64
		body   string
		err    error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := srv.Client().Do(out)
		if err != nil {
			answers <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answers <- answer{code: resp.StatusCode, length: resp.ContentLength, body: string(b), err: err}
	}()
	// A deadlock detector, not a speed check: with the status write held,
	// an unflushed or chunked 202 would never arrive.
	var a answer
	select {
	case a = <-answers:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer while the status write was held")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.code != http.StatusAccepted || !strings.Contains(a.body, `"id":"fast"`) {
		t.Fatalf("answer %d %q, want the 202", a.code, a.body)
	}
	if a.length != int64(len(a.body)) {
		t.Errorf("Content-Length %d, body %d bytes", a.length, len(a.body))
	}
	<-h.store.entered // the write had begun and is still held
	if _, ok := h.store.Records(t)["fast"]; ok {
		t.Fatal("status record written before the block was released")
	}
	close(release)
}

func TestClientHangUpDoesNotCancelEnqueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := h.do(newRequest(t, eventJSON("gone"), nil).WithContext(ctx))
	decodeAccepted(t, rec)
	if n := len(h.queue.Tasks()); n != 1 {
		t.Errorf("queue has %d tasks, want 1", n)
	}
	if _, ok := h.store.Records(t)["gone"]; !ok {
		t.Error("no status record")
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	expired, err := issuer.MintAt(time.Now().Add(-2*time.Hour), devissuer.DefaultAudience, devissuer.DefaultSubject, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherAudience, err := issuer.Mint("someone-else", devissuer.DefaultSubject, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	big := `{"id":"big","name":"n","timestamp":1767225600000,"body":"` + strings.Repeat("x", 1<<20) + `"}`
	justOver := `{"id":"over","name":"n","timestamp":1767225600000,"body":"` + strings.Repeat("x", event.MaxEventBytes) + `"}`

	cases := []struct {
		name       string
		method     string // default POST
		path       string // default /events
		body       string
		mod        func(*http.Request)
		wantStatus int
		wantSlug   string
		wantErrors []string // fields named in "errors"
		wantHeader map[string]string
	}{
		{name: "malformed JSON", body: `{"id":"a",`, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "empty body", body: ``, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "not an object", body: `["a"]`, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "trailing garbage", body: eventJSON("t") + `x`, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "two objects", body: eventJSON("t") + eventJSON("u"), wantStatus: 400, wantSlug: "malformed-json"},
		{name: "duplicate key", body: `{"id":"a","id":"b","name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "invalid UTF-8", body: "{\"id\":\"\xff\",\"name\":\"n\",\"body\":\"b\",\"timestamp\":1767225600000}", wantStatus: 400, wantSlug: "malformed-json"},
		{name: "missing id", body: `{"name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: "invalid-event", wantErrors: []string{"id"}},
		{name: "wrong types", body: `{"id":5,"name":true,"body":null,"timestamp":"yesterday"}`, wantStatus: 400, wantSlug: "invalid-event", wantErrors: []string{"id", "name", "body", "timestamp"}},
		{name: "empty object", body: `{}`, wantStatus: 400, wantSlug: "invalid-event", wantErrors: []string{"id", "name", "body", "timestamp"}},
		{name: "1 MiB body", body: big, wantStatus: 413, wantSlug: "payload-too-large"},
		{name: "1 MiB body without Content-Length", body: big, mod: func(r *http.Request) { r.ContentLength = -1 }, wantStatus: 413, wantSlug: "payload-too-large"},
		{name: "just over the limit", body: justOver, mod: func(r *http.Request) { r.ContentLength = -1 }, wantStatus: 413, wantSlug: "payload-too-large"},
		{name: "no token", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Del("Authorization") }, wantStatus: 401, wantSlug: "unauthenticated", wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="eventrelay"`}},
		{name: "basic auth", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Authorization", "Basic dTpw") }, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "expired token", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+expired) }, wantStatus: 401, wantSlug: "invalid-token", wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="eventrelay", error="invalid_token"`}},
		{name: "token for another audience", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+otherAudience) }, wantStatus: 401, wantSlug: "invalid-token"},
		{name: "garbage token", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc.def.ghi") }, wantStatus: 401, wantSlug: "invalid-token"},
		{name: "wrong content type", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "no content type", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Del("Content-Type") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "form content type", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "non-UTF-8 charset", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=latin1") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "gzip body", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, wantStatus: 415, wantSlug: "unsupported-content-encoding", wantHeader: map[string]string{"Accept-Encoding": "identity"}},
		{name: "identity encoding is fine but the body is not", body: `{`, mod: func(r *http.Request) { r.Header.Set("Content-Encoding", "identity") }, wantStatus: 400, wantSlug: "malformed-json"},
		{name: "bad media type syntax", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "GET", method: http.MethodGet, wantStatus: 405, wantSlug: "method-not-allowed", wantHeader: map[string]string{"Allow": "POST"}},
		{name: "PUT", method: http.MethodPut, body: eventJSON("a"), wantStatus: 405, wantSlug: "method-not-allowed", wantHeader: map[string]string{"Allow": "POST"}},
		{name: "unknown path", path: "/event", body: eventJSON("a"), wantStatus: 404, wantSlug: "not-found"},
		{name: "subpath", path: "/events/a", body: eventJSON("a"), wantStatus: 404, wantSlug: "not-found"},
		// The order of the checks.
		{name: "wrong method before no token", method: http.MethodGet, mod: func(r *http.Request) { r.Header.Del("Authorization") }, wantStatus: 405, wantSlug: "method-not-allowed"},
		{name: "wrong content type before no token", body: eventJSON("a"), mod: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain"); r.Header.Del("Authorization") }, wantStatus: 415, wantSlug: "unsupported-media-type"},
		{name: "no token before too large", body: big, mod: func(r *http.Request) { r.Header.Del("Authorization") }, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "too large before malformed", body: `{` + strings.Repeat(" ", event.MaxEventBytes), wantStatus: 413, wantSlug: "payload-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			req := newRequest(t, tc.body, tc.mod)
			if tc.method != "" {
				req.Method = tc.method
			}
			if tc.path != "" {
				req.URL.Path = tc.path
			}
			rec := h.do(req)

			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			p := decodeProblem(t, rec)
			if p.Type != serving.ProblemTypeBase+tc.wantSlug {
				t.Errorf("problem type = %q, want slug %q", p.Type, tc.wantSlug)
			}
			for k, v := range tc.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.wantErrors != nil {
				var body struct {
					Errors []event.FieldProblem `json:"errors"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatal(err)
				}
				var fields []string
				for _, fp := range body.Errors {
					fields = append(fields, fp.Field)
					if fp.Reason == "" {
						t.Errorf("field %s has no reason", fp.Field)
					}
				}
				if diff := cmp.Diff(tc.wantErrors, fields); diff != "" {
					t.Errorf("fields in errors (-want +got):\n%s", diff)
				}
			}
			if rec.Body.Len() > 4096 {
				t.Errorf("problem body is %d bytes; it must not echo the input", rec.Body.Len())
			}
			if n := h.queue.Calls(); n != 0 {
				t.Errorf("queue called %d times for bad input", n)
			}
			if n := h.store.Creates(); n != 0 {
				t.Errorf("status Create called %d times for bad input", n)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	rec := h.do(httptest.NewRequest(http.MethodGet, ingest.HealthPath, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Errorf("GET /health = %d %s", rec.Code, rec.Body)
	}
	rec = h.do(httptest.NewRequest(http.MethodPost, ingest.HealthPath, nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /health = %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	decodeProblem(t, rec)
}

func TestNewServerRefusesBadWiring(t *testing.T) {
	t.Parallel()
	good := testConfig()
	cases := []struct {
		name    string
		cfg     func() ingest.Config
		nilDeps bool
		wantErr []string
	}{
		{name: "nil dependencies", cfg: testConfig, nilDeps: true, wantErr: []string{"queue is required", "status store is required", "verifier is required"}},
		{name: "zero deadlines", cfg: func() ingest.Config { c := good; c.EnqueueTimeout, c.StatusTimeout = 0, 0; return c }, wantErr: []string{"ENQUEUE_TIMEOUT", "STATUS_TIMEOUT"}},
		{name: "enqueue deadline past the source's", cfg: func() ingest.Config { c := good; c.EnqueueTimeout = 500 * time.Millisecond; return c }, wantErr: []string{"ENQUEUE_TIMEOUT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				srv *ingest.Server
				err error
			)
			if tc.nilDeps {
				srv, err = ingest.NewServer(t.Context(), tc.cfg(), nil, nil, nil)
			} else {
				h := newHarness(t, nil)
				srv, err = ingest.NewServer(t.Context(), tc.cfg(), h.queue, h.store, stubVerifier{})
			}
			if err == nil || srv != nil {
				t.Fatalf("NewServer = %v, %v; want an error", srv, err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}

	t.Run("only the deadlines are needed", func(t *testing.T) {
		t.Parallel()
		cfg := ingest.Config{EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond}
		if _, err := ingest.NewServer(t.Context(), cfg, &fakeQueue{}, newSpyStore(t), stubVerifier{}); err != nil {
			t.Errorf("NewServer: %v", err)
		}
	})
}
