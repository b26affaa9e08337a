package sourcemock_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/event"
	"eventrelay/internal/sourcemock"
)

// testDeadline is generous so that a loaded machine answers the fast cases
// in time; the late cases are answered at twice it.
const testDeadline = time.Second

// ingest is a fake ingest that answers each request as answer says and
// records what it saw.
type ingest struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(n int, id string) (status int, delay time.Duration)

	mu       sync.Mutex
	n        int
	events   []event.Event
	answered map[string]int // id → status answered without delay
	auth     []string
	inFlight int
	maxIn    int
}

func newIngest(tb testing.TB, answer func(n int, id string) (int, time.Duration)) *ingest {
	tb.Helper()
	in := &ingest{t: tb, answer: answer, answered: map[string]int{}}
	in.srv = httptest.NewServer(http.HandlerFunc(in.serve))
	tb.Cleanup(in.srv.Close)
	return in
}

func (in *ingest) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/events" || r.Header.Get("Content-Type") != "application/json" {
		in.t.Errorf("request %s %s with Content-Type %q, want POST /events application/json", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	data, _ := io.ReadAll(r.Body)
	e, err := event.Parse(data)
	if err != nil {
		in.t.Errorf("sourcemock sent an invalid event %s: %v", data, err)
		http.Error(w, "invalid", http.StatusBadRequest)
		return
	}
	in.mu.Lock()
	n := in.n
	in.n++
	in.events = append(in.events, e)
	in.auth = append(in.auth, r.Header.Get("Authorization"))
	in.inFlight++
	in.maxIn = max(in.maxIn, in.inFlight)
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		in.inFlight--
		in.mu.Unlock()
	}()

	status, delay := http.StatusAccepted, time.Duration(0)
	if in.answer != nil {
		status, delay = in.answer(n, e.ID)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	} else {
		in.mu.Lock()
		in.answered[e.ID] = status
		in.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (in *ingest) snapshot() (events []event.Event, answered map[string]int, auth []string, maxIn int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.events), in.answered, slices.Clone(in.auth), in.maxIn
}

func newSender(tb testing.TB, cfg sourcemock.Config, token func(context.Context) (string, error)) *sourcemock.Sender {
	tb.Helper()
	if cfg.Deadline == 0 {
		cfg.Deadline = testDeadline
	}
	s, err := sourcemock.NewSender(cfg, token, nil)
	if err != nil {
		tb.Fatalf("NewSender: %v", err)
	}
	return s
}

