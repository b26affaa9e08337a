package telemetry

import (
	"context"
	"errors"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Pipeline is the telemetry of one process that runs several services
// (relayctl dev), from the Config the services read. Each service gets a
// tracer provider of its own, so that its spans carry its service.name as
// they do in production; they share the span processors given (the ops
// page's Recorder) and, when c.OTLPEndpoint is set, one OTLP span exporter.
// MetricReader is then an OTLP metric reader for the process's meter
// provider.
type Pipeline struct {
	c      Config
	procs  []sdktrace.SpanProcessor // shared: shut down once, by Shutdown
	reader sdkmetric.Reader         // nil without an endpoint

	mu  sync.Mutex
	tps map[string]*sdktrace.TracerProvider
}

// NewPipeline validates c and creates the OTLP exporters when
// c.OTLPEndpoint is set (neither dials here). procs receive every span of
// every service.
func NewPipeline(ctx context.Context, c Config, procs ...sdktrace.SpanProcessor) (*Pipeline, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline{c: c, procs: procs, tps: map[string]*sdktrace.TracerProvider{}}
	if c.OTLPEndpoint != "" {
		spans, metrics, err := otlpExporters(ctx, c.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		p.procs = append(p.procs, sdktrace.NewBatchSpanProcessor(spans))
		p.reader = sdkmetric.NewPeriodicReader(metrics)
	}
	return p, nil
}

// TracerProvider is service's tracer provider: the Config's sampler, the
// shared processors, and a resource naming service. One per name.
func (p *Pipeline) TracerProvider(service string) (trace.TracerProvider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tp, ok := p.tps[service]; ok {
		return tp, nil
	}
	res, err := Resource(service)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(p.c.SampleRatio))),
	}
	for _, sp := range p.procs {
		opts = append(opts, sdktrace.WithSpanProcessor(shared{sp}))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	p.tps[service] = tp
	return tp, nil
}

// MetricReader is the OTLP metric reader to add to the process's meter
// provider, or nil when nothing is exported.
func (p *Pipeline) MetricReader() sdkmetric.Reader { return p.reader }

// Shutdown stops every tracer provider, then flushes and stops the shared
// processors. The meter provider that holds MetricReader shuts it down.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, tp := range p.tps {
		errs = append(errs, tp.Shutdown(ctx))
	}
	for _, sp := range p.procs {
		errs = append(errs, sp.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// shared is a span processor several tracer providers use: a provider's
// Shutdown leaves it running for the others.
type shared struct{ sdktrace.SpanProcessor }

func (shared) Shutdown(context.Context) error { return nil }
