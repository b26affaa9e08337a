package targetmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/logging"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()

	got, err := LoadConfig(context.Background(), envconfig.MapLookuper(nil))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	want := Config{Port: "8082", Rate: 10, Burst: 1, RateLimitMode: ModeHTTP}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}

	got, err = LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"PORT": "9000", "TARGET_RATE": "2.5", "TARGET_BURST": "3", "TARGET_RATE_LIMIT_MODE": "graphql",
		"TARGET_ERROR_RATIO": "0.25", "TARGET_LATENCY": "20ms", "TARGET_LATENCY_JITTER": "5ms",
		"TARGET_DATA": "/tmp/x.db",
	}))
	if err != nil {
		t.Fatalf("all set: %v", err)
	}
	want = Config{Port: "9000", Rate: 2.5, Burst: 3, RateLimitMode: ModeGraphQL, ErrorRatio: 0.25,
		Latency: 20 * time.Millisecond, LatencyJitter: 5 * time.Millisecond, DataPath: "/tmp/x.db"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("all set (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{name: "zero rate", env: map[string]string{"TARGET_RATE": "0"}, want: []string{"TARGET_RATE"}},
		{name: "infinite rate", env: map[string]string{"TARGET_RATE": "+Inf"}, want: []string{"TARGET_RATE"}},
		{name: "zero burst", env: map[string]string{"TARGET_BURST": "0"}, want: []string{"TARGET_BURST"}},
		{name: "unknown mode", env: map[string]string{"TARGET_RATE_LIMIT_MODE": "grpc"}, want: []string{"TARGET_RATE_LIMIT_MODE"}},
		{name: "ratio above 1", env: map[string]string{"TARGET_ERROR_RATIO": "1.5"}, want: []string{"TARGET_ERROR_RATIO"}},
		{name: "negative latency", env: map[string]string{"TARGET_LATENCY": "-1s"}, want: []string{"TARGET_LATENCY "}},
		{name: "negative jitter", env: map[string]string{"TARGET_LATENCY_JITTER": "-1s"}, want: []string{"TARGET_LATENCY_JITTER"}},
		{name: "empty port", env: map[string]string{"PORT": ""}, want: []string{"PORT"}},
		{
			name: "every problem at once",
			env:  map[string]string{"TARGET_RATE": "-1", "TARGET_BURST": "-1", "TARGET_ERROR_RATIO": "-0.1"},
			want: []string{"TARGET_RATE", "TARGET_BURST", "TARGET_ERROR_RATIO"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(context.Background(), envconfig.MapLookuper(tc.env))
			if err == nil {
				t.Fatal("LoadConfig succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReceiveEventAccepts(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, nil, newFakeClock())

	r := tt.mustReceive(t, validInput("evt-1"))
	if r.ReceiveEvent.ID != "evt-1" || r.ReceiveEvent.Duplicate {
		t.Errorf("receipt = %+v, want id evt-1, duplicate false", *r.ReceiveEvent)
	}
	if want := "2030-01-02T03:04:05Z"; r.ReceiveEvent.ReceivedAt != want {
		t.Errorf("receivedAt = %q, want %q", r.ReceiveEvent.ReceivedAt, want)
	}

	want := []ReceivedEvent{{
		ID: "evt-1", Name: "test event", Body: "test body", Timestamp: "2030-01-02T03:04:05Z",
		Brand: "testBrand", FirstReceivedAt: tt.clock.Now(), Calls: 1,
	}}
	if diff := cmp.Diff(want, tt.events(t)); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}

	var q struct {
		Event *struct {
			ID, Name, Body, Timestamp, Brand, FirstReceivedAt string
			Calls                                             int
		} `json:"event"`
		Missing *struct{ ID string } `json:"missing"`
	}
	tt.query(t, `query($id: ID!) {
		event(id: $id) { id name body timestamp brand firstReceivedAt calls }
		missing: event(id: "nope") { id }
	}`, map[string]any{"id": "evt-1"}, &q)
	if q.Event == nil || q.Event.Brand != "testBrand" || q.Event.Calls != 1 || q.Event.FirstReceivedAt != "2030-01-02T03:04:05Z" {
		t.Errorf("event query = %+v, want evt-1 with brand testBrand, 1 call", q.Event)
	}
	if q.Missing != nil {
		t.Errorf("event(id: nope) = %+v, want null", q.Missing)
	}
	if _, err := tt.srv.Event(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Event(nope) error = %v, want ErrNotFound", err)
	}
}

func TestReceiveEventRejects(t *testing.T) {
	t.Parallel()

	without := func(key string) map[string]any {
		in := validInput("evt-bad")
		delete(in, key)
		return in
	}
	with := func(key string, v any) map[string]any {
		in := validInput("evt-bad")
		in[key] = v
		return in
	}
	cases := []struct {
		name       string
		query      string
		vars       map[string]any
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{name: "empty brand", query: receiveMutation, vars: map[string]any{"in": with("brand", "")},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "brand"},
		{name: "blank brand", query: receiveMutation, vars: map[string]any{"in": with("brand", "  ")},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "brand"},
		{name: "missing brand", query: receiveMutation, vars: map[string]any{"in": without("brand")},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "brand"},
		{name: "null brand", query: receiveMutation, vars: map[string]any{"in": with("brand", nil)},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "brand"},
		{
			name:       "missing brand in a literal",
			query:      `mutation { receiveEvent(input: {id: "evt-bad", name: "n", body: "b", timestamp: "2030-01-02T03:04:05Z"}) { id } }`,
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "brand",
		},
		{name: "timestamp not RFC 3339", query: receiveMutation, vars: map[string]any{"in": with("timestamp", "1700000000000")},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "timestamp"},
		{name: "empty id", query: receiveMutation, vars: map[string]any{"in": with("id", "")},
			wantStatus: 200, wantCode: CodeBadUserInput, wantField: "id"},
		{name: "missing name (schema validation)", query: receiveMutation, vars: map[string]any{"in": without("name")},
			wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED"},
		{name: "wrong type (schema validation)", query: receiveMutation, vars: map[string]any{"in": with("body", map[string]any{"text": "b"})},
			wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := newTarget(t, nil, newFakeClock())

			res := tt.graphql(t, tc.query, tc.vars, nil)
			if res.status != tc.wantStatus || res.gql.code() != tc.wantCode {
				t.Fatalf("HTTP %d code %q, want %d %q: %s", res.status, res.gql.code(), tc.wantStatus, tc.wantCode, res.body)
			}
			if tc.wantField != "" {
				e := res.gql.Errors[0]
				if e.Extensions["field"] != tc.wantField {
					t.Errorf("extensions.field = %v, want %q", e.Extensions["field"], tc.wantField)
				}
				if diff := cmp.Diff([]any{"receiveEvent"}, e.Path); diff != "" {
					t.Errorf("path (-want +got):\n%s", diff)
				}
				if string(res.gql.Data) != "null" {
					t.Errorf("data = %s, want null", res.gql.Data)
				}
			}
			if evs := tt.events(t); len(evs) != 0 {
				t.Errorf("Events = %+v, want none (no side effect)", evs)
			}
			st := tt.stats(t)
			if st.Rejected != 1 || st.Calls != 1 || st.DistinctEvents != 0 {
				t.Errorf("Stats = %+v, want 1 call, rejected", st)
			}
		})
	}
}

func TestReceiveEventDuplicate(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), newFakeClock())

	first := tt.mustReceive(t, validInput("evt-1"))
	tt.clock.Advance(1500 * time.Millisecond)
	changed := validInput("evt-1")
	changed["body"] = "another body"
	for i := range 2 {
		r := tt.mustReceive(t, changed)
		if !r.ReceiveEvent.Duplicate {
			t.Errorf("call %d: duplicate = false, want true", i+2)
		}
		if r.ReceiveEvent.ReceivedAt != first.ReceiveEvent.ReceivedAt {
			t.Errorf("call %d: receivedAt = %q, want the first call's %q", i+2, r.ReceiveEvent.ReceivedAt, first.ReceiveEvent.ReceivedAt)
		}
	}

	evs := tt.events(t)
	if len(evs) != 1 || evs[0].Body != "test body" || evs[0].Calls != 3 {
		t.Errorf("Events = %+v, want one event with the first body and 3 calls", evs)
	}
	st := tt.stats(t)
	want := Stats{Calls: 3, Accepted: 1, Duplicates: 2, DistinctEvents: 1, MaxAcceptedPerSecond: 1, MaxCallsPerSecond: 2}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestReceiveEventConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), nil)

	const n = 40
	body, err := json.Marshal(map[string]any{"query": receiveMutation, "variables": map[string]any{"in": validInput("evt-same")}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := make([]string, n)
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(tt.url+"/graphql", "application/json", bytes.NewReader(body))
			if err != nil {
				answers[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = string(b)
		})
	}
	wg.Wait()
	firsts := 0
	for i, a := range answers {
		switch {
		case strings.Contains(a, `"duplicate":false`):
			firsts++
		case !strings.Contains(a, `"duplicate":true`):
			t.Errorf("call %d answered %s, want a receipt", i, a)
		}
	}
	if firsts != 1 {
		t.Errorf("%d calls answered duplicate=false, want exactly 1", firsts)
	}
	st := tt.stats(t)
	if st.Accepted != 1 || st.Duplicates != n-1 || st.DistinctEvents != 1 {
		t.Errorf("Stats = %+v, want 1 accepted, %d duplicates, 1 event", st, n-1)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()

	cases := []struct {
		name           string
		env            map[string]string
		wantStatus     int
		wantRetryAfter string // header; "" = absent
		wantSeconds    float64
	}{
		{name: "http mode", env: map[string]string{"TARGET_RATE": "1"},
			wantStatus: http.StatusTooManyRequests, wantRetryAfter: "1", wantSeconds: 1},
		{name: "http mode, slow refill rounds up", env: map[string]string{"TARGET_RATE": "0.2"},
			wantStatus: http.StatusTooManyRequests, wantRetryAfter: "5", wantSeconds: 5},
		{name: "http mode, fast refill is at least 1s", env: map[string]string{"TARGET_RATE": "50"},
			wantStatus: http.StatusTooManyRequests, wantRetryAfter: "1", wantSeconds: 1},
		{name: "graphql mode", env: map[string]string{"TARGET_RATE": "1", "TARGET_RATE_LIMIT_MODE": "graphql"},
			wantStatus: http.StatusOK, wantSeconds: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := newTarget(t, tc.env, newFakeClock())

			tt.mustReceive(t, validInput("evt-1"))
			res := tt.receive(t, validInput("evt-2"), nil)
			if res.status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %s", res.status, tc.wantStatus, res.body)
			}
			if got := res.header.Get("Retry-After"); got != tc.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.wantRetryAfter)
			}
			want := []gqlRespError{{Message: "rate limited", Extensions: map[string]any{
				"code": CodeRateLimited, "retryAfterSeconds": tc.wantSeconds,
			}}}
			if diff := cmp.Diff(want, res.gql.Errors); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if _, err := tt.srv.Event(context.Background(), "evt-2"); !errors.Is(err, ErrNotFound) {
				t.Errorf("rate-limited evt-2 was stored (err %v): want no side effect", err)
			}

			// Queries are never limited, even with the bucket empty.
			for range 3 {
				var q struct{ Stats Stats }
				tt.query(t, `{ stats { calls rateLimited } }`, nil, &q)
				if q.Stats.RateLimited != 1 {
					t.Errorf("stats.rateLimited = %d, want 1", q.Stats.RateLimited)
				}
			}

			// A token is due after Retry-After; the retried call is accepted.
			tt.clock.Advance(time.Duration(tc.wantSeconds * float64(time.Second)))
			if r := tt.mustReceive(t, validInput("evt-2")); r.ReceiveEvent.Duplicate {
				t.Error("retried evt-2 answered duplicate, want first acceptance")
			}
			st := tt.stats(t)
			if st.Accepted != 2 || st.RateLimited != 1 || st.Calls != 3 {
				t.Errorf("Stats = %+v, want 2 accepted, 1 rate limited, 3 calls", st)
			}
		})
	}
}

