package telemetry_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"eventrelay/internal/telemetry"
)

func TestRecorderKeepsATraceTree(t *testing.T) {
	t.Parallel()
	rec := telemetry.NewRecorder(2)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	ingest, dispatcher := tp.Tracer("eventrelay/internal/ingest"), tp.Tracer("eventrelay/internal/dispatcher")
	ctx, root := ingest.Start(context.Background(), "POST /events")
	_, child := dispatcher.Start(ctx, "deliver")
	child.SetStatus(codes.Error, "target unavailable")
	child.End()
	root.End()

	traceID := root.SpanContext().TraceID().String()
	spans := rec.Spans(traceID)
	if len(spans) != 2 {
		t.Fatalf("recorded %d spans, want 2", len(spans))
	}
	if spans[0].Name != "POST /events" || spans[0].Scope != "ingest" || spans[0].ParentID != "" {
		t.Errorf("first span = %+v, want the ingest root", spans[0])
	}
	if spans[1].ParentID != spans[0].SpanID || spans[1].Scope != "dispatcher" || spans[1].Status != "error: target unavailable" {
		t.Errorf("second span = %+v, want the dispatcher child with its error", spans[1])
	}

	// Two more traces push the first one out: the recorder is bounded.
	for range 2 {
		_, s := ingest.Start(context.Background(), "other")
		s.End()
	}
	if got := rec.Spans(traceID); len(got) != 0 {
		t.Errorf("the oldest trace is still kept (%d spans) beyond the bound", len(got))
	}
}
