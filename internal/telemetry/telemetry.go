// Package telemetry sets up OpenTelemetry for a process: the global tracer
// provider with parent-based ratio sampling, the W3C trace-context
// propagator every hop uses to carry one trace per event from the source's
// request through ingest, the queue, the dispatcher and the target, and —
// when OTEL_EXPORTER_OTLP_ENDPOINT is set — OTLP export of spans and metrics
// (to the OpenTelemetry Collector sidecar in GCP, ADR 0009).
//
// It also names every metric eventrelay exports (metrics.go): Terraform's
// dashboard and alerts are built on those names.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// ProtocolGRPC is the only OTLP protocol built in (OTEL_EXPORTER_OTLP_PROTOCOL).
const ProtocolGRPC = "grpc"

// Config configures tracing and metrics export for one process.
type Config struct {
	// ServiceName names the process in traces and metrics (ingest,
	// dispatcher, ...).
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// SampleRatio is the fraction of new traces sampled; incoming sampled
	// parents are always honoured (parent-based).
	SampleRatio float64 `env:"TRACE_SAMPLE_RATIO, default=1"`
	// OTLPEndpoint, when set, is where spans and metrics are exported with
	// OTLP over gRPC, e.g. http://localhost:4317 (the collector sidecar; an
	// http URL means no TLS). Empty exports nothing. The exporters also read
	// the other standard OTEL_EXPORTER_OTLP_* variables (headers, timeout)
	// and OTEL_METRIC_EXPORT_INTERVAL (milliseconds, default 60000).
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// OTLPProtocol must be grpc, the only protocol built in.
	OTLPProtocol string `env:"OTEL_EXPORTER_OTLP_PROTOCOL, default=grpc"`
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("trace sample ratio must be within [0, 1], got %v", c.SampleRatio))
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL such as http://localhost:4317, got %q", c.OTLPEndpoint))
		}
	}
	if c.OTLPProtocol != "" && c.OTLPProtocol != ProtocolGRPC {
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL must be %q (the only protocol built in), got %q", ProtocolGRPC, c.OTLPProtocol))
	}
	return errors.Join(errs...)
}

// Setup installs the global tracer provider and propagator and, when
// c.OTLPEndpoint is set, exports spans (batched) and metrics (periodically)
// there through a global meter provider. Without an endpoint nothing is
// exported and the global meter provider stays a no-op, so the metric
// instruments cost next to nothing. The returned function flushes and stops
// everything. More span processors or exporters can be added by options, so
// a test or relayctl dev can keep spans in memory.
func Setup(ctx context.Context, c Config, opts ...sdktrace.TracerProviderOption) (func(context.Context) error, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	res, err := Resource(c.ServiceName)
	if err != nil {
		return nil, err
	}
	all := append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	}, opts...)

	var mp *sdkmetric.MeterProvider
	if c.OTLPEndpoint != "" {
		spans, metrics, err := otlpExporters(ctx, c.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		all = append(all, sdktrace.WithBatcher(spans))
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)), noExemplars)
		otel.SetMeterProvider(mp)
	}
	tp := sdktrace.NewTracerProvider(all...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	return func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		if mp != nil {
			err = errors.Join(err, mp.Shutdown(ctx))
		}
		return err
	}, nil
}

// otlpExporters are the OTLP span and metric exporters for endpoint.
// Neither dials here: a collector that starts after the service costs a
// failed export, not the start.
func otlpExporters(ctx context.Context, endpoint string) (sdktrace.SpanExporter, sdkmetric.Exporter, error) {
	spans, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("otlp span exporter for %s: %w", endpoint, err)
	}
	metrics, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("otlp metric exporter for %s: %w", endpoint, err), spans.Shutdown(ctx))
	}
	return spans, metrics, nil
}

// Resource describes the process: the SDK's defaults plus service.name.
func Resource(serviceName string) (*resource.Resource, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

// Propagator is the propagator every hop uses: W3C trace context + baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
