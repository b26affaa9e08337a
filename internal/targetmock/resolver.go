package targetmock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"eventrelay/internal/logging"
	"eventrelay/internal/targetmock/graph"
)

// resolver implements the generated graph.ResolverRoot over a Server.
type resolver struct{ s *Server }

var _ graph.ResolverRoot = (*resolver)(nil)

func (r *resolver) Mutation() graph.MutationResolver { return mutationResolver{r.s} }
func (r *resolver) Query() graph.QueryResolver       { return queryResolver{r.s} }

type mutationResolver struct{ s *Server }

// badInput is the permanent rejection of one event.
func badInput(field, msg string) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    msg,
		Extensions: map[string]any{"code": CodeBadUserInput, "field": field},
	}
}

// validateInput returns the reason the target refuses in, or nil.
func validateInput(in graph.EventInput) *gqlerror.Error {
	switch {
	case strings.TrimSpace(in.ID) == "":
		return badInput("id", "id is required")
	case strings.TrimSpace(in.Brand) == "":
		return badInput("brand", "brand is required")
	}
	if _, err := time.Parse(time.RFC3339, in.Timestamp); err != nil {
		return badInput("timestamp", "timestamp must be RFC 3339, got "+quoteShort(in.Timestamp))
	}
	return nil
}

func quoteShort(s string) string {
	const n = 64
	if len(s) > n {
		s = s[:n] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// ReceiveEvent validates the event and stores it unless its id is stored
// already. The gate (gate.go) has taken the token and injected any fault
// before this runs.
func (m mutationResolver) ReceiveEvent(ctx context.Context, in graph.EventInput) (*graph.Receipt, error) {
	cs := callStateFrom(ctx)
	if cs == nil {
		// Only reachable if the gate is bypassed, which Routes never does.
		return nil, errors.New("receiveEvent outside the target's gate")
	}
	c := cs.call
	c.EventID, c.Brand = in.ID, in.Brand
	logger := logging.FromContext(ctx).With("event_id", in.ID)
	// The client may give up while the call is processed; the target still
	// finishes, as a real one would.
	sctx := context.WithoutCancel(ctx)

	if gerr := validateInput(in); gerr != nil {
		c.Outcome, c.Detail = OutcomeRejected, gerr.Message
		if err := m.s.store.record(sctx, c); err != nil {
			cs.internalErr = err
			logger.ErrorContext(ctx, "targetmock could not record a call", "error", err)
			return nil, errors.New("storage failure")
		}
		cs.recorded = true
		spanOutcome(ctx, OutcomeRejected, gerr.Message)
		logger.DebugContext(ctx, "targetmock call", "outcome", string(OutcomeRejected), "detail", gerr.Message)
		return nil, gerr
	}

	ev := ReceivedEvent{ID: in.ID, Name: in.Name, Body: in.Body, Timestamp: in.Timestamp, Brand: in.Brand}
	outcome, first, err := m.s.store.receive(sctx, ev, c)
	if err != nil {
		cs.internalErr = err
		logger.ErrorContext(ctx, "targetmock could not store an event", "error", err)
		return nil, errors.New("storage failure")
	}
	cs.recorded, cs.outcome = true, outcome
	spanOutcome(ctx, outcome, "")
	logger.DebugContext(ctx, "targetmock call", "outcome", string(outcome))
	return &graph.Receipt{
		ID:         in.ID,
		Duplicate:  outcome == OutcomeDuplicate,
		ReceivedAt: formatTime(first),
	}, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

type queryResolver struct{ s *Server }

// Stats answers the stats query.
func (q queryResolver) Stats(ctx context.Context) (*graph.Stats, error) {
	st, err := q.s.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return &graph.Stats{
		Calls:                st.Calls,
		Accepted:             st.Accepted,
		Duplicates:           st.Duplicates,
		RateLimited:          st.RateLimited,
		Rejected:             st.Rejected,
		Faults:               st.Faults,
		DistinctEvents:       st.DistinctEvents,
		MaxAcceptedPerSecond: st.MaxAcceptedPerSecond,
		MaxCallsPerSecond:    st.MaxCallsPerSecond,
	}, nil
}

// Default and largest page of the calls query.
const (
	defaultCallsLimit = 1000
	maxCallsLimit     = 100_000
)

// Calls answers the calls query: oldest first, limit defaults to 1000.
func (q queryResolver) Calls(ctx context.Context, eventID *string, limit *int) ([]*graph.Call, error) {
	f := CallFilter{Limit: defaultCallsLimit}
	if eventID != nil {
		f.EventID = *eventID
	}
	if limit != nil {
		if *limit < 1 || *limit > maxCallsLimit {
			return nil, badInput("limit", fmt.Sprintf("limit must be within [1, %d]", maxCallsLimit))
		}
		f.Limit = *limit
	}
	calls, err := q.s.Calls(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]*graph.Call, 0, len(calls))
	for _, c := range calls {
		out = append(out, &graph.Call{
			EventID:        c.EventID,
			At:             formatTime(c.At),
			Outcome:        string(c.Outcome),
			Brand:          c.Brand,
			Traceparent:    optional(c.Traceparent),
			IdempotencyKey: optional(c.IdempotencyKey),
		})
	}
	return out, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Event answers the event query: null for an id never accepted.
func (q queryResolver) Event(ctx context.Context, id string) (*graph.ReceivedEvent, error) {
	e, err := q.s.Event(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &graph.ReceivedEvent{
		ID:              e.ID,
		Name:            e.Name,
		Body:            e.Body,
		Timestamp:       e.Timestamp,
		Brand:           e.Brand,
		FirstReceivedAt: formatTime(e.FirstReceivedAt),
		Calls:           e.Calls,
	}, nil
}

// PerSecond answers the perSecond query.
func (q queryResolver) PerSecond(ctx context.Context) ([]*graph.SecondCount, error) {
	secs, err := q.s.PerSecond(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*graph.SecondCount, 0, len(secs))
	for _, c := range secs {
		out = append(out, &graph.SecondCount{Second: int(c.Second), Calls: c.Calls, Accepted: c.Accepted})
	}
	return out, nil
}
