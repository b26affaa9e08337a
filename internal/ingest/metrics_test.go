package ingest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/telemetry"
)

// TestMetrics sends a known mix of requests and checks every ingest
// instrument counts exactly it.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	cfg, q, st := testConfig(), &fakeQueue{}, newSpyStore(t)
	ctx := logging.WithLogger(context.Background(), logging.New(&syncBuffer{}, logging.Options{}))
	srv, err := ingest.NewServer(ctx, cfg, q, st, stubVerifier{}, telemetry.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Routes(ctx)
	do := func(r *http.Request) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}

	for _, id := range []string{"m-1", "m-2", "m-3", "m-1", "m-2"} { // 3 accepted, 2 duplicates
		if code := do(newRequest(t, eventJSON(id), nil)); code != http.StatusAccepted {
			t.Fatalf("event %s: status %d, want 202", id, code)
		}
	}
	if code := do(newRequest(t, `{"id":`, nil)); code != http.StatusBadRequest {
		t.Fatalf("malformed: status %d, want 400", code)
	}
	if code := do(newRequest(t, eventJSON("m-4"), func(r *http.Request) { r.Method = http.MethodPut })); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: status %d, want 405", code)
	}
	if code := do(newRequest(t, eventJSON("m-5"), func(r *http.Request) { r.Header.Del("Authorization") })); code != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", code)
	}
	q.mu.Lock()
	q.err = queue.ErrUnavailable
	q.mu.Unlock()
	if code := do(newRequest(t, eventJSON("m-6"), nil)); code != http.StatusServiceUnavailable {
		t.Fatalf("queue down: status %d, want 503", code)
	}

	got := collect(t, reader)
	want := map[string]int64{
		telemetry.MetricIngestRequests + "{outcome=accepted}":        3,
		telemetry.MetricIngestRequests + "{outcome=duplicate}":       2,
		telemetry.MetricIngestRequests + "{outcome=rejected}":        2,
		telemetry.MetricIngestRequests + "{outcome=unauthenticated}": 1,
		telemetry.MetricIngestRequests + "{outcome=unavailable}":     1,
		telemetry.MetricIngestDuplicates:                             2,
		telemetry.MetricIngestDuration + " count":                    9,
		telemetry.MetricEnqueueDuration + " count":                   6, // 3 + 2 duplicates + 1 failed
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// collect reads the manual reader into "name{k=v}" → value for int64 sums
// and "name count" → observations for histograms.
func collect(tb testing.TB, r sdkmetric.Reader) map[string]int64 {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		tb.Fatalf("collect: %v", err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					key := m.Name
					if v, ok := dp.Attributes.Value(telemetry.AttrOutcome); ok {
						key += "{outcome=" + v.AsString() + "}"
					}
					out[key] = dp.Value
				}
			case metricdata.Histogram[float64]:
				var n uint64
				for _, dp := range d.DataPoints {
					n += dp.Count
				}
				out[m.Name+" count"] = int64(n)
			default:
				tb.Errorf("metric %s has unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// BenchmarkTelemetry measures what tracing and metrics add to one accepted
// request: the handler with no-op providers, then with every trace sampled
// (spans batched to an exporter that drops them) and the metrics SDK
// without exemplars, as package telemetry configures it.
func BenchmarkTelemetry(b *testing.B) {
	ctx := logging.WithLogger(context.Background(), logging.New(io.Discard, logging.Options{}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(dropSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)) // as telemetry's providers
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	cases := []struct {
		name string
		opts []telemetry.Option
	}{
		{name: "off", opts: []telemetry.Option{telemetry.WithTracerProvider(tracenoop.NewTracerProvider()), telemetry.WithMeterProvider(metricnoop.NewMeterProvider())}},
		{name: "on", opts: []telemetry.Option{telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(mp)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			srv, err := ingest.NewServer(ctx, ingest.Config{EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond},
				noopQueue{}, &noopStore{}, stubVerifier{}, c.opts...)
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Routes(ctx)
			body := eventJSON("bench-event-0001")
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, ingest.EventsPath, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Authorization", "Bearer x")
				r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusAccepted {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// dropSpans is a span exporter that drops what it is given.
type dropSpans struct{}

func (dropSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropSpans) Shutdown(context.Context) error                             { return nil }
