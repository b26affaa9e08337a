package sourcemock_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	"golang.org/x/oauth2"

	"eventrelay/internal/serving"
	"eventrelay/internal/sourcemock"
)

func functionConfig(ingestURL string) sourcemock.FunctionConfig {
	return sourcemock.FunctionConfig{
		IngestURL:   ingestURL,
		Token:       "static-token",
		MaxCount:    100,
		MaxRate:     500,
		MaxDuration: 2 * time.Second,
		Concurrency: 8,
		Deadline:    testDeadline,
	}
}

// call runs one request through h and returns the recorder.
func call(tb testing.TB, h http.Handler, method, contentType, body string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequestWithContext(tb.Context(), method, "/", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerSends(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	h := sourcemock.Handler(functionConfig(in.srv.URL), nil, nil)
	rec := call(t, h, http.MethodPost, "application/json; charset=utf-8", `{"count": 7, "rate": 200}`)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q, body %s; want 200 application/json", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var sum sourcemock.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
		t.Fatalf("body %s is not a Summary: %v", rec.Body, err)
	}
	events, _, auth, _ := in.snapshot()
	if sum.Sent != 7 || sum.OK != 7 || len(sum.Accepted) != 7 || len(events) != 7 {
		t.Errorf("summary %+v and %d events at ingest, want 7 sent, ok and accepted", sum, len(events))
	}
	for _, a := range auth {
		if a != "Bearer static-token" {
			t.Errorf("Authorization = %q, want the configured token", a)
		}
	}
}

func TestHandlerBurst(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	h := sourcemock.Handler(functionConfig(in.srv.URL), nil, nil)
	rec := call(t, h, http.MethodPost, "application/json", `{"count": 6, "burst": 3, "burst_interval": "50ms"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", rec.Code, rec.Body)
	}
	var sum sourcemock.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.OK != 6 || sum.Elapsed < 50*time.Millisecond {
		t.Errorf("summary %+v, want 6 ok over at least one interval", sum)
	}
}

func TestHandlerRejects(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	h := sourcemock.Handler(functionConfig(in.srv.URL), nil, nil)
	cases := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
		slug        string
	}{
		{name: "GET", method: http.MethodGet, status: 405, slug: "method-not-allowed"},
		{name: "no content type", method: http.MethodPost, body: `{"count":1,"rate":1}`, status: 415, slug: "unsupported-media-type"},
		{name: "form", method: http.MethodPost, contentType: "application/x-www-form-urlencoded", body: "count=1", status: 415, slug: "unsupported-media-type"},
		{name: "syntax error", method: http.MethodPost, contentType: "application/json", body: `{"count":`, status: 400, slug: "malformed-request"},
		{name: "unknown field", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"rate":1,"speed":9}`, status: 400, slug: "malformed-request"},
		{name: "wrong type", method: http.MethodPost, contentType: "application/json", body: `{"count":"1","rate":1}`, status: 400, slug: "malformed-request"},
		{name: "trailing data", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"rate":1} {}`, status: 400, slug: "malformed-request"},
		{name: "too large", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"rate":1,"x":"` + strings.Repeat("a", 5000) + `"}`, status: 413, slug: "too-large"},
		{name: "count zero", method: http.MethodPost, contentType: "application/json", body: `{"count":0,"rate":1}`, status: 400, slug: "invalid-request"},
		{name: "count over the limit", method: http.MethodPost, contentType: "application/json", body: `{"count":101,"rate":100}`, status: 400, slug: "invalid-request"},
		{name: "no rate", method: http.MethodPost, contentType: "application/json", body: `{"count":1}`, status: 400, slug: "invalid-request"},
		{name: "rate over the limit", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"rate":501}`, status: 400, slug: "invalid-request"},
		{name: "negative burst", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"burst":-1,"rate":1}`, status: 400, slug: "invalid-request"},
		{name: "bad burst interval", method: http.MethodPost, contentType: "application/json", body: `{"count":1,"burst":1,"burst_interval":"soon"}`, status: 400, slug: "invalid-request"},
		{name: "longer than allowed", method: http.MethodPost, contentType: "application/json", body: `{"count":100,"rate":10}`, status: 400, slug: "invalid-request"},
		{name: "bursts longer than allowed", method: http.MethodPost, contentType: "application/json", body: `{"count":10,"burst":1,"burst_interval":"1s"}`, status: 400, slug: "invalid-request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := call(t, h, tc.method, tc.contentType, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, body %s; want %d", rec.Code, rec.Body, tc.status)
			}
			var p serving.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("body %s (%q) is not a problem: %v", rec.Body, rec.Header().Get("Content-Type"), err)
			}
			if p.Type != serving.ProblemTypeBase+tc.slug || p.Status != tc.status {
				t.Errorf("problem type %q status %d, want %q %d", p.Type, p.Status, serving.ProblemTypeBase+tc.slug, tc.status)
			}
		})
	}
	if events, _, _, _ := in.snapshot(); len(events) != 0 {
		t.Errorf("rejected requests sent %d events", len(events))
	}
}