func TestRateLimitBurst(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, map[string]string{"TARGET_RATE": "2", "TARGET_BURST": "3"}, newFakeClock())

	next := 0
	outcomes := func(n int) []int {
		var got []int
		for range n {
			next++
			got = append(got, tt.receive(t, validInput(eventID(next)), nil).status)
		}
		return got
	}
	if diff := cmp.Diff([]int{200, 200, 200, 429}, outcomes(4)); diff != "" {
		t.Errorf("full bucket of 3 (-want +got):\n%s", diff)
	}
	tt.clock.Advance(time.Second) // 2 tokens at 2/s
	if diff := cmp.Diff([]int{200, 200, 429}, outcomes(3)); diff != "" {
		t.Errorf("after 1s (-want +got):\n%s", diff)
	}

	if err := tt.srv.SetRate(1, 1); err != nil {
		t.Fatalf("SetRate: %v", err)
	}
	tt.clock.Advance(10 * time.Second) // the bucket holds only 1 now
	if diff := cmp.Diff([]int{200, 429}, outcomes(2)); diff != "" {
		t.Errorf("after SetRate(1, 1) (-want +got):\n%s", diff)
	}
	if err := tt.srv.SetRate(0, 1); err == nil {
		t.Error("SetRate(0, 1) succeeded, want an error")
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited("TARGET_ERROR_RATIO", "1"), newFakeClock())

	for range 3 {
		res := tt.receive(t, validInput("evt-1"), nil)
		if res.status != http.StatusInternalServerError || res.gql.code() != CodeInternal {
			t.Fatalf("HTTP %d code %q, want 500 %s: %s", res.status, res.gql.code(), CodeInternal, res.body)
		}
	}
	if evs := tt.events(t); len(evs) != 0 {
		t.Errorf("Events = %+v, want none after faults", evs)
	}

	if err := tt.srv.SetErrorRatio(0); err != nil {
		t.Fatalf("SetErrorRatio: %v", err)
	}
	if r := tt.mustReceive(t, validInput("evt-1")); r.ReceiveEvent.Duplicate {
		t.Error("evt-1 answered duplicate after only faults, want first acceptance")
	}
	st := tt.stats(t)
	if st.Faults != 3 || st.Accepted != 1 || st.DistinctEvents != 1 {
		t.Errorf("Stats = %+v, want 3 faults, 1 accepted", st)
	}
	if err := tt.srv.SetErrorRatio(1.01); err == nil {
		t.Error("SetErrorRatio(1.01) succeeded, want an error")
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), nil)

	const d = 60 * time.Millisecond
	if err := tt.srv.SetLatency(d); err != nil {
		t.Fatalf("SetLatency: %v", err)
	}
	if err := tt.srv.SetLatencyJitter(10 * time.Millisecond); err != nil {
		t.Fatalf("SetLatencyJitter: %v", err)
	}
	start := time.Now()
	tt.mustReceive(t, validInput("evt-1"))
	if got := time.Since(start); got < d {
		t.Errorf("call took %s, want at least the %s latency", got, d)
	}
	if err := tt.srv.SetLatency(-time.Second); err == nil {
		t.Error("SetLatency(-1s) succeeded, want an error")
	}
}

