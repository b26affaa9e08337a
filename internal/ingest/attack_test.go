package ingest_test

// The attack suite: what a stranger on the internet can send to POST
// /events, in every auth mode, against the real handler. Every case must
// get its own 4xx with its problem slug, never a 5xx, and leave nothing
// behind: no Enqueue call, no status record, no token in the logs.

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/auth/authtest"
	"eventrelay/internal/event"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
)

// The two doors' audiences and the source's service account, as a Cloud
// Run deployment would have them.
const (
	ingestAudience     = "https://ingest-abc123-ew.a.run.app"
	dispatcherAudience = "https://dispatcher-abc123-ew.a.run.app"
	sourceSA           = "source-app@proj.iam.gserviceaccount.com"
)

// newModeHarness is an ingest configured for mode, with fakes around it.
func newModeHarness(tb testing.TB, mode *authtest.Issuer) *harness {
	tb.Helper()
	cfg := testConfig()
	cfg.Auth = mode.Settings
	q, st := &fakeQueue{}, newSpyStore(tb)
	logs := &syncBuffer{}
	ctx := logging.WithLogger(context.Background(), logging.New(logs, logging.Options{Level: "debug"}))
	srv, err := ingest.NewServer(ctx, cfg, q, st, mode.Verifier(tb))
	if err != nil {
		tb.Fatalf("NewServer: %v", err)
	}
	return &harness{srv: srv, handler: srv.Routes(ctx), queue: q, store: st, logs: logs, cfg: cfg}
}

// checkNoSideEffect fails when anything reached the queue or the store.
func (h *harness) checkNoSideEffect(tb testing.TB) {
	tb.Helper()
	if n := h.queue.Calls(); n != 0 {
		tb.Errorf("queue called %d times", n)
	}
	if n := h.store.Creates(); n != 0 {
		tb.Errorf("status store Create called %d times", n)
	}
}

// checkProblem checks code, slug and the problem's shape, and that the
// answer echoes nothing of the request.
func checkProblem(tb testing.TB, code int, body []byte, header http.Header, wantStatus int, wantSlug string, secrets ...string) {
	tb.Helper()
	if code >= 500 {
		tb.Fatalf("status %d (a 5xx) for an attack: %s", code, body)
	}
	if code != wantStatus {
		tb.Fatalf("status %d, want %d: %s", code, wantStatus, body)
	}
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if want := `"type":"` + serving.ProblemTypeBase + wantSlug + `"`; !bytes.Contains(body, []byte(want)) {
		tb.Errorf("body %s, want problem type %s", body, wantSlug)
	}
	if len(body) > 4096 {
		tb.Errorf("problem body is %d bytes; it must not echo the input", len(body))
	}
	for _, s := range secrets {
		if bytes.Contains(body, []byte(s)) {
			tb.Errorf("the answer echoes a secret of the request")
		}
	}
}