func TestFunctionFromEnv(t *testing.T) {
	t.Parallel()
	t.Run("configured", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		h := sourcemock.FunctionFromEnv(envconfig.MapLookuper(map[string]string{"INGEST_URL": in.srv.URL, "TOKEN": "env-token"}))
		rec := call(t, h, http.MethodPost, "application/json", `{"count":2,"rate":100}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, body %s; want 200", rec.Code, rec.Body)
		}
		_, _, auth, _ := in.snapshot()
		if diff := cmp.Diff([]string{"Bearer env-token", "Bearer env-token"}, auth); diff != "" {
			t.Errorf("Authorization headers (-want +got):\n%s", diff)
		}
	})
	t.Run("misconfigured", func(t *testing.T) {
		t.Parallel()
		h := sourcemock.FunctionFromEnv(envconfig.MapLookuper(map[string]string{"MAX_COUNT": "0"}))
		for range 2 { // the answer does not change on a second call
			rec := call(t, h, http.MethodPost, "application/json", `{"count":1,"rate":1}`)
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "INGEST_URL") || !strings.Contains(rec.Body.String(), "MAX_COUNT") {
				t.Errorf("status %d body %s; want 500 naming INGEST_URL and MAX_COUNT", rec.Code, rec.Body)
			}
		}
	})
}

func TestFunctionConfig(t *testing.T) {
	t.Parallel()
	got, err := sourcemock.NewFunctionConfig(t.Context(), envconfig.MapLookuper(map[string]string{"INGEST_URL": "https://ingest.example.com"}))
	if err != nil {
		t.Fatalf("NewFunctionConfig: %v", err)
	}
	want := sourcemock.FunctionConfig{
		IngestURL: "https://ingest.example.com", MaxCount: 10000, MaxRate: 1000,
		MaxDuration: 5 * time.Minute, Concurrency: 64, Deadline: 500 * time.Millisecond,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	bad := sourcemock.FunctionConfig{MaxRate: -1}
	err = bad.Validate()
	for _, w := range []string{"INGEST_URL", "MAX_COUNT", "MAX_RATE", "MAX_DURATION", "SOURCE_CONCURRENCY", "SOURCE_DEADLINE"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to name %s", err, w)
		}
	}
}

func TestStaticTokenEmpty(t *testing.T) {
	t.Parallel()
	if sourcemock.StaticToken("") != nil {
		t.Errorf("StaticToken(\"\") is not nil: an empty bearer token would be sent")
	}
	in := newIngest(t, nil)
	cfg := functionConfig(in.srv.URL)
	cfg.Token = ""
	if rec := call(t, sourcemock.Handler(cfg, nil, nil), http.MethodPost, "application/json", `{"count":1,"rate":1}`); rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if _, _, auth, _ := in.snapshot(); len(auth) != 1 || auth[0] != "" {
		t.Errorf("Authorization headers %q, want none", auth)
	}
}

// tokenSourceFunc is an oauth2.TokenSource from a func.
type tokenSourceFunc func() (*oauth2.Token, error)

func (f tokenSourceFunc) Token() (*oauth2.Token, error) { return f() }

// fakeIDTokens stands in for the metadata server: it records the audiences
// and contexts sources are made with, and serves tok (or fails).
type fakeIDTokens struct {
	mu        sync.Mutex
	audiences []string
	ctxs      []context.Context
	made      int
	failMake  int // fail this many makes first
	tokErr    error
	tok       string
}

func (f *fakeIDTokens) newSource(ctx context.Context, audience string) (oauth2.TokenSource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audiences = append(f.audiences, audience)
	f.ctxs = append(f.ctxs, ctx)
	if f.failMake > 0 {
		f.failMake--
		return nil, errors.New("metadata server unreachable")
	}
	f.made++
	return tokenSourceFunc(func() (*oauth2.Token, error) {
		if f.tokErr != nil {
			return nil, f.tokErr
		}
		return &oauth2.Token{AccessToken: f.tok, TokenType: "bearer"}, nil
	}), nil
}

const ingestAudience = "https://ingest.eventrelay.internal"

func idTokenConfig(ingestURL string) sourcemock.FunctionConfig {
	cfg := functionConfig(ingestURL)
	cfg.Token = ""
	cfg.TokenAudience = ingestAudience
	return cfg
}

// TestHandlerMintsIDTokens: deployed without TOKEN, the function sends an
// ID token for TOKEN_AUDIENCE on every request, from one token source.
func TestHandlerMintsIDTokens(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	ids := &fakeIDTokens{tok: "google-signed-id-token"}
	cfg := idTokenConfig(in.srv.URL)
	rec := call(t, sourcemock.Handler(cfg, cfg.TokenFunc(ids.newSource), nil), http.MethodPost, "application/json", `{"count": 5, "rate": 200}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s; want 200", rec.Code, rec.Body)
	}
	_, _, auth, _ := in.snapshot()
	want := []string{"Bearer google-signed-id-token", "Bearer google-signed-id-token", "Bearer google-signed-id-token", "Bearer google-signed-id-token", "Bearer google-signed-id-token"}
	if diff := cmp.Diff(want, auth); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{ingestAudience}, ids.audiences); diff != "" {
		t.Errorf("token sources made for (-want +got):\n%s", diff)
	}
	if strings.Contains(rec.Body.String(), "google-signed-id-token") {
		t.Errorf("the answer carries the token: %s", rec.Body)
	}
}

