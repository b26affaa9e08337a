package dispatcher

// The attack suite of the second door: POST /tasks/events may only be
// called by the queue (Cloud Tasks' token service account, for the
// dispatcher's audience). Everyone else gets a 4xx before the body is read:
// the target is not called and the status store is not touched.

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/authtest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

// The two doors' audiences and the queue's token service account, as a
// Cloud Run deployment would have them.
const (
	attackDispatcherAudience = "https://dispatcher-abc123-ew.a.run.app"
	attackIngestAudience     = "https://ingest-abc123-ew.a.run.app"
	tasksSA                  = "cloud-tasks@proj.iam.gserviceaccount.com"
)

// countingStore counts every call that reaches the status store.
type countingStore struct {
	*spyStore
	calls atomic.Int64
}

func (c *countingStore) Create(ctx context.Context, r status.Record) (bool, error) {
	c.calls.Add(1)
	return c.spyStore.Create(ctx, r)
}

func (c *countingStore) Get(ctx context.Context, id string) (status.Record, error) {
	c.calls.Add(1)
	return c.spyStore.Get(ctx, id)
}

func (c *countingStore) Apply(ctx context.Context, id string, u status.Update) (status.Record, error) {
	c.calls.Add(1)
	return c.spyStore.Apply(ctx, id, u)
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset drops what was logged so far.
func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// secureHarness is a dispatcher wired as dispatcher/main.go wires it, for
// one auth mode.
type secureHarness struct {
	handler http.Handler
	store   *countingStore
	target  *fakeTarget
	logs    *lockedBuffer
}

func newSecureHarness(tb testing.TB, mode *authtest.Issuer) *secureHarness {
	tb.Helper()
	h := &secureHarness{
		store:  &countingStore{spyStore: newSpyStore(tb)},
		target: newFakeTarget(tb, respond(200, nil, receiptBody("ev-1", false))),
		logs:   &lockedBuffer{},
	}
	cfg := testConfig(h.target.srv.URL)
	cfg.Auth = mode.Settings
	if err := cfg.Validate(); err != nil {
		tb.Fatalf("config as main validates it: %v", err)
	}
	ctx := logging.WithLogger(context.Background(), logging.New(h.logs, logging.Options{Level: "debug"}))
	s, err := NewServer(ctx, cfg, h.store, Options{Retry: testRetry, Client: h.target.srv.Client(), Authenticate: auth.Middleware(mode.Verifier(tb))})
	if err != nil {
		tb.Fatal(err)
	}
	h.handler = s.Routes(ctx)
	return h
}

// taskRequest is a delivery as the queue sends it, with authz as the
// Authorization header (none when empty).
func taskRequest(body, authz string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, TaskPath, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(queue.HeaderTaskName, "ev-task")
	r.Header.Set(queue.HeaderQueueName, "events")
	r.Header.Set(queue.HeaderRetryCount, "0")
	r.Header.Set(queue.HeaderExecutionCount, "0")
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	return r
}

func (h *secureHarness) checkNoSideEffect(tb testing.TB) {
	tb.Helper()
	if n := len(h.target.seen()); n != 0 {
		tb.Errorf("target called %d times", n)
	}
	if n := h.store.calls.Load(); n != 0 {
		tb.Errorf("status store called %d times", n)
	}
}

func checkTaskProblem(tb testing.TB, rec *httptest.ResponseRecorder, wantStatus int, wantSlug string) {
	tb.Helper()
	if rec.Code >= 500 {
		tb.Fatalf("status %d (a 5xx) for an attack: %s", rec.Code, rec.Body)
	}
	if rec.Code != wantStatus {
		tb.Fatalf("status %d, want %d: %s", rec.Code, wantStatus, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if want := `"type":"` + serving.ProblemTypeBase + wantSlug + `"`; !strings.Contains(rec.Body.String(), want) {
		tb.Errorf("body %s, want problem type %s", rec.Body, wantSlug)
	}
	if rec.Body.Len() > 4096 {
		tb.Errorf("problem body is %d bytes", rec.Body.Len())
	}
}

func TestAttackTaskTokens(t *testing.T) {
	t.Parallel()
	for _, mode := range authtest.Modes(attackDispatcherAudience, tasksSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			h := newSecureHarness(t, mode)
			for _, a := range mode.Attacks(t, attackIngestAudience) {
				t.Run(a.Name, func(t *testing.T) {
					req := taskRequest(eventJSON("ev-attack"), "")
					for _, v := range a.Authorization {
						req.Header.Add("Authorization", v)
					}
					for k, vs := range a.Header {
						req.Header[k] = vs
					}
					rec := httptest.NewRecorder()
					h.handler.ServeHTTP(rec, req)
					checkTaskProblem(t, rec, a.WantStatus, a.WantSlug)
					for _, s := range a.Secrets {
						if strings.Contains(rec.Body.String(), s) || strings.Contains(h.logs.String(), s) {
							t.Error("a token (or part of one) is in the answer or the logs")
						}
					}
					h.checkNoSideEffect(t)
				})
			}
			// The queue itself still gets through.
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, taskRequest(eventJSON("ev-1"), mode.ValidAuthorization(t)))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"delivered"`) {
				t.Fatalf("the queue's delivery: %d %s", rec.Code, rec.Body)
			}
			if n := len(h.target.seen()); n != 1 {
				t.Errorf("target called %d times, want 1", n)
			}
		})
	}
}

// TestAttackTaskTokensAccepted: the ways the queue's token may arrive, in
// each mode, all get a delivery: the attack table refuses forgeries, not
// the queue. Behind Cloud Run the token in X-Serverless-Authorization
// decides, whatever Authorization holds.
func TestAttackTaskTokensAccepted(t *testing.T) {
	t.Parallel()
	for _, mode := range authtest.Modes(attackDispatcherAudience, tasksSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			for _, a := range mode.Accepts(t) {
				t.Run(a.Name, func(t *testing.T) {
					t.Parallel()
					h := newSecureHarness(t, mode)
					req := taskRequest(eventJSON("ev-1"), "")
					for k, vs := range a.Header {
						req.Header[k] = vs
					}
					rec := httptest.NewRecorder()
					h.handler.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"delivered"`) {
						t.Fatalf("delivery: %d %s", rec.Code, rec.Body)
					}
					if n := len(h.target.seen()); n != 1 {
						t.Errorf("target called %d times, want 1", n)
					}
					for _, vs := range a.Header {
						for _, v := range vs {
							if tok := strings.TrimPrefix(v, "Bearer "); len(tok) >= 16 && strings.Contains(h.logs.String(), tok) {
								t.Error("a token is in the logs")
							}
						}
					}
				})
			}
		})
	}
}