func TestHeadersRecorded(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, map[string]string{"TARGET_RATE": "1"}, newFakeClock())

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	h := map[string]string{"traceparent": tp, "Idempotency-Key": "evt-1"}
	tt.receive(t, validInput("evt-1"), h) // accepted
	tt.receive(t, validInput("evt-1"), h) // rate limited
	tt.receive(t, validInput("evt-2"), nil)

	at := tt.clock.Now()
	want := []Call{
		{EventID: "evt-1", At: at, Outcome: OutcomeAccepted, Brand: "testBrand", Traceparent: tp, IdempotencyKey: "evt-1"},
		{EventID: "evt-1", At: at, Outcome: OutcomeRateLimited, Brand: "testBrand", Traceparent: tp, IdempotencyKey: "evt-1"},
		{EventID: "evt-2", At: at, Outcome: OutcomeRateLimited, Brand: "testBrand"},
	}
	got, err := tt.srv.Calls(context.Background(), CallFilter{})
	if err != nil {
		t.Fatalf("Calls: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}

	type gqlCall struct {
		EventID        string  `json:"eventId"`
		At             string  `json:"at"`
		Outcome        string  `json:"outcome"`
		Brand          string  `json:"brand"`
		Traceparent    *string `json:"traceparent"`
		IdempotencyKey *string `json:"idempotencyKey"`
	}
	var q struct {
		One  []gqlCall `json:"one"`
		Last []gqlCall `json:"last"`
	}
	tt.query(t, `{
		one: calls(eventId: "evt-1") { eventId at outcome brand traceparent idempotencyKey }
		last: calls(limit: 1) { eventId traceparent idempotencyKey }
	}`, nil, &q)
	key, tpv := "evt-1", tp
	wantOne := []gqlCall{
		{EventID: "evt-1", At: "2030-01-02T03:04:05Z", Outcome: "accepted", Brand: "testBrand", Traceparent: &tpv, IdempotencyKey: &key},
		{EventID: "evt-1", At: "2030-01-02T03:04:05Z", Outcome: "rate_limited", Brand: "testBrand", Traceparent: &tpv, IdempotencyKey: &key},
	}
	if diff := cmp.Diff(wantOne, q.One); diff != "" {
		t.Errorf("calls(eventId: evt-1) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]gqlCall{{EventID: "evt-1", Traceparent: &tpv, IdempotencyKey: &key}}, q.Last); diff != "" {
		t.Errorf("calls(limit: 1) (-want +got):\n%s", diff)
	}

	res := tt.graphql(t, `{ calls(limit: 0) { eventId } }`, nil, nil)
	if res.gql.code() != CodeBadUserInput {
		t.Errorf("calls(limit: 0) code %q, want %s: %s", res.gql.code(), CodeBadUserInput, res.body)
	}
}

func TestStatsAndPerSecond(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, map[string]string{"TARGET_RATE": "2", "TARGET_BURST": "3"}, newFakeClock())
	t0 := tt.clock.Now()

	// Second 0: 3 accepted (the burst), then 2 rate limited.
	for i := range 5 {
		tt.receive(t, validInput(eventID(i)), nil)
	}
	// Second 1: 1 duplicate, 1 accepted, 1 rejected (empty brand), 1 rate limited.
	tt.clock.Advance(1200 * time.Millisecond) // 2.4 tokens
	tt.receive(t, validInput(eventID(0)), nil)
	tt.receive(t, validInput(eventID(10)), nil)
	bad := validInput(eventID(11))
	bad["brand"] = ""
	tt.clock.Advance(500 * time.Millisecond) // 0.4 + 1 tokens
	tt.receive(t, bad, nil)
	tt.receive(t, validInput(eventID(12)), nil)
	// Second 3: 1 fault.
	tt.clock.Advance(2 * time.Second)
	if err := tt.srv.SetErrorRatio(1); err != nil {
		t.Fatal(err)
	}
	tt.receive(t, validInput(eventID(13)), nil)

	wantStats := Stats{Calls: 10, Accepted: 4, Duplicates: 1, RateLimited: 3, Rejected: 1, Faults: 1,
		DistinctEvents: 4, MaxAcceptedPerSecond: 3, MaxCallsPerSecond: 5}
	if diff := cmp.Diff(wantStats, tt.stats(t)); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	s0 := t0.Unix()
	wantSecs := []SecondCount{{s0, 5, 3}, {s0 + 1, 4, 1}, {s0 + 3, 1, 0}}
	got, err := tt.srv.PerSecond(context.Background())
	if err != nil {
		t.Fatalf("PerSecond: %v", err)
	}
	if diff := cmp.Diff(wantSecs, got); diff != "" {
		t.Errorf("PerSecond (-want +got):\n%s", diff)
	}

	var q struct {
		Stats     map[string]int `json:"stats"`
		PerSecond []struct {
			Second, Calls, Accepted int64
		} `json:"perSecond"`
	}
	tt.query(t, `{
		stats { calls accepted duplicates rateLimited rejected faults distinctEvents maxAcceptedPerSecond maxCallsPerSecond }
		perSecond { second calls accepted }
	}`, nil, &q)
	wantQ := map[string]int{"calls": 10, "accepted": 4, "duplicates": 1, "rateLimited": 3, "rejected": 1, "faults": 1,
		"distinctEvents": 4, "maxAcceptedPerSecond": 3, "maxCallsPerSecond": 5}
	if diff := cmp.Diff(wantQ, q.Stats); diff != "" {
		t.Errorf("stats query (-want +got):\n%s", diff)
	}
	if len(q.PerSecond) != 3 || q.PerSecond[0].Second != s0 || q.PerSecond[0].Calls != 5 || q.PerSecond[0].Accepted != 3 {
		t.Errorf("perSecond query = %+v, want 3 seconds starting %d with 5 calls, 3 accepted", q.PerSecond, s0)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "targetmock.db")
	cfg := Config{Port: "0", Rate: 1, Burst: 1, RateLimitMode: ModeHTTP, DataPath: path}
	ctx := context.Background()

	first := newTargetFromConfig(t, cfg, newFakeClock())
	r1 := first.mustReceive(t, validInput("evt-1"))
	first.receive(t, validInput("evt-2"), nil) // rate limited
	if err := first.srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := newTargetFromConfig(t, cfg, newFakeClock())
	r2 := second.mustReceive(t, validInput("evt-1"))
	if !r2.ReceiveEvent.Duplicate || r2.ReceiveEvent.ReceivedAt != r1.ReceiveEvent.ReceivedAt {
		t.Errorf("after restart evt-1 receipt = %+v, want duplicate with the first receivedAt %q", *r2.ReceiveEvent, r1.ReceiveEvent.ReceivedAt)
	}
	want := Stats{Calls: 3, Accepted: 1, Duplicates: 1, RateLimited: 1, DistinctEvents: 1,
		MaxAcceptedPerSecond: 1, MaxCallsPerSecond: 3}
	if diff := cmp.Diff(want, second.stats(t)); diff != "" {
		t.Errorf("Stats after restart (-want +got):\n%s", diff)
	}
	calls, err := second.srv.Calls(ctx, CallFilter{EventID: "evt-1"})
	if err != nil {
		t.Fatalf("Calls: %v", err)
	}
	got := make([]Outcome, 0, len(calls))
	for _, c := range calls {
		got = append(got, c.Outcome)
	}
	if diff := cmp.Diff([]Outcome{OutcomeAccepted, OutcomeDuplicate}, got); diff != "" {
		t.Errorf("evt-1 outcomes after restart (-want +got):\n%s", diff)
	}
}

func TestUnsupportedRequests(t *testing.T) {
	t.Parallel()

	in := func(id string) string {
		return `{id: "` + id + `", name: "n", body: "b", timestamp: "2030-01-02T03:04:05Z", brand: "testBrand"}`
	}
	cases := []struct {
		name  string
		body  string
		ctype string
		// wantStatus and wantCode describe the answer; wantStored the side effect.
		wantStatus int
		wantCode   string
		wantStored int
	}{
		{
			name:       "batch",
			body:       `[{"query":"mutation { receiveEvent(input: ` + strings.ReplaceAll(in("a"), `"`, `\"`) + `) { id } }"}]`,
			wantStatus: 400, wantCode: CodeBadRequest,
		},
		{
			name:       "two aliased receiveEvent fields",
			body:       gqlBody(`mutation { a: receiveEvent(input: ` + in("a") + `) { id } b: receiveEvent(input: ` + in("b") + `) { id } }`),
			wantStatus: 400, wantCode: CodeBadRequest,
		},
		{
			name: "second receiveEvent hidden in a fragment",
			body: gqlBody(`mutation { a: receiveEvent(input: ` + in("a") + `) { id } ...F }
				fragment F on Mutation { b: receiveEvent(input: ` + in("b") + `) { id } }`),
			wantStatus: 400, wantCode: CodeBadRequest,
		},
		{
			name:       "directive on receiveEvent",
			body:       gqlBody(`mutation { receiveEvent(input: ` + in("a") + `) @include(if: true) { id } }`),
			wantStatus: 400, wantCode: CodeBadRequest,
		},
		{
			name:       "one aliased receiveEvent is fine",
			body:       gqlBody(`mutation { ack: receiveEvent(input: ` + in("a") + `) { id } }`),
			wantStatus: 200, wantStored: 1,
		},
		{
			name:       "receiveEvent through an inline fragment is fine",
			body:       gqlBody(`mutation { ... on Mutation { receiveEvent(input: ` + in("a") + `) { id } } }`),
			wantStatus: 200, wantStored: 1,
		},
		{
			name:       "operationName selects the mutation",
			body:       `{"operationName":"M","query":"query Q { stats { calls } } mutation M { receiveEvent(input: ` + strings.ReplaceAll(in("a"), `"`, `\"`) + `) { id } }"}`,
			wantStatus: 200, wantStored: 1,
		},
		{
			name:       "several operations without operationName",
			body:       gqlBody(`query Q { stats { calls } } mutation M { receiveEvent(input: ` + in("a") + `) { id } }`),
			wantStatus: 422, wantCode: "GRAPHQL_VALIDATION_FAILED",
		},
		{
			name:       "not JSON",
			body:       `{"query":`,
			wantStatus: 400,
		},
		{
			name:       "wrong content type",
			body:       gqlBody(`mutation { receiveEvent(input: ` + in("a") + `) { id } }`),
			ctype:      "text/plain",
			wantStatus: 400,
		},
		{
			name:       "body too large",
			body:       gqlBody(`mutation { receiveEvent(input: ` + in(strings.Repeat("x", MaxRequestBytes)) + `) { id } }`),
			wantStatus: 413, wantCode: CodeTooLarge,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tt := newTarget(t, unlimited(), newFakeClock())
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			res := tt.postRaw(t, "/graphql", ctype, []byte(tc.body), nil)
			if res.status != tc.wantStatus {
				t.Fatalf("HTTP %d, want %d: %.300s", res.status, tc.wantStatus, res.body)
			}
			if tc.wantCode != "" && res.gql.code() != tc.wantCode {
				t.Errorf("code %q, want %q: %.300s", res.gql.code(), tc.wantCode, res.body)
			}
			if got := len(tt.events(t)); got != tc.wantStored {
				t.Errorf("%d events stored, want %d", got, tc.wantStored)
			}
		})
	}
}