func run(tb testing.TB, s *sourcemock.Sender) sourcemock.Summary {
	tb.Helper()
	sum, err := s.Run(tb.Context())
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return sum
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	// Request n: 0 → 202, 1 → 202 after the deadline, 2 → 503, 3 → 400,
	// 4 → 200, then again.
	in := newIngest(t, func(n int, _ string) (int, time.Duration) {
		switch n % 5 {
		case 1:
			return http.StatusAccepted, 2 * testDeadline
		case 2:
			return http.StatusServiceUnavailable, 0
		case 3:
			return http.StatusBadRequest, 0
		case 4:
			return http.StatusOK, 0
		default:
			return http.StatusAccepted, 0
		}
	})
	// The answer depends on arrival order only, so the counts do not depend
	// on concurrency; the late ones wait for the deadline side by side.
	s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 200, Count: 15, Concurrency: 15}, sourcemock.StaticToken("tok"))
	sum := run(t, s)

	if sum.Sent != 15 || sum.OK != 6 || sum.Late != 3 || sum.Errors != 0 || sum.InFlight != 0 {
		t.Errorf("summary = %+v, want sent 15, ok 6, late 3, errors 0, in flight 0", sum)
	}
	if diff := cmp.Diff(map[int]int{503: 3, 400: 3}, sum.Non2xx); diff != "" {
		t.Errorf("non-2xx by status (-want +got):\n%s", diff)
	}
	if sum.Failed() != 9 {
		t.Errorf("Failed() = %d, want 9", sum.Failed())
	}
	// Accepted is exactly the ids ingest answered 2xx in time.
	_, answered, _, _ := in.snapshot()
	var want []string
	for id, status := range answered {
		if status >= 200 && status < 300 {
			want = append(want, id)
		}
	}
	if diff := cmp.Diff(want, sum.Accepted, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("accepted ids (-ingest answered 2xx +sender recorded):\n%s", diff)
	}
	if sum.Max < testDeadline {
		t.Errorf("max latency %v, want at least the deadline %v (the late answers)", sum.Max, testDeadline)
	}
	if !(sum.P50 <= sum.P90 && sum.P90 <= sum.P99 && sum.P99 <= sum.Max) {
		t.Errorf("percentiles out of order: p50 %v p90 %v p99 %v max %v", sum.P50, sum.P90, sum.P99, sum.Max)
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	before := time.Now().Truncate(time.Millisecond)
	s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL + "/", Rate: 500, Count: 20}, sourcemock.StaticToken("secret-token"))
	sum := run(t, s)
	after := time.Now()

	events, _, auth, _ := in.snapshot()
	if len(events) != 20 || sum.OK != 20 {
		t.Fatalf("ingest got %d events, sender counted %d ok; want 20 and 20", len(events), sum.OK)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i, e := range events {
		if !uuid.MatchString(e.ID) {
			t.Errorf("id %q is not a random UUID", e.ID)
		}
		if seen[e.ID] {
			t.Errorf("id %q sent twice", e.ID)
		}
		seen[e.ID] = true
		if e.Name != "test event" || e.Body != "test body" {
			t.Errorf("event name %q body %q, want the example event's", e.Name, e.Body)
		}
		if e.Timestamp.Before(before) || e.Timestamp.After(after) {
			t.Errorf("timestamp %v not within the run [%v, %v]", e.Timestamp, before, after)
		}
		if auth[i] != "Bearer secret-token" {
			t.Errorf("Authorization = %q, want the bearer token", auth[i])
		}
	}
}

func TestNewEventWireForm(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 14, 16, 9, 26, 535897932, time.FixedZone("CET", 3600))
	id, body := sourcemock.NewEvent(now)
	var wire map[string]any
	if err := json.Unmarshal(body, &wire); err != nil {
		t.Fatalf("event %s is not JSON: %v", body, err)
	}
	want := map[string]any{"id": id, "name": "test event", "body": "test body", "timestamp": "2026-03-14T15:09:26.535Z"}
	if diff := cmp.Diff(want, wire); diff != "" {
		t.Errorf("event wire form (-want +got):\n%s", diff)
	}
	if other, _ := sourcemock.NewEvent(now); other == id {
		t.Errorf("two events share the id %q", id)
	}
}

func TestRateIsALowerBound(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  sourcemock.Config
		// min is the least time the schedule allows.
		min time.Duration
	}{
		{name: "steady", cfg: sourcemock.Config{Rate: 50, Count: 11}, min: 200 * time.Millisecond},
		{name: "bursts", cfg: sourcemock.Config{Burst: 4, BurstInterval: 100 * time.Millisecond, Count: 12}, min: 200 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newIngest(t, nil)
			tc.cfg.IngestURL = in.srv.URL
			start := time.Now()
			sum := run(t, newSender(t, tc.cfg, nil))
			if elapsed := time.Since(start); elapsed < tc.min || sum.Elapsed < tc.min {
				t.Errorf("run took %v (summary %v), want at least %v", elapsed, sum.Elapsed, tc.min)
			}
			if sum.Sent != tc.cfg.Count || sum.OK != tc.cfg.Count {
				t.Errorf("sent %d ok %d, want %d", sum.Sent, sum.OK, tc.cfg.Count)
			}
		})
	}
}

func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	in := newIngest(t, func(int, string) (int, time.Duration) {
		time.Sleep(20 * time.Millisecond) // hold the slot a while
		return http.StatusAccepted, 0
	})
	sum := run(t, newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Burst: 12, Count: 12, Concurrency: 3}, nil))
	_, _, _, maxIn := in.snapshot()
	if maxIn > 3 {
		t.Errorf("ingest saw %d requests at once, want at most 3", maxIn)
	}
	if sum.OK != 12 {
		t.Errorf("ok = %d, want 12", sum.OK)
	}
}