// TestHandlerIDTokenFailures: no token means no events, a 502, and the next
// call tries to make the source again.
func TestHandlerIDTokenFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		ids      *fakeIDTokens
		wantText string
	}{
		{name: "source cannot be made", ids: &fakeIDTokens{failMake: 1, tok: "t"}, wantText: "metadata server unreachable"},
		{name: "token refused", ids: &fakeIDTokens{tokErr: errors.New("identity endpoint: 403"), tok: "t"}, wantText: "identity endpoint: 403"},
		{name: "empty token", ids: &fakeIDTokens{}, wantText: "empty token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newIngest(t, nil)
			cfg := idTokenConfig(in.srv.URL)
			h := sourcemock.Handler(cfg, cfg.TokenFunc(tc.ids.newSource), nil)
			rec := call(t, h, http.MethodPost, "application/json", `{"count": 2, "rate": 100}`)
			if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "token-unavailable") || !strings.Contains(rec.Body.String(), tc.wantText) {
				t.Fatalf("status %d, body %s; want 502 token-unavailable naming %q", rec.Code, rec.Body, tc.wantText)
			}
			if events, _, _, _ := in.snapshot(); len(events) != 0 {
				t.Errorf("%d events sent without a token", len(events))
			}
		})
	}
	t.Run("source made on the next call", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		ids := &fakeIDTokens{failMake: 1, tok: "second-try"}
		cfg := idTokenConfig(in.srv.URL)
		h := sourcemock.Handler(cfg, cfg.TokenFunc(ids.newSource), nil)
		if rec := call(t, h, http.MethodPost, "application/json", `{"count": 1, "rate": 1}`); rec.Code != http.StatusBadGateway {
			t.Fatalf("first call: status %d, want 502", rec.Code)
		}
		if rec := call(t, h, http.MethodPost, "application/json", `{"count": 1, "rate": 1}`); rec.Code != http.StatusOK {
			t.Fatalf("second call: status %d, body %s; want 200", rec.Code, rec.Body)
		}
		if _, _, auth, _ := in.snapshot(); len(auth) != 1 || auth[0] != "Bearer second-try" {
			t.Errorf("Authorization headers %q, want the second source's token", auth)
		}
	})
}