// TestAttackTaskRequests: requests refused before authentication (method,
// content type, encoding, path), and bodies sent without a token, which
// are refused before they are read.
func TestAttackTaskRequests(t *testing.T) {
	t.Parallel()
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 10<<20))
	_ = zw.Close()
	valid := eventJSON("ev-1")

	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		noToken    bool
		mod        func(*http.Request)
		wantStatus int
		wantSlug   string
		wantAllow  string
	}{
		{name: "GET the task path", method: http.MethodGet, wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "POST"},
		{name: "PUT the task path", method: http.MethodPut, body: valid, wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "POST"},
		{name: "DELETE the task path", method: http.MethodDelete, wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "POST"},
		{name: "POST /health", method: http.MethodPost, path: HealthPath, wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "unknown path", path: "/admin", body: valid, wantStatus: 404, wantSlug: serving.SlugNotFound},
		{name: "path under the task path", path: TaskPath + "/x", body: valid, wantStatus: 404, wantSlug: serving.SlugNotFound},
		{name: "dot segments", path: "/x/.." + TaskPath, body: valid, wantStatus: 404, wantSlug: serving.SlugNotFound},
		{name: "wrong content type", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, wantStatus: 415, wantSlug: serving.SlugUnsupportedMediaType},
		{name: "missing content type", body: valid, mod: func(r *http.Request) { r.Header.Del("Content-Type") }, wantStatus: 415, wantSlug: serving.SlugUnsupportedMediaType},
		{name: "octet-stream (Cloud Tasks' default)", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/octet-stream") }, wantStatus: 415, wantSlug: serving.SlugUnsupportedMediaType},
		{name: "gzip bomb", body: bomb.String(), mod: func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, wantStatus: 415, wantSlug: serving.SlugUnsupportedContentEncoding},
		// Without a token, no body is even read.
		{name: "malformed JSON without a token", body: `{"id":`, noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "truncated body without a token", body: valid[:len(valid)/2], noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "trailing garbage without a token", body: valid + "x", noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "duplicate keys without a token", body: `{"id":"a","id":"b"}`, noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "wrong types without a token", body: `{"id":1,"name":2}`, noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "invalid UTF-8 without a token", body: "{\"id\":\"\xff\"}", noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "deep nesting without a token", body: strings.Repeat("[", 100_000), noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "10 MiB body without a token", body: strings.Repeat("x", 10<<20), noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
		{name: "a valid event without a token", body: valid, noToken: true, wantStatus: 401, wantSlug: auth.SlugUnauthenticated},
	}
	for _, mode := range authtest.Modes(attackDispatcherAudience, tasksSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			authz := mode.ValidAuthorization(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					h := newSecureHarness(t, mode)
					token := authz
					if tc.noToken {
						token = ""
					}
					req := taskRequest(tc.body, token)
					if tc.method != "" {
						req.Method = tc.method
					}
					if tc.path != "" {
						req.URL.Path = tc.path
					}
					if tc.mod != nil {
						tc.mod(req)
					}
					rec := httptest.NewRecorder()
					h.handler.ServeHTTP(rec, req)
					checkTaskProblem(t, rec, tc.wantStatus, tc.wantSlug)
					if got := rec.Header().Get("Allow"); got != tc.wantAllow {
						t.Errorf("Allow %q, want %q", got, tc.wantAllow)
					}
					h.checkNoSideEffect(t)
					if strings.Contains(h.logs.String(), strings.TrimPrefix(authz, "Bearer ")) {
						t.Error("the token is in the logs")
					}
				})
			}
		})
	}
}

