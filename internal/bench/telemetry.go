package bench

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"eventrelay/internal/telemetry"
)

// instruments are the providers one scenario's stack runs with.
type instruments struct {
	tracer   trace.TracerProvider
	meter    metric.MeterProvider
	shutdown func(context.Context) error
}

// newInstruments returns no-op providers (ratio 0), or what a deployed
// service runs: ratio of the traces sampled (parent-based), spans batched to
// an exporter (one that drops them here, so that the network is not
// measured), and every metric aggregated by the SDK.
func newInstruments(ratio float64) (instruments, error) {
	if ratio <= 0 {
		return instruments{
			tracer:   tracenoop.NewTracerProvider(),
			meter:    metricnoop.NewMeterProvider(),
			shutdown: func(context.Context) error { return nil },
		}, nil
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(discard{}))
	mp, _, err := telemetry.NewPrometheus("bench")
	if err != nil {
		return instruments{}, errors.Join(err, tp.Shutdown(context.Background()))
	}
	return instruments{tracer: tp, meter: mp, shutdown: func(ctx context.Context) error {
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}}, nil
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
