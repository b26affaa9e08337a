// Package telemetry sets up OpenTelemetry for a process: the global tracer
// provider with parent-based ratio sampling and the W3C trace-context
// propagator every hop uses to carry one trace per event from the source's
// request through ingest, the queue, the dispatcher and the target.
package telemetry

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Config configures tracing for one process.
type Config struct {
	// ServiceName names the process in traces (ingest, dispatcher, ...).
	ServiceName string `env:"OTEL_SERVICE_NAME"`
	// SampleRatio is the fraction of new traces sampled; incoming sampled
	// parents are always honoured (parent-based).
	SampleRatio float64 `env:"TRACE_SAMPLE_RATIO, default=1"`
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("trace sample ratio must be within [0, 1], got %v", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Setup installs the global tracer provider and propagator and returns a
// function that flushes and stops them. Exporters are added by options so a
// test or relayctl dev can keep spans in memory.
func Setup(ctx context.Context, c Config, opts ...sdktrace.TracerProviderOption) (func(context.Context) error, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(c.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	all := append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	}, opts...)
	tp := sdktrace.NewTracerProvider(all...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	return tp.Shutdown, nil
}

// Propagator is the propagator every hop uses: W3C trace context + baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