func TestStops(t *testing.T) {
	t.Parallel()
	t.Run("duration", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		sum := run(t, newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 100, Duration: 200 * time.Millisecond}, nil))
		// The schedule allows at most one event per 10 ms in 200 ms, plus the first.
		if sum.Sent < 1 || sum.Sent > 21 {
			t.Errorf("sent %d in a 200ms run at 100/s, want 1 to 21", sum.Sent)
		}
		if sum.Elapsed < 200*time.Millisecond {
			t.Errorf("elapsed %v, want at least the duration", sum.Elapsed)
		}
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 100}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		sum, err := s.Run(ctx)
		if err != nil {
			t.Fatalf("Run stopped by its context: %v, want nil", err)
		}
		if sum.Sent < 1 || sum.InFlight != 0 || sum.OK+sum.Failed() != sum.Sent {
			t.Errorf("summary %+v: want something sent, all judged", sum)
		}
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 100, Count: 1}, nil)
		run(t, s)
		if _, err := s.Run(t.Context()); err == nil {
			t.Errorf("second Run succeeded, want an error")
		}
	})
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	url := in.srv.URL
	in.srv.Close() // nothing listens there now
	sum := run(t, newSender(t, sourcemock.Config{IngestURL: url, Rate: 200, Count: 5}, nil))
	if sum.Errors != 5 || sum.OK != 0 || sum.LastError == "" || len(sum.Accepted) != 0 {
		t.Errorf("summary %+v: want 5 transport errors with a message, nothing accepted", sum)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	t.Run("none at start", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, nil)
		s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 100, Count: 3}, func(context.Context) (string, error) {
			return "", errors.New("metadata server down")
		})
		if _, err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "metadata server down") {
			t.Errorf("Run error = %v, want the token error", err)
		}
		if events, _, _, _ := in.snapshot(); len(events) != 0 {
			t.Errorf("sent %d events without a token", len(events))
		}
	})
	t.Run("cached, refreshed after a 401", func(t *testing.T) {
		t.Parallel()
		in := newIngest(t, func(n int, _ string) (int, time.Duration) {
			if n == 2 {
				return http.StatusUnauthorized, 0
			}
			return http.StatusAccepted, 0
		})
		var calls atomic.Int32
		s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 200, Count: 6, Concurrency: 1}, func(context.Context) (string, error) {
			calls.Add(1)
			return "tok", nil
		})
		sum := run(t, s)
		// One call at start, one after the 401; none per request.
		if got := calls.Load(); got != 2 {
			t.Errorf("token func called %d times, want 2", got)
		}
		if sum.OK != 5 || sum.Non2xx[401] != 1 {
			t.Errorf("summary %+v, want 5 ok and one 401", sum)
		}
	})
}

func TestSnapshotWhileRunning(t *testing.T) {
	t.Parallel()
	in := newIngest(t, nil)
	s := newSender(t, sourcemock.Config{IngestURL: in.srv.URL, Rate: 400, Count: 40}, nil)
	done := make(chan sourcemock.Summary)
	go func() {
		sum, _ := s.Run(t.Context())
		done <- sum
	}()
	last := 0
	for {
		select {
		case sum := <-done:
			if sum.Sent != 40 || len(sum.Accepted) != 40 {
				t.Errorf("final summary sent %d accepted %d, want 40", sum.Sent, len(sum.Accepted))
			}
			return
		default:
		}
		snap := s.Snapshot()
		if snap.Sent < last {
			t.Fatalf("Sent went back from %d to %d", last, snap.Sent)
		}
		last = snap.Sent
		if len(snap.Accepted) > snap.OK || snap.OK > snap.Sent {
			t.Fatalf("inconsistent snapshot %+v", snap)
		}
		_ = snap.String()
		time.Sleep(time.Millisecond)
	}
}

