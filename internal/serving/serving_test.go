package serving

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/logging"
)

// hangGuard bounds every raw-connection test so that a server that never
// cuts a client off fails the test instead of hanging it. It is far above
// every timeout under test.
const hangGuard = 30 * time.Second

func TestDefaultTimeoutsAreAllSet(t *testing.T) {
	t.Parallel()
	d := Timeouts{}.withDefaults()
	for name, v := range map[string]time.Duration{
		"ReadHeader": d.ReadHeader, "Read": d.Read, "Write": d.Write, "Idle": d.Idle, "Shutdown": d.Shutdown,
	} {
		if v <= 0 {
			t.Errorf("default %s timeout is %v: every timeout must be set", name, v)
		}
	}
	if d.ReadHeader > d.Read {
		t.Errorf("ReadHeader %v > Read %v", d.ReadHeader, d.Read)
	}
	// Set values are kept.
	if got := (Timeouts{ReadHeader: time.Second}).withDefaults().ReadHeader; got != time.Second {
		t.Errorf("ReadHeader = %v, want the value set", got)
	}
}

// startServer serves h on 127.0.0.1:0 with t's timeouts until the test ends.
func startServer(tb testing.TB, to Timeouts, h http.Handler) *Server {
	tb.Helper()
	srv, err := New("127.0.0.1:0", to)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// dripResult is how a dripping client's connection ended.
type dripResult struct {
	elapsed  time.Duration
	response string // what the server sent, if anything
	written  int    // drips written before the end
	guardHit bool   // the client's own guard fired: the server never cut it off
}

// drip opens a connection, writes head at once, then one byte of drip
// every interval until the server ends the exchange (closes, or answers),
// and reports how it ended.
func drip(tb testing.TB, addr, head string, dripByte byte, interval time.Duration) dripResult {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(hangGuard)); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		tb.Fatal(err)
	}
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{dripByte}); err != nil {
					return
				}
				written.Add(1)
			}
		}
	})
	b, err := io.ReadAll(conn)
	close(stop)
	wg.Wait()
	var ne net.Error
	return dripResult{
		elapsed:  time.Since(start),
		response: string(b),
		written:  int(written.Load()),
		guardHit: errors.As(err, &ne) && ne.Timeout(),
	}
}

// TestSlowloris: a client sending its headers one byte at a time is cut
// off once ReadHeader has passed, however steadily it keeps sending, and
// never reaches the handler.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	to := Timeouts{ReadHeader: 300 * time.Millisecond, Read: 2 * time.Second, Write: 2 * time.Second, Idle: 2 * time.Second, Shutdown: time.Second}
	srv := startServer(t, to, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))

	res := drip(t, srv.Addr(), "POST /events HTTP/1.1\r\nHost: x\r\nX-Slow: ", 'a', 20*time.Millisecond)
	if res.guardHit {
		t.Fatalf("the server never cut the dripping client off (guard of %v hit)", hangGuard)
	}
	// The server's deadline starts at accept, a little before the client
	// starts its clock: allow that skew, not a cut-off for another reason
	// (which would come at once).
	if res.elapsed < to.ReadHeader*8/10 {
		t.Errorf("cut off after %v, well before ReadHeader %v: for another reason?", res.elapsed, to.ReadHeader)
	}
	if res.response != "" && !strings.HasPrefix(res.response, "HTTP/1.1 408") {
		t.Errorf("answer %q, want nothing or a 408", res.response)
	}
	if res.written == 0 {
		t.Error("no byte was dripped: the test did not exercise a slow client")
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("handler ran %d times for headers that never finished", n)
	}
	// The server still serves everyone else.
	resp, err := http.Get(srv.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("a normal request after the slow one: %d", resp.StatusCode)
	}
}

// TestSlowBody: a client that sends its headers and then drips its body is
// cut off once Read has passed; the handler's read fails instead of
// waiting forever.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	to := Timeouts{ReadHeader: time.Second, Read: 500 * time.Millisecond, Write: 2 * time.Second, Idle: 2 * time.Second, Shutdown: time.Second}
	srv := startServer(t, to, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			WriteProblem(w, http.StatusBadRequest, "unreadable-body", "Unreadable body", "", nil)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	head := "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
	res := drip(t, srv.Addr(), head, ' ', 20*time.Millisecond)
	if res.guardHit {
		t.Fatalf("the server never cut the dripping body off (guard of %v hit)", hangGuard)
	}
	if res.elapsed < to.Read*8/10 { // the same accept-to-first-byte skew
		t.Errorf("cut off after %v, well before Read %v", res.elapsed, to.Read)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("the handler read the whole dripped body")
		}
	default:
		t.Error("the handler never returned from reading")
	}
	if strings.HasPrefix(res.response, "HTTP/1.1 2") {
		t.Errorf("answer %q, want no 2xx", res.response)
	}
}