func TestAttackTokens(t *testing.T) {
	t.Parallel()
	for _, mode := range authtest.Modes(ingestAudience, sourceSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			h := newModeHarness(t, mode)
			for _, a := range mode.Attacks(t, dispatcherAudience) {
				t.Run(a.Name, func(t *testing.T) {
					req := newRequest(t, eventJSON("attack-1"), func(r *http.Request) {
						r.Header.Del("Authorization")
						for _, v := range a.Authorization {
							r.Header.Add("Authorization", v)
						}
						for k, vs := range a.Header {
							r.Header[k] = vs
						}
					})
					rec := h.do(req)
					checkProblem(t, rec.Code, rec.Body.Bytes(), rec.Header(), a.WantStatus, a.WantSlug, a.Secrets...)
					if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="eventrelay"`) {
						t.Errorf("WWW-Authenticate %q, want a Bearer challenge", rec.Header().Get("WWW-Authenticate"))
					}
					h.checkNoSideEffect(t)
					logs := h.logs.String()
					for _, s := range a.Secrets {
						if strings.Contains(logs, s) {
							t.Errorf("a token (or part of one) is in the logs")
						}
					}
					if !strings.Contains(logs, "request refused") {
						t.Errorf("the refusal was not logged")
					}
				})
			}
			// The harness is not broken: the same door lets the source in.
			rec := h.do(newRequest(t, eventJSON("after-the-attacks"), func(r *http.Request) {
				r.Header.Set("Authorization", mode.ValidAuthorization(t))
			}))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("a valid request after the attacks: %d %s", rec.Code, rec.Body)
			}
			if n := len(h.queue.Tasks()); n != 1 {
				t.Errorf("%d tasks after the attacks and one valid request, want 1", n)
			}
			if strings.Contains(h.logs.String(), strings.TrimPrefix(mode.ValidAuthorization(t), "Bearer ")) {
				t.Error("the valid token is in the logs")
			}
		})
	}
}

// TestAttackTokensAccepted: the ways the source may present its token, in
// each mode, all get in: the attack table refuses forgeries, not the
// source. Behind Cloud Run the token in X-Serverless-Authorization decides,
// whatever Authorization holds.
func TestAttackTokensAccepted(t *testing.T) {
	t.Parallel()
	for _, mode := range authtest.Modes(ingestAudience, sourceSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			for _, a := range mode.Accepts(t) {
				t.Run(a.Name, func(t *testing.T) {
					t.Parallel()
					h := newModeHarness(t, mode)
					rec := h.do(newRequest(t, eventJSON("accepted-1"), func(r *http.Request) {
						r.Header.Del("Authorization")
						for k, vs := range a.Header {
							r.Header[k] = vs
						}
					}))
					if rec.Code != http.StatusAccepted {
						t.Fatalf("status %d, want 202: %s", rec.Code, rec.Body)
					}
					if n := len(h.queue.Tasks()); n != 1 {
						t.Errorf("%d tasks, want 1", n)
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

// gzipBomb is 10 MiB of zeros, gzipped to about 10 KiB.
func gzipBomb(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, 10<<20)); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestAttackBodies(t *testing.T) {
	t.Parallel()
	valid := eventJSON("attack-body")
	tenMiB := `{"id":"big","name":"n","timestamp":1767225600000,"body":"` + strings.Repeat("x", 10<<20) + `"}`
	deepUnknown := `{"id":"deep","name":"n","body":"b","timestamp":1767225600000,"x":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + `}`
	deepBody := `{"id":"deep","name":"n","timestamp":1767225600000,"body":` + strings.Repeat(`{"a":`, 20_000) + `1` + strings.Repeat("}", 20_000) + `}`
	bomb := gzipBomb(t)

	cases := []struct {
		name       string
		method     string // default POST
		path       string // default /events
		body       string
		mod        func(*http.Request)
		wantStatus int
		wantSlug   string
	}{
		{name: "malformed JSON", body: `{"id":"a","name":`, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "truncated body", body: valid[:len(valid)/2], wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "trailing garbage", body: valid + `garbage`, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "a second object", body: valid + valid, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "duplicate keys", body: `{"id":"a","id":"b","name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "duplicate keys differing by escape", body: `{"id":"a","\u0069d":"b","name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "wrong types", body: `{"id":1,"name":["n"],"body":{},"timestamp":true}`, wantStatus: 400, wantSlug: ingest.SlugInvalidEvent},
		{name: "null", body: `null`, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "invalid UTF-8", body: "{\"id\":\"a\",\"name\":\"\xc3\x28\",\"body\":\"b\",\"timestamp\":1767225600000}", wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "lone surrogate escape", body: `{"id":"a","name":"\ud800","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: ingest.SlugInvalidEvent},
		{name: "NUL in the id", body: `{"id":"a\u0000b","name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: ingest.SlugInvalidEvent},
		{name: "byte order mark", body: "\ufeff" + valid, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "deep nesting in an unknown field", body: deepUnknown, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "deep nesting in body", body: deepBody, wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "huge number", body: `{"id":"a","name":"n","body":"b","timestamp":1` + strings.Repeat("0", 400) + `}`, wantStatus: 400, wantSlug: ingest.SlugInvalidEvent},
		{name: "oversized id", body: `{"id":"` + strings.Repeat("i", 10_000) + `","name":"n","body":"b","timestamp":1767225600000}`, wantStatus: 400, wantSlug: ingest.SlugInvalidEvent},
		{name: "10 MiB body", body: tenMiB, wantStatus: 413, wantSlug: ingest.SlugPayloadTooLarge},
		{name: "10 MiB body, chunked (no Content-Length)", body: tenMiB, mod: func(r *http.Request) { r.ContentLength = -1 }, wantStatus: 413, wantSlug: ingest.SlugPayloadTooLarge},
		{name: "gzip bomb with Content-Encoding: gzip", body: string(bomb), mod: func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedContentEncoding},
		{name: "gzip bomb without Content-Encoding (opaque bytes)", body: string(bomb), wantStatus: 400, wantSlug: ingest.SlugMalformedJSON},
		{name: "Content-Encoding: br", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Encoding", "br") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedContentEncoding},
		{name: "wrong content type", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedMediaType},
		{name: "missing content type", body: valid, mod: func(r *http.Request) { r.Header.Del("Content-Type") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedMediaType},
		{name: "form content type", body: "id=a&name=n", mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedMediaType},
		{name: "multipart", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Type", "multipart/form-data; boundary=x") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedMediaType},
		{name: "JSON in another charset", body: valid, mod: func(r *http.Request) { r.Header.Set("Content-Type", "application/json; charset=utf-16") }, wantStatus: 415, wantSlug: ingest.SlugUnsupportedMediaType},
		{name: "GET", method: http.MethodGet, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, body: valid, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "DELETE", method: http.MethodDelete, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "PATCH", method: http.MethodPatch, body: valid, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "OPTIONS", method: http.MethodOptions, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "TRACE", method: http.MethodTrace, wantStatus: 405, wantSlug: ingest.SlugMethodNotAllowed},
		{name: "another path", path: "/admin", body: valid, wantStatus: 404, wantSlug: ingest.SlugNotFound},
		{name: "a path under /events", path: "/events/x", body: valid, wantStatus: 404, wantSlug: ingest.SlugNotFound},
		{name: "dot segments", path: "/x/../events", body: valid, wantStatus: 404, wantSlug: ingest.SlugNotFound},
		{name: "double slash", path: "//events", body: valid, wantStatus: 404, wantSlug: ingest.SlugNotFound},
	}
	for _, mode := range authtest.Modes(ingestAudience, sourceSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			authz := mode.ValidAuthorization(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					h := newModeHarness(t, mode)
					req := newRequest(t, tc.body, func(r *http.Request) {
						r.Header.Set("Authorization", authz)
						if tc.mod != nil {
							tc.mod(r)
						}
					})
					if tc.method != "" {
						req.Method = tc.method
					}
					if tc.path != "" {
						req.URL.Path = tc.path
					}
					rec := h.do(req)
					checkProblem(t, rec.Code, rec.Body.Bytes(), rec.Header(), tc.wantStatus, tc.wantSlug, strings.TrimPrefix(authz, "Bearer "))
					h.checkNoSideEffect(t)
					if tc.wantStatus == 405 && rec.Header().Get("Allow") != http.MethodPost {
						t.Errorf("Allow %q, want POST", rec.Header().Get("Allow"))
					}
					if strings.Contains(h.logs.String(), strings.TrimPrefix(authz, "Bearer ")) {
						t.Error("the token is in the logs")
					}
					if len(tc.body) > 16 && strings.Contains(h.logs.String(), tc.body[:16]) && tc.body[:16] != valid[:16] {
						t.Error("the body is in the logs")
					}
				})
			}
		})
	}
}

// serveIngest runs the real handler behind serving.New on 127.0.0.1:0.
func serveIngest(tb testing.TB, h *harness, to serving.Timeouts) *serving.Server {
	tb.Helper()
	srv, err := serving.New("127.0.0.1:0", to)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h.handler) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// slowClient writes head, then one byte of drip every interval, until the
// server ends the exchange; it returns what the server sent and whether the
// client's own guard (far above any timeout under test) had to end it.
func slowClient(tb testing.TB, addr, head string, drip byte, interval time.Duration) (answer string, elapsed time.Duration, guardHit bool) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	const guard = 30 * time.Second
	_ = conn.SetDeadline(time.Now().Add(guard))
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		tb.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{drip}); err != nil {
					return
				}
			}
		}
	}()
	b, err := io.ReadAll(conn)
	close(stop)
	ne, ok := err.(net.Error)
	return string(b), time.Since(start), ok && ne.Timeout()
}

// TestAttackSlowClients: slow-drip headers (slowloris) and a slow-drip body
// against a real listener are cut off by the server's timeouts, with no
// task and no record, while the source still gets in.
func TestAttackSlowClients(t *testing.T) {
	t.Parallel()
	mode := authtest.Modes(ingestAudience, sourceSA)[0]
	to := serving.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 2 * time.Second, Idle: 2 * time.Second, Shutdown: 2 * time.Second}
	cases := []struct {
		name     string
		head     string
		drip     byte
		atLeast  time.Duration
		wantHead string // the answer starts with it; "" allows no answer
	}{
		{
			name:    "slowloris: headers one byte at a time",
			head:    "POST /events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\nX-Drip: ",
			drip:    'a',
			atLeast: to.ReadHeader,
		},
		{
			name: "slow body after a valid token",
			head: "POST /events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\nAuthorization: " +
				mode.ValidAuthorization(t) + "\r\nContent-Length: 4096\r\n\r\n{",
			drip:     ' ',
			atLeast:  to.Read,
			wantHead: "HTTP/1.1 400",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newModeHarness(t, mode)
			srv := serveIngest(t, h, to)
			answer, elapsed, guardHit := slowClient(t, srv.Addr(), tc.head, tc.drip, 20*time.Millisecond)
			if guardHit {
				t.Fatal("the server never cut the slow client off")
			}
			// The server's deadline starts at accept, a little before the
			// client starts its clock: allow that skew, not a cut-off for
			// another reason (which would come at once).
			if elapsed < tc.atLeast*8/10 {
				t.Errorf("cut off after %v, well before the %v timeout: for another reason?", elapsed, tc.atLeast)
			}
			if strings.HasPrefix(answer, "HTTP/1.1 2") || strings.HasPrefix(answer, "HTTP/1.1 5") {
				t.Errorf("answer %q", firstLine(answer))
			}
			if tc.wantHead != "" && !strings.HasPrefix(answer, tc.wantHead) {
				t.Errorf("answer %q, want %s", firstLine(answer), tc.wantHead)
			}
			h.checkNoSideEffect(t)

			// Meanwhile and after, the source is served.
			req, err := http.NewRequest(http.MethodPost, srv.URL()+ingest.EventsPath, strings.NewReader(eventJSON("after-slow")))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", mode.ValidAuthorization(t))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("the source after a slow client: %d", resp.StatusCode)
			}
		})
	}
}