// TestAttackTaskSlowloris: slow-drip headers against the dispatcher on a
// real listener are cut off; nothing is delivered.
func TestAttackTaskSlowloris(t *testing.T) {
	t.Parallel()
	mode := authtest.Modes(attackDispatcherAudience, tasksSA)[0]
	h := newSecureHarness(t, mode)
	to := serving.Timeouts{ReadHeader: 300 * time.Millisecond, Read: time.Second, Write: 2 * time.Second, Idle: 2 * time.Second, Shutdown: 2 * time.Second}
	srv, err := serving.New("127.0.0.1:0", to)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h.handler) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang guard, far above the timeout
	start := time.Now()
	head := "POST " + TaskPath + " HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nAuthorization: " + mode.ValidAuthorization(t) + "\r\nX-Drip: "
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := conn.Write([]byte{'a'}); err != nil {
					return
				}
			}
		}
	}()
	answer, err := io.ReadAll(conn)
	close(stop)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server never cut the slow client off")
	}
	// The server's deadline starts at accept, a little before the client
	// starts its clock: allow that skew, not a cut-off for another reason
	// (which would come at once).
	if elapsed := time.Since(start); elapsed < to.ReadHeader*8/10 {
		t.Errorf("cut off after %v, well before ReadHeader %v: for another reason?", elapsed, to.ReadHeader)
	}
	if bytes.HasPrefix(answer, []byte("HTTP/1.1 2")) {
		t.Errorf("answer %q", answer)
	}
	h.checkNoSideEffect(t)
}
