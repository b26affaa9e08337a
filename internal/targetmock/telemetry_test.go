package targetmock

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/telemetry"
)

// TestReceiveEventSpan checks each receiveEvent call is a server span in the
// caller's trace, under the caller's span, marked with its outcome.
func TestReceiveEventSpan(t *testing.T) {
	t.Parallel()
	otel.SetTextMapPropagator(telemetry.Propagator()) // what every main installs
	rec := tracetest.NewSpanRecorder()
	tt := newTarget(t, map[string]string{"TARGET_RATE": "1"}, newFakeClock())
	tt.srv.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")

	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		parent  = "b7ad6b7169203331"
	)
	h := map[string]string{"traceparent": "00-" + traceID + "-" + parent + "-01"}
	tt.receive(t, validInput("evt-1"), h) // accepted
	tt.receive(t, validInput("evt-1"), h) // rate limited

	type view struct {
		Name, Trace, Parent, EventID, Outcome string
		Kind                                  trace.SpanKind
		Error                                 bool
	}
	var got []view
	for _, s := range rec.Ended() {
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		got = append(got, view{
			Name: s.Name(), Trace: s.SpanContext().TraceID().String(), Parent: s.Parent().SpanID().String(),
			EventID: attrs["eventrelay.event.id"], Outcome: attrs["eventrelay.target.outcome"],
			Kind: s.SpanKind(), Error: s.Status().Code == codes.Error,
		})
	}
	want := []view{
		{Name: "receiveEvent", Trace: traceID, Parent: parent, EventID: "evt-1", Outcome: string(OutcomeAccepted), Kind: trace.SpanKindServer},
		{Name: "receiveEvent", Trace: traceID, Parent: parent, EventID: "evt-1", Outcome: string(OutcomeRateLimited), Kind: trace.SpanKindServer, Error: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}