func gqlBody(query string) string {
	b, _ := json.Marshal(map[string]string{"query": query})
	return string(b)
}

func TestLimitSeesThroughFragments(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, map[string]string{"TARGET_RATE": "1"}, newFakeClock())
	tt.mustReceive(t, validInput("evt-1")) // takes the only token

	query := `mutation($in: EventInput!) { ...F } fragment F on Mutation { receiveEvent(input: $in) { id } }`
	res := tt.graphql(t, query, map[string]any{"in": validInput("evt-2")}, nil)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d, want 429 for receiveEvent inside a fragment: %s", res.status, res.body)
	}
	calls, err := tt.srv.Calls(context.Background(), CallFilter{EventID: "evt-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Outcome != OutcomeRateLimited || calls[0].Brand != "testBrand" {
		t.Errorf("calls for evt-2 = %+v, want one rate_limited call with its brand", calls)
	}
}

func TestAdminFaults(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, nil, newFakeClock())

	res := tt.postRaw(t, "/admin/faults", "application/json",
		[]byte(`{"errorRatio":1,"malformedRatio":0.25,"latency":"5ms","rate":20,"burst":4,"rateLimitMode":"graphql"}`), nil)
	if res.status != http.StatusOK {
		t.Fatalf("POST /admin/faults: HTTP %d %s", res.status, res.body)
	}
	want := Knobs{Rate: 20, Burst: 4, RateLimitMode: ModeGraphQL, ErrorRatio: 1, MalformedRatio: 0.25, Latency: 5 * time.Millisecond}
	if diff := cmp.Diff(want, tt.srv.Knobs()); diff != "" {
		t.Errorf("Knobs (-want +got):\n%s", diff)
	}
	if r := tt.receive(t, validInput("evt-1"), nil); r.status != http.StatusInternalServerError {
		t.Errorf("receiveEvent with errorRatio 1: HTTP %d, want 500", r.status)
	}

	resp, err := http.Get(tt.url + "/admin/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	wantJSON := map[string]any{"rate": 20.0, "burst": 4.0, "rateLimitMode": "graphql", "errorRatio": 1.0,
		"malformedRatio": 0.25, "latency": "5ms", "latencyJitter": "0s"}
	if diff := cmp.Diff(wantJSON, got); diff != "" {
		t.Errorf("GET /admin/faults (-want +got):\n%s", diff)
	}

	cases := []struct {
		name       string
		ctype      string
		body       string
		wantStatus int
		wantType   string
	}{
		{name: "ratio out of range", ctype: "application/json", body: `{"errorRatio":2}`, wantStatus: 400, wantType: "invalid-knobs"},
		{name: "malformed ratio out of range", ctype: "application/json", body: `{"malformedRatio":-1}`, wantStatus: 400, wantType: "invalid-knobs"},
		{name: "bad duration", ctype: "application/json", body: `{"latency":"soon"}`, wantStatus: 400, wantType: "invalid-knobs"},
		{name: "unknown field", ctype: "application/json", body: `{"errorRate":1}`, wantStatus: 400, wantType: "malformed-knobs"},
		{name: "not JSON", ctype: "text/plain", body: `errorRatio=1`, wantStatus: 415, wantType: "unsupported-media-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := tt.postRaw(t, "/admin/faults", tc.ctype, []byte(tc.body), nil)
			var p struct{ Type string }
			_ = json.Unmarshal(res.body, &p)
			if res.status != tc.wantStatus || !strings.HasSuffix(p.Type, "/"+tc.wantType) ||
				res.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("HTTP %d %s %s, want %d problem %s", res.status, res.header.Get("Content-Type"), res.body, tc.wantStatus, tc.wantType)
			}
		})
	}
	// Rejected updates change nothing.
	if diff := cmp.Diff(want, tt.srv.Knobs()); diff != "" {
		t.Errorf("Knobs after rejected updates (-want +got):\n%s", diff)
	}
}

func TestHealthAndMethods(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, nil, nil)

	cases := []struct {
		name       string
		method     string
		path       string
		wantStatus int
	}{
		{name: "health", method: http.MethodGet, path: "/health", wantStatus: 200},
		{name: "GET graphql", method: http.MethodGet, path: "/graphql?query=%7Bstats%7Bcalls%7D%7D", wantStatus: 405},
		{name: "unknown path", method: http.MethodGet, path: "/nope", wantStatus: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, tt.url+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.wantStatus)
			}
		})
	}
}

func TestNewServerWarnsItIsATestDouble(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	ctx := logging.WithLogger(context.Background(), logging.New(&buf, logging.Options{}))
	srv, err := NewServer(ctx, Config{Port: "0", Rate: 1, Burst: 1, RateLimitMode: ModeHTTP})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var line struct{ Severity, Message string }
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("startup log %q: %v", buf.String(), err)
	}
	if line.Severity != "WARNING" || !strings.Contains(line.Message, "TEST DOUBLE") {
		t.Errorf("startup log = %+v, want a WARNING that targetmock is a test double", line)
	}

	if _, err := NewServer(ctx, Config{}); err == nil {
		t.Error("NewServer with an invalid Config succeeded, want an error")
	}
}
