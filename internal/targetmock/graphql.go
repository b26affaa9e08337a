package targetmock

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"eventrelay/internal/targetmock/graph"
)

// Error codes in extensions.code of the GraphQL errors targetmock answers.
const (
	// CodeBadUserInput: a permanent rejection of the event (empty or missing
	// brand, bad timestamp, empty id). HTTP 200.
	CodeBadUserInput = "BAD_USER_INPUT"
	// CodeRateLimited: over the limit. HTTP 429 (http mode) or 200 (graphql
	// mode); extensions.retryAfterSeconds says when to come back.
	CodeRateLimited = "RATE_LIMITED"
	// CodeInternal: an injected fault, a storage failure or a panic. HTTP 500
	// (a panic in a resolver: 200, the error at the field's path).
	CodeInternal = "INTERNAL_SERVER_ERROR"
	// CodeBadRequest: a request the target does not serve (a body that is
	// not one GraphQL request, several receiveEvent fields). HTTP 400.
	CodeBadRequest = "BAD_REQUEST"
	// CodeTooLarge: the request body is over MaxRequestBytes. HTTP 413.
	CodeTooLarge = "REQUEST_TOO_LARGE"
)

// Request headers recorded with every call.
const (
	HeaderTraceparent    = "Traceparent"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// MaxRequestBytes is the largest GraphQL request body the target reads.
const MaxRequestBytes = 1 << 20

// handleGraphQL is gqlgen with the target's gate installed as a gqlgen
// extension (gate.go), its error presenter and its recover function. The
// thin HTTP layer around it bounds the body and turns the gate's decisions,
// which it finds in the request's exchange, into HTTP: the status, the
// Retry-After header and a mangled body. It never looks into the request.
func (s *Server) handleGraphQL() http.Handler {
	gql := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &resolver{s: s}}))
	gql.AddTransport(transport.POST{})
	gql.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	gql.SetValidationRulesFn(validationRules)
	gql.SetErrorPresenter(presentError)
	gql.SetRecoverFunc(recoverPanic)
	gql.Use(extension.Introspection{})
	gql.Use(gate{s: s})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := &exchange{at: s.now(), header: r.Header}
		r.Body = &bodyReader{ReadCloser: http.MaxBytesReader(w, r.Body, MaxRequestBytes), ex: ex}
		aw := &answerWriter{ResponseWriter: w, ex: ex}
		gql.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
		aw.finish()
	})
}

// exchange is one POST /graphql request as the gate sees it. The HTTP layer
// creates it; gqlgen's extension points fill in what they decide; the HTTP
// layer writes the answer from it.
type exchange struct {
	// at is the request's arrival time, the time of its call record.
	at time.Time
	// header is the request's header.
	header http.Header
	// bodyErr is why the request body could not be read.
	bodyErr error
	// variables are the request's variables as gqlgen decoded them.
	variables map[string]any
	// gated is set once the gate has taken the request as a receiveEvent
	// call (or refused it as one).
	gated bool
	// gqlgenStatus is the status gqlgen asked for.
	gqlgenStatus int
	// status, when not 0, replaces gqlgenStatus.
	status int
	// retryAfter, when above 0, is sent as the Retry-After header.
	retryAfter int
	// malformed asks for a broken body in place of gqlgen's answer.
	malformed bool
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// bodyReader notes in the exchange why the body could not be read, so that
// the error presenter can answer 413 for a body over MaxRequestBytes.
type bodyReader struct {
	io.ReadCloser
	ex *exchange
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.ex.bodyErr = err
	}
	return n, err
}

// answerWriter holds gqlgen's answer until gqlgen is done, because gqlgen
// writes its status before the extensions that may change it have run.
type answerWriter struct {
	http.ResponseWriter
	ex   *exchange
	body bytes.Buffer
}

func (a *answerWriter) WriteHeader(status int) {
	if a.ex.gqlgenStatus == 0 {
		a.ex.gqlgenStatus = status
	}
}

func (a *answerWriter) Write(p []byte) (int, error) { return a.body.Write(p) }

// finish writes the answer: gqlgen's body with the exchange's status and
// headers, or a broken body when the gate asked for one.
func (a *answerWriter) finish() {
	h := a.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if a.ex.malformed {
		writeMalformed(a.ResponseWriter, a.body.Bytes())
		return
	}
	if a.ex.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(a.ex.retryAfter))
	}
	a.ResponseWriter.WriteHeader(cmp.Or(a.ex.status, a.ex.gqlgenStatus, http.StatusOK))
	_, _ = a.ResponseWriter.Write(a.body.Bytes())
}

// writeMalformed answers HTTP 200 with one of three broken bodies, picked at
// random: the real body cut in half, an HTML error page, or JSON without the
// receipt.
func writeMalformed(w http.ResponseWriter, body []byte) {
	switch rand.IntN(3) {
	case 0:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
	case 1:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html><body>upstream hiccup</body></html>")
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"data":null}`)
	}
}
