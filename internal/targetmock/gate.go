package targetmock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/logging"
)

// gate is the target's gqlgen extension for receiveEvent calls. For a
// mutation with a receiveEvent field it, in this order: refuses several
// receiveEvent fields or directives on the way to one, takes a token (or
// answers rate limited), waits the configured latency, injects a fault by
// ratio, refuses a missing brand; then gqlgen runs the resolver, which
// validates the rest and stores the event. Every step before the resolver
// is free of side effects, and every receiveEvent call is recorded exactly
// once.
//
// It gates an operation gqlgen is about to run (InterceptOperation), and an
// operation gqlgen refused after selecting it, for variables that do not
// fit (InterceptResponse on gqlgen's error path): both are calls.
type gate struct{ s *Server }

var (
	_ graphql.HandlerExtension          = gate{}
	_ graphql.OperationParameterMutator = gate{}
	_ graphql.OperationInterceptor      = gate{}
	_ graphql.ResponseInterceptor       = gate{}
)

func (gate) ExtensionName() string                   { return "TargetGate" }
func (gate) Validate(graphql.ExecutableSchema) error { return nil }
func (gate) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	// The call record keeps the input as sent, before gqlgen coerces it.
	if ex := exchangeFrom(ctx); ex != nil {
		ex.variables = p.Variables
	}
	return nil
}

// InterceptOperation gates a receiveEvent operation that passed gqlgen's
// validation.
func (g gate) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ex := exchangeFrom(ctx)
	oc := graphql.GetOperationContext(ctx)
	field, refusal := receiveEventField(oc.Doc, oc.Operation)
	if ex == nil || (field == nil && refusal == "") {
		return next(ctx)
	}
	c := g.s.startCall(ctx, ex, field)
	if resp := g.s.admitCall(c, refusal); resp != nil {
		c.span.End()
		return graphql.OneShot(resp)
	}
	cs := &callState{call: c.call}
	// The resolver runs to its end even if the client has given up, as a
	// real server's would: gqlgen refuses work on a cancelled context,
	// which would hide the duplicate call a cut delivery causes.
	responses := next(context.WithValue(context.WithoutCancel(c.ctx), callStateKey{}, cs))
	return func(ctx context.Context) *graphql.Response {
		defer c.span.End()
		resp := responses(ctx)
		switch {
		case cs.internalErr != nil:
			ex.status = http.StatusInternalServerError
			return requestError("storage failure", CodeInternal, nil)
		case !cs.recorded:
			// Execution stopped before the resolver: a permanent
			// rejection with no side effect.
			g.s.recordOutcome(c.ctx, c.logger, c.call, OutcomeRejected, "graphql request refused before the resolver")
		case (cs.outcome == OutcomeAccepted || cs.outcome == OutcomeDuplicate) && c.knobs.malformed():
			// The event is stored; only the answer is broken.
			c.logger.DebugContext(c.ctx, "targetmock mangled an accepted call's answer")
			ex.malformed = true
		}
		return resp
	}
}

// InterceptResponse gates a receiveEvent operation gqlgen refused after
// selecting it (its variables do not fit the schema): the call is rate
// limited, delayed and faulted like any other, then recorded rejected with
// gqlgen's answer. A missing brand is answered as the resolver answers an
// empty one.
func (g gate) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	ex := exchangeFrom(ctx)
	if ex == nil || ex.gated || !graphql.HasOperationContext(ctx) {
		return next(ctx)
	}
	oc := graphql.GetOperationContext(ctx)
	field, refusal := receiveEventField(oc.Doc, oc.Operation)
	if field == nil && refusal == "" {
		return next(ctx)
	}
	c := g.s.startCall(ctx, ex, field)
	defer c.span.End()
	if resp := g.s.admitCall(c, refusal); resp != nil {
		return resp
	}
	resp := next(ctx)
	g.s.recordOutcome(c.ctx, c.logger, c.call, OutcomeRejected,
		fmt.Sprintf("graphql request refused before the resolver: HTTP %d", ex.gqlgenStatus))
	return resp
}

// gatedCall is one receiveEvent call on its way through the gate.
type gatedCall struct {
	ctx    context.Context
	span   trace.Span
	logger *slog.Logger
	ex     *exchange
	call   Call
	// brandSent reports whether the input carries a brand that is not null.
	brandSent bool
	knobs     Knobs
}

