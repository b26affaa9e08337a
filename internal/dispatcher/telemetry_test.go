package dispatcher

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// TestTargetCallSpan checks the call to the target is a client span under
// the attempt's span, and that the target receives that span as parent.
func TestTargetCallSpan(t *testing.T) {
	t.Parallel()
	h := newHarness(t, respond(200, nil, receiptBody("ev-tspan", false)))
	if got := h.deliver(t, task{body: eventJSON("ev-tspan")}); got.code != http.StatusOK {
		t.Fatalf("answer = %d, want 200", got.code)
	}
	calls := h.target.seen()
	if len(calls) != 1 {
		t.Fatalf("target saw %d calls, want 1", len(calls))
	}
	parts := strings.Split(calls[0].Traceparent, "-")
	if len(parts) != 4 || parts[1] != testTraceID {
		t.Fatalf("target traceparent = %q, want trace %s", calls[0].Traceparent, testTraceID)
	}

	var deliver, call sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanContext().SpanID().String() == parts[2] {
			call = s
		}
	}
	if call == nil {
		t.Fatalf("no recorded span is the target's parent %s", parts[2])
	}
	for _, s := range spans.Ended() {
		if s.SpanContext().SpanID() == call.Parent().SpanID() {
			deliver = s
		}
	}
	if call.Name() != "target.receiveEvent" || call.SpanKind() != trace.SpanKindClient {
		t.Errorf("target call span = %q kind %v, want target.receiveEvent, client", call.Name(), call.SpanKind())
	}
	if deliver == nil || deliver.Name() != "dispatcher.deliver" {
		t.Fatalf("target call span's parent is not the attempt's dispatcher.deliver span")
	}
	attrs := map[string]string{}
	for _, kv := range call.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	want := map[string]string{"http.request.method": "POST", "http.response.status_code": "200", attrOutcome: "delivered"}
	if diff := cmp.Diff(want, attrs); diff != "" {
		t.Errorf("target call span attributes (-want +got):\n%s", diff)
	}
}

// TestMetrics runs one delivery of every outcome and checks the attempt
// counter, the target call histogram and the delivery lag.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	// The target answers call n with replies[n].
	replies := []struct {
		code int
		body string
	}{
		{200, receiptBody("m-ok", false)}, // delivered
		{429, `{}`},                       // rate_limited
		{500, `{}`},                       // retryable
		{400, `{}`},                       // permanent
		{500, `{}`},                       // dead_lettered: the last attempt
	}
	h := newHarness(t, func(n int, w http.ResponseWriter, r *http.Request) {
		respond(replies[n].code, nil, replies[n].body)(n, w, r)
	}, func(_ *Config, _ *Options, s *Server) {
		if s != nil {
			var err error
			if s.metrics, err = newMetrics(mp); err != nil {
				t.Fatal(err)
			}
		}
	})
	// Ingest received m-ok two seconds ago.
	received := time.Now().Add(-2 * time.Second)
	if _, err := h.store.Create(context.Background(), status.Record{EventID: "m-ok", Status: status.Queued, ReceivedAt: received}); err != nil {
		t.Fatal(err)
	}

	for _, tk := range []task{
		{body: eventJSON("m-ok")},
		{body: eventJSON("m-429")},
		{body: eventJSON("m-500")},
		{body: eventJSON("m-400")},
		{body: eventJSON("m-last"), retryCount: testMaxTries - 1},
		{body: eventJSON("m-ok")}, // skipped: delivered already
		{body: `{"id":"m-bad"}`},  // malformed: permanent
	} {
		h.deliver(t, tk)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	attempts := map[string]int64{}
	histograms := map[string]metricdata.HistogramDataPoint[float64]{}
	declared := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == telemetry.DispatchAttempts.Name {
				declared = true
				// Terraform declares this metric's descriptor for the alerts.
				if err := telemetry.DispatchAttempts.Check(m); err != nil {
					t.Error(err)
				}
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					v, _ := dp.Attributes.Value(telemetry.AttrOutcome)
					attempts[m.Name+"{"+v.AsString()+"}"] = dp.Value
				}
			case metricdata.Histogram[float64]:
				histograms[m.Name] = d.DataPoints[0]
			}
		}
	}
	if !declared {
		t.Errorf("no %s collected", telemetry.DispatchAttempts.Name)
	}
	a := telemetry.MetricDispatchAttempts
	want := map[string]int64{
		a + "{delivered}": 1, a + "{rate_limited}": 1, a + "{retryable}": 1,
		a + "{permanent}": 2, a + "{dead_lettered}": 1, a + "{skipped}": 1,
	}
	if diff := cmp.Diff(want, attempts); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	if got := histograms[telemetry.MetricTargetDuration].Count; got != 5 {
		t.Errorf("target calls observed = %d, want 5", got)
	}
	lag := histograms[telemetry.MetricDeliveryLag]
	if lag.Count != 1 || lag.Sum < 2 {
		t.Errorf("delivery lag: %d observations summing %.3fs, want 1 of at least 2s", lag.Count, lag.Sum)
	}
}
