package telemetry_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"eventrelay/internal/telemetry"
)

// services records the service.name of every span it sees.
type services struct {
	mu    sync.Mutex
	names []string
	down  int
}

func (s *services) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (s *services) OnEnd(sp sdktrace.ReadOnlySpan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range sp.Resource().Attributes() {
		if kv.Key == "service.name" {
			s.names = append(s.names, kv.Value.AsString())
		}
	}
}
func (s *services) Shutdown(context.Context) error   { s.mu.Lock(); s.down++; s.mu.Unlock(); return nil }
func (s *services) ForceFlush(context.Context) error { return nil }

// TestPipelineNamesEachService gives two services their own tracer
// providers: their spans carry their own service.name and reach the shared
// processor, which one provider stopping does not stop.
func TestPipelineNamesEachService(t *testing.T) {
	t.Parallel()
	rec := &services{}
	mem := tracetest.NewInMemoryExporter()
	p, err := telemetry.NewPipeline(t.Context(), telemetry.Config{SampleRatio: 1}, rec, sdktrace.NewSimpleSpanProcessor(mem))
	if err != nil {
		t.Fatal(err)
	}
	if p.MetricReader() != nil {
		t.Error("a metric reader without an OTLP endpoint")
	}
	ingest, err := p.TracerProvider("ingest")
	if err != nil {
		t.Fatal(err)
	}
	dispatcher, _ := p.TracerProvider("dispatcher")
	if again, _ := p.TracerProvider("ingest"); again != ingest {
		t.Error("a second tracer provider for the same service")
	}
	_, s := ingest.Tracer("t").Start(context.Background(), "a")
	s.End()
	if err := ingest.(*sdktrace.TracerProvider).Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, s = dispatcher.Tracer("t").Start(context.Background(), "b")
	s.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.names, ","); got != "ingest,dispatcher" {
		t.Errorf("service names = %s, want ingest,dispatcher", got)
	}
	if rec.down != 1 {
		t.Errorf("the shared processor was shut down %d times, want once (by the pipeline)", rec.down)
	}
}

func TestPipelineExportsWithAnEndpoint(t *testing.T) {
	t.Parallel()
	if _, err := telemetry.NewPipeline(t.Context(), telemetry.Config{OTLPEndpoint: "localhost:4317"}); err == nil {
		t.Error("NewPipeline with an endpoint that is not a URL succeeded")
	}
	p, err := telemetry.NewPipeline(t.Context(), telemetry.Config{SampleRatio: 1, OTLPEndpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if p.MetricReader() == nil {
		t.Error("no OTLP metric reader with an endpoint")
	}
	mp, _, err := telemetry.NewPrometheus("relayctl-dev", p.MetricReader())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	_ = mp.Shutdown(ctx) // nothing listens: the export fails, the shutdown ends
	_ = p.Shutdown(ctx)
}