func TestSummaryString(t *testing.T) {
	t.Parallel()
	sum := sourcemock.Summary{
		Sent: 2000, OK: 1996, Late: 1, Errors: 1, LastError: "connection refused",
		Non2xx:  map[int]int{503: 1, 400: 1},
		Elapsed: 10 * time.Second,
		P50:     3100 * time.Microsecond, P90: 5 * time.Millisecond, P99: 21 * time.Millisecond, Max: 502 * time.Millisecond,
	}
	want := "sent 2000 in 10.0s (200.0/s): ok 1996, failed 4 (late 1, 400×1, 503×1, errors 1: connection refused), in flight 0; latency p50 3.1ms p90 5ms p99 21ms max 502ms"
	if got := sum.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	data, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back sourcemock.Summary
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("Unmarshal %s: %v", data, err)
	}
	if diff := cmp.Diff(sum, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    sourcemock.Config
		wantErr []string
	}{
		{
			name: "defaults",
			env:  map[string]string{"INGEST_URL": "http://127.0.0.1:8080"},
			want: sourcemock.Config{IngestURL: "http://127.0.0.1:8080", Rate: 10, BurstInterval: time.Second, Concurrency: 64, Deadline: 500 * time.Millisecond},
		},
		{
			name: "everything set",
			env: map[string]string{
				"INGEST_URL": "https://ingest.example.com", "SOURCE_RATE": "2.5", "SOURCE_BURST": "100",
				"SOURCE_BURST_INTERVAL": "5s", "SOURCE_COUNT": "1000", "SOURCE_DURATION": "1m",
				"SOURCE_CONCURRENCY": "8", "SOURCE_DEADLINE": "250ms",
			},
			want: sourcemock.Config{IngestURL: "https://ingest.example.com", Rate: 2.5, Burst: 100, BurstInterval: 5 * time.Second,
				Count: 1000, Duration: time.Minute, Concurrency: 8, Deadline: 250 * time.Millisecond},
		},
		{name: "no ingest URL", env: map[string]string{}, wantErr: []string{"ingest URL is required"}},
		{name: "relative ingest URL", env: map[string]string{"INGEST_URL": "/events"}, wantErr: []string{"absolute http(s) URL"}},
		{name: "wrong scheme", env: map[string]string{"INGEST_URL": "ftp://x"}, wantErr: []string{"absolute http(s) URL"}},
		{
			name: "every number wrong",
			env: map[string]string{
				"INGEST_URL": "http://x", "SOURCE_RATE": "0", "SOURCE_BURST": "-1", "SOURCE_COUNT": "-1",
				"SOURCE_DURATION": "-1s", "SOURCE_CONCURRENCY": "0", "SOURCE_DEADLINE": "0s",
			},
			wantErr: []string{"burst must be >= 0", "rate must be", "count must be", "duration must be", "concurrency must be", "deadline must be"},
		},
		{name: "burst without interval", env: map[string]string{"INGEST_URL": "http://x", "SOURCE_BURST": "5", "SOURCE_BURST_INTERVAL": "0s"}, wantErr: []string{"burst interval"}},
		{name: "not a number", env: map[string]string{"INGEST_URL": "http://x", "SOURCE_RATE": "fast"}, wantErr: []string{"fast"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := sourcemock.NewConfig(t.Context(), envconfig.MapLookuper(tc.env))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("NewConfig = %+v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("NewConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewSenderDefaults(t *testing.T) {
	t.Parallel()
	// The zero Deadline and Concurrency of a literal Config take defaults.
	if _, err := sourcemock.NewSender(sourcemock.Config{IngestURL: "http://127.0.0.1:1", Rate: 1}, nil, nil); err != nil {
		t.Errorf("NewSender with defaults: %v", err)
	}
	if _, err := sourcemock.NewSender(sourcemock.Config{IngestURL: "http://127.0.0.1:1"}, nil, nil); err == nil {
		t.Errorf("NewSender without a rate or burst succeeded")
	}
}