// startCall takes the exchange as a receiveEvent call: the call record as
// far as the request tells it, and a server span in the caller's trace (the
// dispatcher's target.receiveEvent span).
func (s *Server) startCall(ctx context.Context, ex *exchange, field *ast.Field) *gatedCall {
	ex.gated = true
	c := Call{
		At:             ex.at,
		Traceparent:    ex.header.Get(HeaderTraceparent),
		IdempotencyKey: ex.header.Get(HeaderIdempotencyKey),
	}
	var brandSent bool
	if field != nil {
		in := inputOf(field, ex.variables)
		c.EventID, _ = stringField(in, "id")
		c.Brand, brandSent = stringField(in, "brand")
	}
	ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(ex.header))
	ctx, span := s.tracer.Start(ctx, "receiveEvent",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("eventrelay.event.id", c.EventID)))
	return &gatedCall{
		ctx: ctx, span: span, logger: logging.FromContext(ctx).With("event_id", c.EventID),
		ex: ex, call: c, brandSent: brandSent, knobs: s.Knobs(),
	}
}

// admitCall runs the gate's steps before the resolver. A non-nil answer
// refuses the call; the call is then recorded and the exchange carries the
// HTTP status.
func (s *Server) admitCall(c *gatedCall, refusal string) *graphql.Response {
	if refusal != "" {
		s.recordOutcome(c.ctx, c.logger, c.call, OutcomeRejected, refusal)
		c.ex.status = http.StatusBadRequest
		return requestError(refusal, CodeBadRequest, nil)
	}
	if ok, wait := s.admit(c.call.At); !ok {
		secs := retryAfterSeconds(wait)
		s.recordOutcome(c.ctx, c.logger, c.call, OutcomeRateLimited, "")
		c.ex.status = http.StatusOK
		if c.knobs.RateLimitMode != ModeGraphQL {
			c.ex.status, c.ex.retryAfter = http.StatusTooManyRequests, secs
		}
		return requestError("rate limited", CodeRateLimited, map[string]any{"retryAfterSeconds": secs})
	}
	if d := c.knobs.delay(); d > 0 {
		// The call goes on even if the client gives up meanwhile, as a
		// real server's would: that is how duplicate calls arise.
		time.Sleep(d)
	}
	if c.knobs.faulty() {
		s.recordOutcome(c.ctx, c.logger, c.call, OutcomeFault, "injected fault")
		c.ex.status = http.StatusInternalServerError
		return requestError("injected fault", CodeInternal, nil)
	}
	if !c.brandSent {
		// The schema makes brand required, so gqlgen would refuse this
		// with a generic validation error; answer as for an empty brand, a
		// permanent rejection of the event.
		s.recordOutcome(c.ctx, c.logger, c.call, OutcomeRejected, "brand is missing")
		c.ex.status = http.StatusOK
		err := badInput("brand", "brand is required")
		err.Path = ast.Path{ast.PathName("receiveEvent")}
		return &graphql.Response{Errors: gqlerror.List{err}}
	}
	return nil
}

// receiveEventField finds the receiveEvent field of a mutation, through
// fragment spreads and inline fragments, as gqlgen will execute it. refusal
// says why the target refuses the operation instead: several receiveEvent
// fields (the limit counts calls, not requests), or directives on the way to
// one. Both are empty for anything else.
func receiveEventField(doc *ast.QueryDocument, op *ast.OperationDefinition) (field *ast.Field, refusal string) {
	if doc == nil || op == nil || op.Operation != ast.Mutation {
		return nil, ""
	}
	var fields []*ast.Field
	directives := false
	visited := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Name == "receiveEvent" {
					fields = append(fields, sel)
					directives = directives || len(sel.Directives) > 0
				}
			case *ast.InlineFragment:
				directives = directives || len(sel.Directives) > 0
				walk(sel.SelectionSet)
			case *ast.FragmentSpread:
				directives = directives || len(sel.Directives) > 0
				if !visited[sel.Name] {
					visited[sel.Name] = true
					if f := doc.Fragments.ForName(sel.Name); f != nil {
						walk(f.SelectionSet)
					}
				}
			}
		}
	}
	walk(op.SelectionSet)
	switch {
	case len(fields) == 0:
		return nil, ""
	case len(fields) > 1:
		return nil, fmt.Sprintf("one receiveEvent per request, got %d", len(fields))
	case directives:
		return nil, "directives on receiveEvent are not supported"
	}
	return fields[0], ""
}

// inputOf is the field's input argument with the request's variables as
// sent; nil when absent or not an object.
func inputOf(field *ast.Field, variables map[string]any) map[string]any {
	arg := field.Arguments.ForName("input")
	if arg == nil {
		return nil
	}
	v, err := arg.Value.Value(variables)
	if err != nil {
		return nil
	}
	in, _ := v.(map[string]any)
	return in
}

