package devstack_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"eventrelay/internal/devstack"
	"eventrelay/internal/relayctl"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/testutil"
)

// post sends one POST /events with body, a valid token unless token is
// given, and the extra headers; it returns the status code.
func post(t *testing.T, stack *devstack.Stack, body string, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, stack.IngestURL+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := stack.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := devstack.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("POST /events: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func eventBody(id string) string {
	return fmt.Sprintf(`{"id":%q,"name":"test event","body":"test body","timestamp":"2026-11-27T12:00:00Z"}`, id)
}

// TestOneTracePerEvent sends an event with a known traceparent into a
// target that fails its first calls, and checks the whole delivery is one
// trace: the source's span → ingest's server span → queue.enqueue → one
// dispatcher.deliver per attempt → target.receiveEvent → targetmock's
// receiveEvent, each under the right parent; the status record and
// `relayctl status` show every attempt under that trace.
func TestOneTracePerEvent(t *testing.T) {
	spans := telemetry.NewRecorder(100)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	dir := t.TempDir()
	stack := startStack(t, devstack.Options{DataDir: dir, TargetRate: 100, TracerProvider: tp})

	const (
		id       = "traced-1"
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		sourceID = "00f067aa0ba902b7"
	)
	if err := stack.Target.SetErrorRatio(1); err != nil {
		t.Fatal(err)
	}
	if code := post(t, stack, eventBody(id), map[string]string{"traceparent": "00-" + traceID + "-" + sourceID + "-01"}); code != http.StatusAccepted {
		t.Fatalf("POST /events = %d, want 202", code)
	}
	testutil.WaitFor(t, 10*time.Second, "two failed calls at the target", func() bool {
		calls, err := stack.Target.Calls(t.Context(), targetmock.CallFilter{EventID: id})
		return err == nil && len(calls) >= 2
	})
	if err := stack.Target.SetErrorRatio(0); err != nil {
		t.Fatal(err)
	}
	var rec status.Record
	testutil.WaitFor(t, 10*time.Second, "the event delivered", func() bool {
		var err error
		rec, err = stack.Status.Get(t.Context(), id)
		return err == nil && rec.Status == status.Delivered
	})
	attempts := len(rec.Attempts)
	if attempts < 3 {
		t.Fatalf("record has %d attempts, want at least 3 (2 faults, then delivered): %+v", attempts, rec.Attempts)
	}
	if rec.TraceID != traceID {
		t.Errorf("record trace id = %q, want the source's %s", rec.TraceID, traceID)
	}
	for _, a := range rec.Attempts {
		if a.TraceID != traceID {
			t.Errorf("attempt %d trace id = %q, want %s", a.Number, a.TraceID, traceID)
		}
	}

	// The same trace id reached the target on every call.
	calls, err := stack.Target.Calls(t.Context(), targetmock.CallFilter{EventID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != attempts {
		t.Errorf("target saw %d calls, the record %d attempts", len(calls), attempts)
	}
	for _, c := range calls {
		if parts := strings.Split(c.Traceparent, "-"); len(parts) != 4 || parts[1] != traceID {
			t.Errorf("target call (%s) traceparent = %q, want trace %s", c.Outcome, c.Traceparent, traceID)
		}
	}

	// Every span of the path, with its parent. Spans end just after the
	// answers that moved the record, so wait for the last ones.
	byName := func() map[string][]telemetry.RecordedSpan {
		out := map[string][]telemetry.RecordedSpan{}
		for _, s := range spans.Spans(traceID) {
			out[s.Name] = append(out[s.Name], s)
		}
		return out
	}
	var got map[string][]telemetry.RecordedSpan
	testutil.WaitFor(t, 5*time.Second, "the spans of every attempt", func() bool {
		got = byName()
		return len(got["dispatcher.deliver"]) == attempts && len(got["receiveEvent"]) == attempts
	})
	one := func(name string) telemetry.RecordedSpan {
		t.Helper()
		if len(got[name]) != 1 {
			t.Fatalf("%d %s spans, want 1", len(got[name]), name)
		}
		return got[name][0]
	}
	server, enqueue := one("POST /events"), one("queue.enqueue")
	if server.ParentID != sourceID || server.Scope != "ingest" {
		t.Errorf("ingest span: parent %s scope %s, want the source's %s, ingest", server.ParentID, server.Scope, sourceID)
	}
	if enqueue.ParentID != server.SpanID {
		t.Errorf("queue.enqueue parent = %s, want ingest's server span %s", enqueue.ParentID, server.SpanID)
	}
	children := func(name, parent string) []telemetry.RecordedSpan {
		var out []telemetry.RecordedSpan
		for _, s := range got[name] {
			if s.ParentID == parent {
				out = append(out, s)
			}
		}
		return out
	}
	var retries []string
	for _, d := range got["dispatcher.deliver"] {
		if d.ParentID != enqueue.SpanID {
			t.Errorf("dispatcher.deliver %s parent = %s, want queue.enqueue %s", d.SpanID, d.ParentID, enqueue.SpanID)
		}
		retries = append(retries, d.Attributes["eventrelay.task.retry_count"]+":"+d.Attributes["eventrelay.outcome"])
		call := children("target.receiveEvent", d.SpanID)
		if len(call) != 1 {
			t.Errorf("attempt %s has %d target.receiveEvent spans, want 1", d.SpanID, len(call))
			continue
		}
		if handled := children("receiveEvent", call[0].SpanID); len(handled) != 1 || handled[0].Scope != "targetmock" {
			t.Errorf("target call %s has %d targetmock receiveEvent spans under it, want 1", call[0].SpanID, len(handled))
		}
	}
	want := make([]string, attempts)
	for i := range want {
		want[i] = strconv.Itoa(i) + ":" + string(status.OutcomeRetryable)
	}
	want[attempts-1] = strconv.Itoa(attempts-1) + ":" + string(status.OutcomeDelivered)
	if diff := cmp.Diff(want, retries); diff != "" {
		t.Errorf("attempt spans, retry_count:outcome in start order (-want +got):\n%s", diff)
	}

	// relayctl status shows the trace and every attempt.
	var out, errOut bytes.Buffer
	if code := relayctl.Main(t.Context(), []string{"status", "--data", dir, id}, &out, &errOut); code != 0 {
		t.Fatalf("relayctl status exited %d: %s", code, errOut.String())
	}
	text := out.String()
	if !strings.Contains(text, "trace     "+traceID) {
		t.Errorf("relayctl status does not show the trace %s:\n%s", traceID, text)
	}
	for i := 1; i <= attempts; i++ {
		if !strings.Contains(text, fmt.Sprintf("attempt %d", i)) {
			t.Errorf("relayctl status does not show attempt %d:\n%s", i, text)
		}
	}
	if !strings.Contains(text, "status    delivered") || !strings.Contains(text, string(status.OutcomeRetryable)) {
		t.Errorf("relayctl status does not show the retries and the delivery:\n%s", text)
	}
}

// TestMetricsMatchLoad sends a known load and checks /metrics counts it:
// 10 accepted, 2 duplicates, 3 rejected, 1 unauthenticated, then 10
// deliveries and an empty backlog.
func TestMetricsMatchLoad(t *testing.T) {
	mp, handler, err := telemetry.NewPrometheus("devstack-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	metrics := httptest.NewServer(handler)
	t.Cleanup(metrics.Close)
	// A burst of 10 at the target never reaches its limit.
	stack := startStack(t, devstack.Options{TargetRate: 100, TargetBurst: 20, MeterProvider: mp})

	for i := range 10 {
		if code := post(t, stack, eventBody(fmt.Sprintf("m-%d", i)), nil); code != http.StatusAccepted {
			t.Fatalf("event m-%d: %d, want 202", i, code)
		}
	}
	for _, id := range []string{"m-0", "m-1"} {
		if code := post(t, stack, eventBody(id), nil); code != http.StatusAccepted {
			t.Fatalf("duplicate %s: %d, want 202", id, code)
		}
	}
	for _, c := range []struct {
		body   string
		header map[string]string
		want   int
	}{
		{`{"id":`, nil, http.StatusBadRequest},
		{`{"id":"no-fields"}`, nil, http.StatusBadRequest},
		{eventBody("as-text"), map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{eventBody("no-token"), map[string]string{"Authorization": "Bearer not-a-token"}, http.StatusUnauthorized},
	} {
		if code := post(t, stack, c.body, c.header); code != c.want {
			t.Fatalf("POST %s with %v: %d, want %d", c.body, c.header, code, c.want)
		}
	}
	testutil.WaitFor(t, 15*time.Second, "10 delivered", func() bool {
		c, err := stack.Status.Counts(t.Context())
		return err == nil && c[status.Delivered] == 10
	})

	var got map[string]float64
	testutil.WaitFor(t, 5*time.Second, "the backlog gauge at 0 and every attempt counted", func() bool {
		got = scrape(t, metrics.URL)
		return got["eventrelay_queue_backlog"] == 0 && got[`eventrelay_dispatch_attempts_total{outcome="delivered"}`] == 10
	})
	want := map[string]float64{
		`eventrelay_ingest_requests_total{outcome="accepted"}`:        10,
		`eventrelay_ingest_requests_total{outcome="duplicate"}`:       2,
		`eventrelay_ingest_requests_total{outcome="rejected"}`:        3,
		`eventrelay_ingest_requests_total{outcome="unauthenticated"}`: 1,
		`eventrelay_ingest_duplicates_total`:                          2,
		`eventrelay_ingest_duration_seconds_count`:                    16,
		`eventrelay_queue_enqueue_duration_seconds_count`:             12,
		`eventrelay_dispatch_attempts_total{outcome="delivered"}`:     10,
		`eventrelay_target_duration_seconds_count`:                    10,
		`eventrelay_delivery_lag_seconds_count`:                       10,
		`eventrelay_queue_backlog`:                                    0,
	}
	pick := map[string]float64{}
	for k := range want {
		pick[k] = got[k]
	}
	if diff := cmp.Diff(want, pick); diff != "" {
		t.Errorf("/metrics (-want +got):\n%s", diff)
	}
	if _, ok := got["eventrelay_queue_oldest_age_seconds"]; !ok {
		t.Error("/metrics has no eventrelay_queue_oldest_age_seconds")
	}
	if lag := got["eventrelay_delivery_lag_seconds_sum"]; !(lag > 0) {
		t.Errorf("delivery lag sum = %v, want > 0", lag)
	}
}

// scrape reads a Prometheus text page into "name{outcome=...}" → value,
// summing series that differ only in other labels (otel_scope_*).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		series, value := line[:sp], line[sp+1:]
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		name, labels, _ := strings.Cut(series, "{")
		key := name
		for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if strings.HasPrefix(l, "outcome=") {
				key += "{" + l + "}"
			}
		}
		out[key] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
