package telemetry

import (
	"container/list"
	"context"
	"fmt"
	"path"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// RecordedSpan is a finished span as the recorder keeps it.
type RecordedSpan struct {
	TraceID, SpanID, ParentID string
	Name                      string
	// Scope is the short name of the instrumentation scope (the tracer's
	// name, e.g. "ingest"): in a one-process stack it tells the hops apart.
	Scope      string
	Start      time.Time
	Duration   time.Duration
	Attributes map[string]string
	// Status is "", "ok" or "error: <description>".
	Status string
}

// Recorder is a span processor that keeps the spans of the most recent
// traces in memory, so that relayctl dev can show an event's spans without
// a tracing backend. It is bounded: the oldest trace is forgotten first.
type Recorder struct {
	mu        sync.Mutex
	maxTraces int
	byTrace   map[string]*list.Element
	order     *list.List // of *recordedTrace, most recent at the front
}

type recordedTrace struct {
	id    string
	spans []RecordedSpan
}

var _ sdktrace.SpanProcessor = (*Recorder)(nil)

// NewRecorder keeps the spans of at most maxTraces traces.
func NewRecorder(maxTraces int) *Recorder {
	if maxTraces < 1 {
		maxTraces = 1
	}
	return &Recorder{maxTraces: maxTraces, byTrace: make(map[string]*list.Element), order: list.New()}
}

// OnStart implements sdktrace.SpanProcessor.
func (r *Recorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd records s.
func (r *Recorder) OnEnd(s sdktrace.ReadOnlySpan) {
	attrs := make(map[string]string, len(s.Attributes()))
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	st := ""
	switch s.Status().Code {
	case codes.Ok:
		st = "ok"
	case codes.Error:
		st = "error"
		if d := s.Status().Description; d != "" {
			st = fmt.Sprintf("error: %s", d)
		}
	}
	rs := RecordedSpan{
		TraceID:    s.SpanContext().TraceID().String(),
		SpanID:     s.SpanContext().SpanID().String(),
		Name:       s.Name(),
		Scope:      path.Base(s.InstrumentationScope().Name),
		Start:      s.StartTime(),
		Duration:   s.EndTime().Sub(s.StartTime()),
		Attributes: attrs,
		Status:     st,
	}
	if p := s.Parent(); p.IsValid() {
		rs.ParentID = p.SpanID().String()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.byTrace[rs.TraceID]; ok {
		t := el.Value.(*recordedTrace)
		t.spans = append(t.spans, rs)
		r.order.MoveToFront(el)
		return
	}
	r.byTrace[rs.TraceID] = r.order.PushFront(&recordedTrace{id: rs.TraceID, spans: []RecordedSpan{rs}})
	for r.order.Len() > r.maxTraces {
		oldest := r.order.Back()
		r.order.Remove(oldest)
		delete(r.byTrace, oldest.Value.(*recordedTrace).id)
	}
}

// Spans returns the recorded spans of traceID, earliest first.
func (r *Recorder) Spans(traceID string) []RecordedSpan {
	r.mu.Lock()
	el, ok := r.byTrace[traceID]
	var out []RecordedSpan
	if ok {
		out = append(out, el.Value.(*recordedTrace).spans...)
	}
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Shutdown implements sdktrace.SpanProcessor.
func (r *Recorder) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (r *Recorder) ForceFlush(context.Context) error { return nil }
