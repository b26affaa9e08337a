package targetmock

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/logging"
)

// fakeClock is the clock tests give the Server so that the token bucket and
// the per-second counts are deterministic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testTarget is a Server behind a real HTTP listener.
type testTarget struct {
	srv   *Server
	url   string
	clock *fakeClock
}

// newTarget starts a target configured from env (over the defaults), with a
// fake clock when clock is non-nil.
func newTarget(tb testing.TB, env map[string]string, clock *fakeClock) *testTarget {
	tb.Helper()
	ctx := context.Background()
	cfg, err := LoadConfig(ctx, envconfig.MapLookuper(env))
	if err != nil {
		tb.Fatalf("LoadConfig: %v", err)
	}
	return newTargetFromConfig(tb, cfg, clock)
}

func newTargetFromConfig(tb testing.TB, cfg Config, clock *fakeClock) *testTarget {
	tb.Helper()
	// The startup warning and call logs would drown the test output.
	ctx := logging.WithLogger(context.Background(), slog.New(slog.DiscardHandler))
	srv, err := NewServer(ctx, cfg)
	if err != nil {
		tb.Fatalf("NewServer: %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	if clock != nil {
		srv.now = clock.Now
		// The limiter's bucket starts full at whatever time it first sees.
		srv.limiter.SetLimitAt(clock.Now(), srv.limiter.Limit())
	}
	hs := httptest.NewServer(srv.Routes(ctx))
	tb.Cleanup(hs.Close)
	return &testTarget{srv: srv, url: hs.URL, clock: clock}
}

// gqlResponse is a GraphQL response body.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlRespError  `json:"errors"`
}

type gqlRespError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// httpResult is one HTTP exchange with the target.
type httpResult struct {
	status int
	header http.Header
	body   []byte
	gql    gqlResponse
}

// postRaw posts body to path with the given content type and headers.
func (tt *testTarget) postRaw(tb testing.TB, path, contentType string, body []byte, headers map[string]string) httpResult {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, tt.url+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	res := httpResult{status: resp.StatusCode, header: resp.Header, body: b}
	if path == "/graphql" && len(b) > 0 {
		if err := json.Unmarshal(b, &res.gql); err != nil {
			tb.Fatalf("response is not GraphQL JSON: %v: %s", err, b)
		}
	}
	return res
}

// graphql posts one GraphQL request.
func (tt *testTarget) graphql(tb testing.TB, query string, vars map[string]any, headers map[string]string) httpResult {
	tb.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return tt.postRaw(tb, "/graphql", "application/json", body, headers)
}

const receiveMutation = `mutation Receive($in: EventInput!) {
  receiveEvent(input: $in) { id duplicate receivedAt }
}`

// validInput is an event as the dispatcher sends it.
func validInput(id string) map[string]any {
	return map[string]any{
		"id":        id,
		"name":      "test event",
		"body":      "test body",
		"timestamp": "2030-01-02T03:04:05Z",
		"brand":     "testBrand",
	}
}

// receipt is the data of a receiveEvent answer.
type receipt struct {
	ReceiveEvent *struct {
		ID         string `json:"id"`
		Duplicate  bool   `json:"duplicate"`
		ReceivedAt string `json:"receivedAt"`
	} `json:"receiveEvent"`
}

// receive sends one receiveEvent call with in as its input variable.
func (tt *testTarget) receive(tb testing.TB, in map[string]any, headers map[string]string) httpResult {
	tb.Helper()
	return tt.graphql(tb, receiveMutation, map[string]any{"in": in}, headers)
}

// mustAccept sends in and fails unless the call succeeded; it returns the
// receipt.
func (tt *testTarget) mustReceive(tb testing.TB, in map[string]any) receipt {
	tb.Helper()
	res := tt.receive(tb, in, nil)
	if res.status != http.StatusOK || len(res.gql.Errors) > 0 {
		tb.Fatalf("receiveEvent: HTTP %d %s", res.status, res.body)
	}
	var r receipt
	if err := json.Unmarshal(res.gql.Data, &r); err != nil || r.ReceiveEvent == nil {
		tb.Fatalf("receiveEvent data %s: %v", res.gql.Data, err)
	}
	return r
}

// query runs a GraphQL query and decodes its data into out.
func (tt *testTarget) query(tb testing.TB, query string, vars map[string]any, out any) {
	tb.Helper()
	res := tt.graphql(tb, query, vars, nil)
	if res.status != http.StatusOK || len(res.gql.Errors) > 0 {
		tb.Fatalf("query: HTTP %d %s", res.status, res.body)
	}
	if err := json.Unmarshal(res.gql.Data, out); err != nil {
		tb.Fatalf("decode %s: %v", res.gql.Data, err)
	}
}

func (tt *testTarget) stats(tb testing.TB) Stats {
	tb.Helper()
	st, err := tt.srv.Stats(context.Background())
	if err != nil {
		tb.Fatalf("Stats: %v", err)
	}
	return st
}

func (tt *testTarget) events(tb testing.TB) []ReceivedEvent {
	tb.Helper()
	evs, err := tt.srv.Events(context.Background())
	if err != nil {
		tb.Fatalf("Events: %v", err)
	}
	return evs
}

// unlimited is the env of a target whose limit never bites.
func unlimited(extra ...string) map[string]string {
	env := map[string]string{"TARGET_RATE": "1000000", "TARGET_BURST": "1000000"}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func eventID(i int) string { return fmt.Sprintf("evt-%06d", i) }
