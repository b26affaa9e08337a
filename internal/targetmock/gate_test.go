package targetmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/logging"
)

// TestGateOnGqlgenErrorPath: a receiveEvent call whose variables do not fit
// the schema is refused by gqlgen after it selected the operation; the gate
// still limits, faults and records it, from gqlgen's error path.
func TestGateOnGqlgenErrorPath(t *testing.T) {
	t.Parallel()

	noName := validInput("evt-x")
	delete(noName, "name")
	noBrandLiteral := `mutation { receiveEvent(input: {id: "evt-x", name: "n", body: "b", timestamp: "2030-01-02T03:04:05Z"}) { id } }`
	cases := []struct {
		name        string
		env         map[string]string
		query       string
		vars        map[string]any
		wantStatus  int
		wantCode    string
		wantOutcome Outcome
		wantDetail  string
	}{
		{name: "variables refused by gqlgen", env: unlimited(), query: receiveMutation, vars: map[string]any{"in": noName},
			wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED", wantOutcome: OutcomeRejected,
			wantDetail: "graphql request refused before the resolver: HTTP 422"},
		{name: "variables refused by gqlgen, over the limit", env: map[string]string{"TARGET_RATE": "0.001"},
			query: receiveMutation, vars: map[string]any{"in": noName},
			wantStatus: 429, wantCode: CodeRateLimited, wantOutcome: OutcomeRateLimited},
		{name: "variables refused by gqlgen, fault", env: unlimited("TARGET_ERROR_RATIO", "1"),
			query: receiveMutation, vars: map[string]any{"in": noName},
			wantStatus: 500, wantCode: CodeInternal, wantOutcome: OutcomeFault, wantDetail: "injected fault"},
		{name: "literal without brand, over the limit", env: map[string]string{"TARGET_RATE": "0.001"}, query: noBrandLiteral,
			wantStatus: 429, wantCode: CodeRateLimited, wantOutcome: OutcomeRateLimited},
		{name: "literal without brand", env: unlimited(), query: noBrandLiteral,
			wantStatus: 200, wantCode: CodeBadUserInput, wantOutcome: OutcomeRejected, wantDetail: "brand is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := newTarget(t, tc.env, newFakeClock())
			if tc.wantOutcome == OutcomeRateLimited {
				tt.srv.admit(tt.clock.Now()) // empty the bucket
			}
			res := tt.graphql(t, tc.query, tc.vars, nil)
			if res.status != tc.wantStatus || res.gql.code() != tc.wantCode {
				t.Fatalf("HTTP %d code %q, want %d %q: %s", res.status, res.gql.code(), tc.wantStatus, tc.wantCode, res.body)
			}
			if want := tc.wantStatus == 429; (res.header.Get("Retry-After") != "") != want {
				t.Errorf("Retry-After %q, want one only with a 429", res.header.Get("Retry-After"))
			}
			calls, err := tt.srv.Calls(context.Background(), CallFilter{})
			if err != nil {
				t.Fatal(err)
			}
			want := []Call{{EventID: "evt-x", At: tt.clock.Now(), Outcome: tc.wantOutcome, Detail: tc.wantDetail}}
			if vars, ok := tc.vars["in"].(map[string]any); ok {
				want[0].Brand, _ = vars["brand"].(string)
			}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBadRequestsAreClear4xx: requests gqlgen cannot take are answered by
// gqlgen (through the target's error presenter) with a 4xx, before any
// limit or fault, and are not calls.
func TestBadRequestsAreClear4xx(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name       string
		ctype      string
		body       string
		wantStatus int
		wantCode   string
	}{
		{name: "not JSON", ctype: "application/json", body: `{"query":`, wantStatus: 400, wantCode: CodeBadRequest},
		{name: "empty body", ctype: "application/json", body: ``, wantStatus: 400, wantCode: CodeBadRequest},
		{name: "batch", ctype: "application/json", body: `[` + gqlBody(receiveMutation) + `]`, wantStatus: 400, wantCode: CodeBadRequest},
		{name: "wrong content type", ctype: "text/plain", body: gqlBody(receiveMutation), wantStatus: 400},
		{name: "unknown operation", ctype: "application/json",
			body: `{"operationName":"X","query":"mutation M { receiveEvent(input: {}) { id } }"}`, wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED"},
		{name: "document refused by gqlgen", ctype: "application/json",
			body:       gqlBody(`mutation { receiveEvent(input: {id: "a", name: "n", body: "b", timestamp: "t", brand: "b"}) { nope } }`),
			wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// An empty bucket and every call faulted: neither may show.
			tt := newTarget(t, map[string]string{"TARGET_RATE": "0.001", "TARGET_ERROR_RATIO": "1"}, newFakeClock())
			tt.srv.admit(tt.clock.Now())
			res := tt.postRaw(t, "/graphql", tc.ctype, []byte(tc.body), nil)
			if res.status != tc.wantStatus || res.gql.code() != tc.wantCode {
				t.Errorf("HTTP %d code %q, want %d %q: %.300s", res.status, res.gql.code(), tc.wantStatus, tc.wantCode, res.body)
			}
			if st := tt.stats(t); st.Calls != 0 {
				t.Errorf("Stats = %+v, want no call recorded", st)
			}
		})
	}
}

// errBody is a request body that fails while being read.
type errBody struct{}

func (errBody) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
func (errBody) Close() error             { return nil }

func TestUnreadableBody(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), nil)
	ctx := logging.WithLogger(context.Background(), slog.New(slog.DiscardHandler))
	req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	req.Body = errBody{}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	tt.srv.Routes(ctx).ServeHTTP(rec, req)

	var got gqlResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	want := []gqlRespError{{Message: "cannot read request body", Extensions: map[string]any{"code": CodeBadRequest}}}
	if rec.Code != http.StatusBadRequest {
		t.Errorf("HTTP %d, want 400", rec.Code)
	}
	if diff := cmp.Diff(want, got.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestRecoverPanic(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ctx := logging.WithLogger(context.Background(), logging.New(&buf, logging.Options{}))

	err := recoverPanic(ctx, "boom")
	var gotErr struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	b, _ := json.Marshal(err)
	if jerr := json.Unmarshal(b, &gotErr); jerr != nil {
		t.Fatalf("presented error %s: %v", b, jerr)
	}
	if gotErr.Message != "internal system error" || gotErr.Extensions["code"] != CodeInternal {
		t.Errorf("error = %s, want internal system error with code %s", b, CodeInternal)
	}
	var line struct{ Severity, Message, Panic, Stack string }
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line.Severity != "ERROR" || line.Panic != "boom" || !strings.Contains(line.Stack, "recoverPanic") {
		t.Errorf("log = %+v, want an ERROR with the panic and its stack", line)
	}
}

// FuzzGraphQL feeds arbitrary bodies through the whole GraphQL path: every
// answer is JSON with a status the target documents, never a 5xx (no fault
// is injected), and one request is at most one call.
func FuzzGraphQL(f *testing.F) {
	f.Add([]byte(gqlBody(receiveMutation)))
	f.Add([]byte(`{"query":"mutation($in: EventInput!) { receiveEvent(input: $in) { id } }","variables":{"in":{"id":7,"brand":"b"}}}`))
	f.Add([]byte(`[{"query":"{ stats { calls } }"}]`))
	f.Add([]byte(gqlBody(`mutation { ...F } fragment F on Mutation { ...F receiveEvent(input: [1, {a: $x}]) { id } }`)))
	f.Add([]byte(`{"query":"mutation { receiveEvent(input: {id: \"a\", name: \"n\", body: \"b\", timestamp: \"2030-01-02T03:04:05Z\", brand: \"b\"}) { id } }"}`))
	tt := newTarget(f, map[string]string{"TARGET_RATE": "5", "TARGET_BURST": "2"}, nil)
	ctx := logging.WithLogger(context.Background(), slog.New(slog.DiscardHandler))
	h := tt.srv.Routes(ctx)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := tt.stats(t).Calls
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 413, 422, 429:
		default:
			t.Fatalf("HTTP %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer to %q is not JSON: %s", body, rec.Body)
		}
		if after := tt.stats(t).Calls; after-before > 1 {
			t.Fatalf("%q recorded %d calls, want at most 1", body, after-before)
		}
	})
}
