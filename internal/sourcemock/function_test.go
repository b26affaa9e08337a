package sourcemock_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

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
