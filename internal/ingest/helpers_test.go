package ingest_test

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/testutil"
)

var (
	// issuer mints every test token; spans records every span.
	issuer *devissuer.Issuer
	spans  = tracetest.NewSpanRecorder()
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ingest-test-issuer-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	issuer, err = devissuer.LoadOrCreate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// What telemetry sets up in the services: W3C trace context and a real
	// SDK, so spans have fresh ids.
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeQueue is an in-memory queue.Queue that deduplicates by task name and
// can be made to fail, block or panic.
type fakeQueue struct {
	mu    sync.Mutex
	tasks []queue.Task
	calls int

	err error // returned by every Enqueue when set
	// block, when set, holds every Enqueue until it is closed; honorCtx
	// makes Enqueue give up when its context is done, as engines should.
	block    chan struct{}
	honorCtx bool
	panics   bool
}

func (q *fakeQueue) Enqueue(ctx context.Context, t queue.Task) error {
	q.mu.Lock()
	q.calls++
	block, honor, err, panics := q.block, q.honorCtx, q.err, q.panics
	q.mu.Unlock()
	if panics {
		panic("engine bug")
	}
	if block != nil {
		if honor {
			select {
			case <-block:
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", queue.ErrUnavailable, ctx.Err())
			}
		} else {
			<-block
		}
	}
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, old := range q.tasks {
		if old.Name == t.Name {
			return queue.ErrAlreadyExists
		}
	}
	t.Body = bytes.Clone(t.Body)
	t.Header = t.Header.Clone()
	q.tasks = append(q.tasks, t)
	return nil
}

func (q *fakeQueue) Tasks() []queue.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queue.Task(nil), q.tasks...)
}

func (q *fakeQueue) Calls() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls
}

// spyStore is the embedded status engine on a temporary file, with Create
// counted and able to fail or block. Every other method is the engine's own,
// so what ingest sees cannot drift from a real store.
type spyStore struct {
	*sqlitestatus.Store

	mu      sync.Mutex
	creates int

	err error // returned by every Create when set, before the engine is asked
	// entered is signalled when a Create starts; block holds it until closed.
	entered chan struct{}
	block   chan struct{}
}

// newSpyStore opens an empty embedded store in tb's temporary directory and
// closes it when tb ends.
func newSpyStore(tb testing.TB) *spyStore {
	tb.Helper()
	return &spyStore{Store: testutil.EmbeddedStatus(tb)}
}

func (s *spyStore) Create(ctx context.Context, r status.Record) (bool, error) {
	s.mu.Lock()
	s.creates++
	entered, block, err := s.entered, s.block, s.err
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	if err != nil {
		return false, err
	}
	return s.Store.Create(ctx, r)
}

// Records returns every stored record by event id.
func (s *spyStore) Records(tb testing.TB) map[string]status.Record {
	tb.Helper()
	recs, err := s.List(context.Background(), status.Query{Limit: 10000})
	if err != nil {
		tb.Fatalf("List: %v", err)
	}
	out := make(map[string]status.Record, len(recs))
	for _, r := range recs {
		out[r.EventID] = r
	}
	return out
}

func (s *spyStore) Creates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset drops what was logged so far (fuzz targets log on every input).
func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// harness is one ingest server with fakes around it.
type harness struct {
	srv     *ingest.Server
	handler http.Handler
	queue   *fakeQueue
	store   *spyStore
	logs    *syncBuffer
	cfg     ingest.Config
}

func testConfig() ingest.Config {
	return ingest.Config{
		Port: "8080",
		Auth: auth.Settings{
			Mode:          auth.ModeOIDC,
			Issuer:        devissuer.IssuerID,
			Audience:      devissuer.DefaultAudience,
			AllowedEmails: []string{devissuer.DefaultSourceEmail},
			JWKSURL:       "http://127.0.0.1:1" + devissuer.JWKSPath,
		},
		EnqueueTimeout: 250 * time.Millisecond,
		StatusTimeout:  100 * time.Millisecond,
	}
}

// staticKeys is the verifier configuration cfg describes, with the test
// issuer's keys instead of a JWKS URL: no test reaches the network.
func staticKeys(s auth.Settings, keys []crypto.PublicKey) auth.OIDCConfig {
	oc := s.OIDCConfig()
	oc.JWKSURL = ""
	oc.Keys = keys
	return oc
}

func newHarness(tb testing.TB, mod func(*ingest.Config, *fakeQueue, *spyStore)) *harness {
	tb.Helper()
	cfg := testConfig()
	q, st := &fakeQueue{}, newSpyStore(tb)
	if mod != nil {
		mod(&cfg, q, st)
	}
	logs := &syncBuffer{}
	ctx := logging.WithLogger(context.Background(), logging.New(logs, logging.Options{Level: "debug"}))
	v, err := auth.NewOIDCVerifier(ctx, staticKeys(cfg.Auth, issuer.PublicKeys()))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := ingest.NewServer(ctx, cfg, q, st, v)
	if err != nil {
		tb.Fatalf("NewServer: %v", err)
	}
	return &harness{srv: srv, handler: srv.Routes(ctx), queue: q, store: st, logs: logs, cfg: cfg}
}

func token(tb testing.TB) string {
	tb.Helper()
	tok, err := issuer.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// eventJSON is a valid event body for id.
func eventJSON(id string) string {
	return `{"id":"` + id + `","name":"test event","body":"test body","timestamp":1767225600000}`
}

// newRequest builds a POST /events with a JSON content type and a valid
// token; mod adjusts it.
func newRequest(tb testing.TB, body string, mod func(*http.Request)) *http.Request {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, ingest.EventsPath, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token(tb))
	if mod != nil {
		mod(r)
	}
	return r
}

func (h *harness) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, r)
	return rec
}

// stubVerifier accepts any token; for tests about wiring, not tokens.
type stubVerifier struct{}

func (stubVerifier) Verify(context.Context, string) (*auth.Claims, error) {
	return &auth.Claims{Subject: "stub"}, nil
}
