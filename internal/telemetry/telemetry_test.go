package telemetry_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"

	"eventrelay/internal/telemetry"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    telemetry.Config
		wantErr string
	}{
		{name: "defaults", env: nil, want: telemetry.Config{SampleRatio: 1, OTLPProtocol: "grpc"}},
		{
			name: "collector sidecar",
			env: map[string]string{"OTEL_SERVICE_NAME": "ingest", "TRACE_SAMPLE_RATIO": "0.1",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4317"},
			want: telemetry.Config{ServiceName: "ingest", SampleRatio: 0.1, OTLPEndpoint: "http://localhost:4317", OTLPProtocol: "grpc"},
		},
		{name: "ratio above 1", env: map[string]string{"TRACE_SAMPLE_RATIO": "1.5"}, wantErr: "sample ratio"},
		{name: "endpoint without scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "http protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got telemetry.Config
			if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &got, Lookuper: envconfig.MapLookuper(c.env)}); err != nil {
				t.Fatal(err)
			}
			err := got.Validate()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Validate() = %v, want an error about %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// collector is a fake OTLP/gRPC receiver that remembers span and metric
// names and the service.name of what it received.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	colmetricpb.UnimplementedMetricsServiceServer
	mu       sync.Mutex
	spans    []string
	metrics  []string
	services []string
}

func (c *collector) Export(_ context.Context, r *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range r.GetResourceSpans() {
		c.services = append(c.services, serviceName(rs.GetResource().GetAttributes()))
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// metricsService adapts the collector to the metrics service, whose Export
// has another signature.
type metricsService struct{ *collector }

func (m metricsService) Export(_ context.Context, r *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rm := range r.GetResourceMetrics() {
		m.services = append(m.services, serviceName(rm.GetResource().GetAttributes()))
		for _, sm := range rm.GetScopeMetrics() {
			for _, x := range sm.GetMetrics() {
				m.metrics = append(m.metrics, x.GetName())
			}
		}
	}
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func serviceName(attrs []*commonpb.KeyValue) string {
	for _, a := range attrs {
		if a.GetKey() == "service.name" {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestSetupExportsOTLP points Setup at a fake collector and checks a span
// and a metric reach it, named, with the service's name, by shutdown.
func TestSetupExportsOTLP(t *testing.T) {
	// Not parallel: Setup installs the global providers (restored below).
	prevTP, prevMP, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
	})

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	colmetricpb.RegisterMetricsServiceServer(srv, metricsService{col})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	ctx := context.Background()
	shutdown, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "otlp-test", SampleRatio: 1, OTLPEndpoint: "http://" + lis.Addr().String(),
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, span := otel.Tracer("test").Start(ctx, "queue.enqueue")
	span.End()
	counter, err := otel.Meter("test").Int64Counter(telemetry.MetricIngestRequests)
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if !slices.Contains(col.spans, "queue.enqueue") {
		t.Errorf("collector got spans %v, want queue.enqueue", col.spans)
	}
	if !slices.Contains(col.metrics, telemetry.MetricIngestRequests) {
		t.Errorf("collector got metrics %v, want %s", col.metrics, telemetry.MetricIngestRequests)
	}
	for _, s := range col.services {
		if s != "otlp-test" {
			t.Errorf("exported with service.name %q, want otlp-test", s)
		}
	}
}

func TestNewPrometheus(t *testing.T) {
	t.Parallel()
	mp, handler, err := telemetry.NewPrometheus("prom-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	counter, err := mp.Meter("test").Int64Counter(telemetry.MetricDispatchAttempts)
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3, metric.WithAttributes(attribute.String(telemetry.AttrOutcome, "delivered")))
	hist, err := mp.Meter("test").Float64Histogram(telemetry.MetricDeliveryLag, metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	hist.Record(context.Background(), 1.5)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`eventrelay_dispatch_attempts_total{`,
		`outcome="delivered"} 3`,
		`eventrelay_delivery_lag_seconds_count{`,
		`eventrelay_delivery_lag_seconds_sum{`,
		`service_name="prom-test"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// A second provider has its own registry: no duplicate registration,
	// no numbers of the first.
	mp2, handler2, err := telemetry.NewPrometheus("prom-test-2")
	if err != nil {
		t.Fatalf("second NewPrometheus: %v", err)
	}
	t.Cleanup(func() { _ = mp2.Shutdown(context.Background()) })
	rec = httptest.NewRecorder()
	handler2.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if strings.Contains(rec.Body.String(), "eventrelay_dispatch_attempts_total") {
		t.Errorf("second registry serves the first one's metrics:\n%s", rec.Body)
	}
}