// TestAttackBigBodyOverTheWire: a 10 MiB upload over a real connection is
// refused from its Content-Length, and chunked it is cut at the limit: the
// server never reads it all.
func TestAttackBigBodyOverTheWire(t *testing.T) {
	t.Parallel()
	mode := authtest.Modes(ingestAudience, sourceSA)[2]
	for _, chunked := range []bool{false, true} {
		name := "with Content-Length"
		if chunked {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newModeHarness(t, mode)
			srv := serveIngest(t, h, serving.Timeouts{})
			payload := `{"id":"big","body":"` + strings.Repeat("x", 10<<20) + `"}`
			// A plain io.Reader hides the length from the client: chunked.
			var body io.Reader = struct{ io.Reader }{strings.NewReader(payload)}
			req, err := http.NewRequest(http.MethodPost, srv.URL()+ingest.EventsPath, body)
			if err != nil {
				t.Fatal(err)
			}
			if !chunked {
				req.ContentLength = int64(len(payload))
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", mode.ValidAuthorization(t))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close the connection before the client has
				// finished writing; that is a refusal too.
				t.Logf("client error (server closed early): %v", err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkProblem(t, resp.StatusCode, b, resp.Header, 413, ingest.SlugPayloadTooLarge)
			}
			h.checkNoSideEffect(t)
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestAttackMaxEventStillAccepted: the limits refuse attacks, not events:
// the largest valid event passes in every mode.
func TestAttackMaxEventStillAccepted(t *testing.T) {
	t.Parallel()
	for _, mode := range authtest.Modes(ingestAudience, sourceSA) {
		t.Run(mode.Name, func(t *testing.T) {
			t.Parallel()
			h := newModeHarness(t, mode)
			body := `{"id":"` + strings.Repeat("i", event.MaxIDBytes) + `","name":"n","timestamp":1767225600000,"body":"` + strings.Repeat("b", event.MaxBodyBytes) + `"}`
			rec := h.do(newRequest(t, body, func(r *http.Request) { r.Header.Set("Authorization", mode.ValidAuthorization(t)) }))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("largest valid event: %d %s", rec.Code, rec.Body)
			}
			if n := len(h.queue.Tasks()); n != 1 {
				t.Errorf("%d tasks, want 1", n)
			}
		})
	}
}