// TestHugeHeaders: more than MaxHeaderBytes of headers is a 431, and the
// handler never runs.
func TestHugeHeaders(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	srv := startServer(t, Timeouts{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
	}))
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(hangGuard))
	big := strings.Repeat("a", 128<<10)
	go func() {
		_, _ = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("handler ran %d times", n)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		handler    http.HandlerFunc
		wantStatus int  // 0: the connection is aborted
		wantBody   bool // a problem body
	}{
		{name: "panic before answering", handler: func(http.ResponseWriter, *http.Request) { panic("boom: secret-token-value") }, wantStatus: 500, wantBody: true},
		{name: "panic with an error", handler: func(http.ResponseWriter, *http.Request) { panic(errors.New("bad")) }, wantStatus: 500, wantBody: true},
		{name: "panic after answering", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("01234"))
			panic("late")
		}},
		{name: "no panic", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, wantStatus: 204},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var mu sync.Mutex
			logger := logging.New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }), logging.Options{})
			h := Recover(tc.handler)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r.WithContext(logging.WithLogger(r.Context(), logger)))
			}))
			t.Cleanup(srv.Close)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader("body-must-not-be-logged"))
			req.Header.Set("Authorization", "Bearer header-must-not-be-logged")
			resp, err := srv.Client().Do(req)
			if tc.wantStatus == 0 {
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil {
						t.Fatalf("a panic after the answer started gave a complete answer %d %q", resp.StatusCode, b)
					}
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
				}
				if tc.wantBody {
					var p Problem
					if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
						t.Fatal(err)
					}
					if p.Type != ProblemTypeBase+SlugInternal || resp.Header.Get("Content-Type") != "application/problem+json" {
						t.Errorf("problem %+v (%s), want %s", p, resp.Header.Get("Content-Type"), SlugInternal)
					}
					if strings.Contains(p.Detail+p.Title, "secret") {
						t.Errorf("the panic value leaked into the answer: %+v", p)
					}
				}
			}
			srv.Close() // flush the handler's log lines
			mu.Lock()
			out := logs.String()
			mu.Unlock()
			if (tc.wantStatus != 204) != strings.Contains(out, "handler panicked") {
				t.Errorf("panic logged = %v, want %v; logs: %s", strings.Contains(out, "handler panicked"), tc.wantStatus != 204, out)
			}
			for _, secret := range []string{"body-must-not-be-logged", "header-must-not-be-logged"} {
				if strings.Contains(out, secret) {
					t.Errorf("logs contain %q: %s", secret, out)
				}
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRecoverReraisesAbort(t *testing.T) {
	t.Parallel()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler re-raised", v)
		}
	}()
	Recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })).
		ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Error("the abort was swallowed")
}

func TestRecoverKeepsFlushing(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	Recover(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through Recover: %v", err)
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the writer Recover passes on is not an http.Flusher")
		}
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !rec.Flushed || rec.Code != http.StatusAccepted {
		t.Errorf("flushed %v, code %d", rec.Flushed, rec.Code)
	}
}

func TestFallbackRoutes(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("POST /tasks", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	mux.Handle("/tasks", MethodNotAllowed(http.MethodPost))
	mux.Handle("/", NotFound())
	cases := []struct {
		method, path string
		wantStatus   int
		wantSlug     string
		wantAllow    string
	}{
		{method: "POST", path: "/tasks", wantStatus: 204},
		{method: "GET", path: "/tasks", wantStatus: 405, wantSlug: SlugMethodNotAllowed, wantAllow: "POST"},
		{method: "DELETE", path: "/tasks", wantStatus: 405, wantSlug: SlugMethodNotAllowed, wantAllow: "POST"},
		{method: "GET", path: "/nope", wantStatus: 404, wantSlug: SlugNotFound},
		{method: "POST", path: "/tasks/x", wantStatus: 404, wantSlug: SlugNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantSlug == "" {
				return
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type != ProblemTypeBase+tc.wantSlug || p.Status != tc.wantStatus {
				t.Errorf("body %q (%v), want a %s problem", rec.Body, err, tc.wantSlug)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
		})
	}
}

func TestIsJSON(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"application/json":                   true,
		"application/json; charset=utf-8":    true,
		"Application/JSON; charset=UTF-8":    true,
		"application/json;charset=\"utf-8\"": true,
		"":                                   false,
		"text/plain":                         false,
		"application/json; charset=latin1":   false,
		"application/json; charset":          false,
		"application/jsonx":                  false,
		"application/x-www-form-urlencoded":  false,
		"multipart/form-data; boundary=x":    false,
		"application/problem+json":           false,
	}
	for ct, want := range cases {
		if got := IsJSON(ct); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestIsEncoded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"identity"}, false},
		{[]string{"Identity"}, false},
		{[]string{"gzip"}, true},
		{[]string{"identity, gzip"}, true},
		{[]string{"identity", "br"}, true},
		{[]string{"deflate"}, true},
	}
	for _, tc := range cases {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("Content-Encoding", v)
		}
		if got := IsEncoded(h); got != tc.want {
			t.Errorf("IsEncoded(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
	rec := httptest.NewRecorder()
	RefuseEncoded(rec)
	if rec.Code != http.StatusUnsupportedMediaType || rec.Header().Get("Accept-Encoding") != "identity" ||
		!strings.Contains(rec.Body.String(), SlugUnsupportedContentEncoding) {
		t.Errorf("RefuseEncoded: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestCanonicalPaths(t *testing.T) {
	t.Parallel()
	h := CanonicalPaths(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	cases := map[string]int{
		"/events":        204,
		"/":              204,
		"/tasks/":        204,
		"/events/../x":   404,
		"/./events":      404,
		"//events":       404,
		"/events/":       204,
		"/a/b/../../etc": 404,
	}
	for p, want := range cases {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", p, rec.Code, want)
		}
		if want == 404 && !strings.Contains(rec.Body.String(), SlugNotFound) {
			t.Errorf("%s: body %s, want a not-found problem", p, rec.Body)
		}
	}
}