// TestIDTokenContexts: the source outlives the call that made it (it
// refreshes tokens later), and a call whose context ends returns even when
// the source does not answer.
func TestIDTokenContexts(t *testing.T) {
	t.Parallel()
	t.Run("source outlives the first call", func(t *testing.T) {
		t.Parallel()
		ids := &fakeIDTokens{tok: "t"}
		tok := sourcemock.IDToken(ingestAudience, ids.newSource)
		ctx, cancel := context.WithCancel(t.Context())
		if _, err := tok(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := ids.ctxs[0].Err(); err != nil {
			t.Errorf("the token source's context ended with the call: %v", err)
		}
		if _, err := tok(t.Context()); err != nil || ids.made != 1 {
			t.Errorf("second call: err %v, %d sources made; want the first source reused", err, ids.made)
		}
	})
	t.Run("a stuck source does not hold the call", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		stuck := func(context.Context, string) (oauth2.TokenSource, error) {
			return tokenSourceFunc(func() (*oauth2.Token, error) {
				<-release
				return nil, errors.New("released")
			}), nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := sourcemock.IDToken(ingestAudience, stuck)(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// TestTokenFunc: TOKEN wins for local runs, TOKEN_AUDIENCE mints, neither
// sends nothing.
func TestTokenFunc(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		token     string
		audience  string
		want      string // "" with wantNil
		wantNil   bool
		wantMints bool
	}{
		{name: "static", token: "local-token", want: "local-token"},
		{name: "minted", audience: ingestAudience, want: "minted", wantMints: true},
		{name: "none", wantNil: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ids := &fakeIDTokens{tok: "minted"}
			cfg := sourcemock.FunctionConfig{Token: tc.token, TokenAudience: tc.audience}
			f := cfg.TokenFunc(ids.newSource)
			if tc.wantNil {
				if f != nil {
					t.Fatal("TokenFunc is not nil: a token would be sent")
				}
				return
			}
			got, err := f(t.Context())
			if err != nil || got != tc.want {
				t.Errorf("token %q, %v; want %q", got, err, tc.want)
			}
			if minted := len(ids.audiences) > 0; minted != tc.wantMints {
				t.Errorf("token source made: %v, want %v", minted, tc.wantMints)
			}
		})
	}
}

func TestFunctionConfigTokenAudience(t *testing.T) {
	t.Parallel()
	got, err := sourcemock.NewFunctionConfig(t.Context(), envconfig.MapLookuper(map[string]string{
		"INGEST_URL": "https://ingest.example.com", "TOKEN_AUDIENCE": ingestAudience,
	}))
	if err != nil || got.TokenAudience != ingestAudience || got.Token != "" {
		t.Fatalf("NewFunctionConfig = %+v, %v; want TokenAudience %q and no Token", got, err, ingestAudience)
	}
	cases := []struct {
		name string
		cfg  sourcemock.FunctionConfig
		want string
	}{
		{name: "both", cfg: sourcemock.FunctionConfig{Token: "t", TokenAudience: ingestAudience}, want: "not both"},
		{name: "spaces", cfg: sourcemock.FunctionConfig{TokenAudience: " " + ingestAudience}, want: "surrounding spaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := functionConfig("https://ingest.example.com")
			c.Token, c.TokenAudience = tc.cfg.Token, tc.cfg.TokenAudience
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