// stringField returns m[key] as a string and whether it is present and not
// null. IDs may arrive as JSON numbers.
func stringField(m map[string]any, key string) (string, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	default:
		return fmt.Sprint(v), true
	}
}

// missingBrandLiteral is gqlparser's validation error for an EventInput
// literal without a brand.
const missingBrandLiteral = `Field "EventInput.brand" of required type "String!" was not provided.`

// validationRules are gqlparser's default rules, except that an EventInput
// literal without a brand passes validation, so the gate can answer it as a
// missing brand, as it does for variables without one.
func validationRules() *rules.Rules {
	rs := rules.NewDefaultRules()
	valuesOfCorrectType := rules.ValuesOfCorrectTypeRule.RuleFunc
	rs.ReplaceRule(rules.ValuesOfCorrectTypeRule.Name, func(observers *core.Events, addError core.AddErrFunc) {
		valuesOfCorrectType(observers, func(opts ...core.ErrorOption) {
			var e gqlerror.Error
			for _, o := range opts {
				o(&e)
			}
			if e.Message != missingBrandLiteral {
				addError(opts...)
			}
		})
	})
	return rs
}

// presentError is gqlgen's error presenter. Errors gqlgen raises before it
// has an operation come from a body it could not read or decode: a body
// over MaxRequestBytes is a 413 REQUEST_TOO_LARGE, any other a 400
// BAD_REQUEST. Everything else is presented as gqlgen presents it.
func presentError(ctx context.Context, err error) *gqlerror.Error {
	gqlErr := graphql.DefaultErrorPresenter(ctx, err)
	ex := exchangeFrom(ctx)
	if graphql.HasOperationContext(ctx) || ex == nil {
		return gqlErr
	}
	if ex.bodyErr != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(ex.bodyErr, &mbe) {
			ex.status = http.StatusRequestEntityTooLarge
			return requestError("request body too large", CodeTooLarge, nil).Errors[0]
		}
		ex.status = http.StatusBadRequest
		return requestError("cannot read request body", CodeBadRequest, nil).Errors[0]
	}
	ex.status = http.StatusBadRequest
	if gqlErr.Extensions == nil {
		gqlErr.Extensions = map[string]any{}
	}
	if _, ok := gqlErr.Extensions["code"]; !ok {
		gqlErr.Extensions["code"] = CodeBadRequest
	}
	return gqlErr
}

// recoverPanic is gqlgen's recover function: a panic while running a
// request is logged with its stack and answered as an internal error.
func recoverPanic(ctx context.Context, p any) error {
	logging.FromContext(ctx).ErrorContext(ctx, "targetmock panicked serving a graphql request",
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return &gqlerror.Error{Message: "internal system error", Extensions: map[string]any{"code": CodeInternal}}
}

// requestError is an answer that is one error and no data:
// {"errors":[{"message":M,"extensions":{"code":C,...ext}}],"data":null}.
func requestError(msg, code string, ext map[string]any) *graphql.Response {
	e := map[string]any{"code": code}
	for k, v := range ext {
		e[k] = v
	}
	return &graphql.Response{Errors: gqlerror.List{{Message: msg, Extensions: e}}}
}

// recordOutcome records a call that stored nothing. The call is answered
// whether or not recording works; a failure is logged.
func (s *Server) recordOutcome(ctx context.Context, logger *slog.Logger, c Call, o Outcome, detail string) {
	c.Outcome, c.Detail = o, detail
	spanOutcome(ctx, o, detail)
	if err := s.store.record(context.WithoutCancel(ctx), c); err != nil {
		logger.ErrorContext(ctx, "targetmock could not record a call", "outcome", string(o), "error", err)
		return
	}
	logger.DebugContext(ctx, "targetmock call", "outcome", string(o), "detail", detail)
}

// spanOutcome marks the call's span with its outcome; anything but accepted
// or duplicate is an error of the call.
func spanOutcome(ctx context.Context, o Outcome, detail string) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("eventrelay.target.outcome", string(o)))
	if o != OutcomeAccepted && o != OutcomeDuplicate {
		if detail == "" {
			detail = string(o)
		}
		span.SetStatus(codes.Error, detail)
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	secs := int(math.Ceil(d.Seconds()))
	return max(secs, 1)
}

// callState travels in the context of one receiveEvent call from the gate
// to the resolver.
type callState struct {
	call Call
	// recorded is set by the resolver once the call is in the store.
	recorded bool
	// outcome is set by the resolver with recorded.
	outcome Outcome
	// internalErr is set by the resolver when the store failed; the gate
	// then answers 500 instead of gqlgen's 200.
	internalErr error
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	cs, _ := ctx.Value(callStateKey{}).(*callState)
	return cs
}
