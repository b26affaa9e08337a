// Package sourcemock mocks the source application: it generates events as
// the source does ({id, name: "test event", body: "test body", timestamp}),
// posts each one once to ingest with a bearer token, at a steady rate or in
// bursts, and judges each by the source's own rule: delivered only if a 2xx
// arrived within 500 ms. Nothing is retried, exactly like the source.
//
// The Sender is what relayctl dev and the end-to-end test drive; Handler
// serves the same sender as an HTTP function (Cloud Run functions, through
// the Functions Framework).
package sourcemock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenTTL is how long a token from the token func is reused. Token funcs
// may mint on every call; an hour-long token is then fetched once a minute.
const tokenTTL = time.Minute

// Event values the source application sends: the name and body of the
// source's example event (docs/hld.md, Context).
const (
	EventName = "test event"
	EventBody = "test body"
)

// Sender sends events to ingest and keeps the outcome of each. Run it once;
// Snapshot may be called at any time from any goroutine.
type Sender struct {
	cfg     Config
	url     string
	token   func(context.Context) (string, error)
	client  *http.Client
	started atomic.Bool

	tokMu sync.Mutex
	tok   string
	tokAt time.Time

	mu       sync.Mutex
	start    time.Time
	end      time.Time
	sent     int
	ok       int
	late     int
	errs     int
	inFlight int
	non2xx   map[int]int
	lastErr  string
	hist     histogram
	accepted []string
}

// NewSender builds a Sender. Zero Deadline, Concurrency and (in burst mode)
// BurstInterval take their defaults. token supplies the bearer token (nil
// sends none); it is called at most once a minute and again after a 401.
// client nil is a client tuned for cfg.Concurrency connections; every
// request is bounded by cfg.Deadline whatever the client.
func NewSender(cfg Config, token func(ctx context.Context) (string, error), client *http.Client) (*Sender, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sourcemock: %w", err)
	}
	u, err := eventsURL(cfg.IngestURL)
	if err != nil {
		return nil, fmt.Errorf("sourcemock: %w", err)
	}
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.Concurrency
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		client = &http.Client{Transport: tr, Timeout: cfg.Deadline}
	}
	return &Sender{cfg: cfg, url: u, token: token, client: client, non2xx: map[int]int{}}, nil
}

// Run sends events until cfg.Count events were sent, cfg.Duration passed or
// ctx is done, waits for the requests in flight (each is bounded by the
// deadline) and returns the final summary. Stopping is not an error; the
// error is non-nil only when Run could not start: a second call, or no
// token at all.
func (s *Sender) Run(ctx context.Context) (Summary, error) {
	if !s.started.CompareAndSwap(false, true) {
		return s.Snapshot(), errors.New("sourcemock: Run called twice")
	}
	if s.token != nil {
		if _, err := s.bearer(ctx, true); err != nil {
			return s.Snapshot(), fmt.Errorf("sourcemock: get token: %w", err)
		}
	}
	start := time.Now()
	s.mu.Lock()
	s.start = start
	s.mu.Unlock()

	runCtx := ctx
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithDeadline(ctx, start.Add(s.cfg.Duration))
		defer cancel()
	}
	// Requests in flight finish (within the deadline) even when the run is
	// stopped, so that every event sent is judged.
	reqCtx := context.WithoutCancel(ctx)
	slots := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	n := 0
	more := func() bool { return s.cfg.Count == 0 || n < s.cfg.Count }
	send := func() bool {
		select {
		case slots <- struct{}{}:
		case <-runCtx.Done():
			return false
		}
		if runCtx.Err() != nil {
			<-slots
			return false
		}
		id, body := NewEvent(time.Now())
		s.mu.Lock()
		s.sent++
		s.inFlight++
		s.mu.Unlock()
		wg.Go(func() {
			defer func() { <-slots }()
			s.post(reqCtx, id, body)
		})
		n++
		return true
	}

	if s.cfg.Burst == 0 {
		for more() {
			due := start.Add(time.Duration(float64(n) * float64(time.Second) / s.cfg.Rate))
			if !sleepUntil(runCtx, due) || !send() {
				break
			}
		}
	} else {
	bursts:
		for b := 0; more(); b++ {
			if !sleepUntil(runCtx, start.Add(time.Duration(b)*s.cfg.BurstInterval)) {
				break
			}
			for i := 0; i < s.cfg.Burst && more(); i++ {
				if !send() {
					break bursts
				}
			}
		}
	}
	wg.Wait()

	s.mu.Lock()
	s.end = time.Now()
	s.mu.Unlock()
	return s.Snapshot(), nil
}

// sleepUntil waits until t; it reports false when ctx is done first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// bearer returns the cached token, fetching a new one when forced, when
// none is cached or when the cached one is older than tokenTTL.
func (s *Sender) bearer(ctx context.Context, force bool) (string, error) {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	if !force && s.tok != "" && time.Since(s.tokAt) < tokenTTL {
		return s.tok, nil
	}
	tok, err := s.token(ctx)
	if err != nil {
		return "", err
	}
	s.tok, s.tokAt = tok, time.Now()
	return tok, nil
}

func (s *Sender) dropToken() {
	s.tokMu.Lock()
	s.tok = ""
	s.tokMu.Unlock()
}

// post sends one event and records its outcome.
func (s *Sender) post(ctx context.Context, id string, body []byte) {
	var auth string
	if s.token != nil {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		tok, err := s.bearer(tctx, false)
		cancel()
		if err != nil {
			s.record(id, 0, 0, fmt.Errorf("get token: %w", err))
			return
		}
		auth = "Bearer " + tok
	}

	// The source's clock: the deadline starts when the request is sent.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		s.record(id, 0, 0, err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	begin := time.Now()
	resp, err := s.client.Do(req)
	elapsed := time.Since(begin)
	if err != nil {
		s.record(id, 0, elapsed, err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized && s.token != nil {
		s.dropToken()
	}
	s.record(id, resp.StatusCode, elapsed, nil)
}

// record judges one request by the source's rule.
func (s *Sender) record(id string, code int, elapsed time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	s.hist.add(elapsed)
	switch {
	case err != nil && isTimeout(err):
		s.late++
	case err != nil:
		s.errs++
		s.lastErr = err.Error()
	case code < 200 || code > 299:
		s.non2xx[code]++
	case elapsed > s.cfg.Deadline:
		s.late++
	default:
		s.ok++
		s.accepted = append(s.accepted, id)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Snapshot returns the counts so far; it is safe to call while Run runs.
func (s *Sender) Snapshot() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{
		Sent:      s.sent,
		OK:        s.ok,
		Late:      s.late,
		Errors:    s.errs,
		InFlight:  s.inFlight,
		Non2xx:    maps.Clone(s.non2xx),
		LastError: s.lastErr,
		P50:       s.hist.quantile(0.50),
		P90:       s.hist.quantile(0.90),
		P99:       s.hist.quantile(0.99),
		Max:       s.hist.max,
		// The ids are only ever appended: the first len(s.accepted) are
		// never written again, so the summary can share them.
		Accepted: s.accepted[:len(s.accepted):len(s.accepted)],
	}
	switch {
	case s.start.IsZero():
	case s.end.IsZero():
		sum.Elapsed = time.Since(s.start)
	default:
		sum.Elapsed = s.end.Sub(s.start)
	}
	if len(sum.Non2xx) == 0 {
		sum.Non2xx = nil
	}
	if sum.Accepted == nil {
		sum.Accepted = []string{} // JSON [] rather than null
	}
	return sum
}

// Summary is what the source saw.
type Summary struct {
	// Sent counts requests started.
	Sent int `json:"sent"`
	// OK counts 2xx answers within the deadline: events the source considers
	// delivered.
	OK int `json:"ok"`
	// Late counts requests with no 2xx within the deadline: timed out, or a
	// 2xx that came too late. The source considers them failed.
	Late int `json:"late"`
	// Non2xx counts answers other than 2xx, by HTTP status.
	Non2xx map[int]int `json:"non_2xx,omitempty"`
	// Errors counts requests that got no answer for another reason
	// (connection refused, reset, no token); LastError is the latest.
	Errors    int    `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// InFlight counts requests not yet judged (zero once Run returned).
	InFlight int `json:"in_flight"`
	// Elapsed is the time since the run started (to its end once it ended).
	Elapsed time.Duration `json:"elapsed_ns"`
	// Latency percentiles of every judged request (timeouts count at the
	// deadline), to within 3 %; Max is exact.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// Accepted lists the ids of the events answered 2xx in time, in the
	// order the answers came.
	Accepted []string `json:"accepted"`
}

// Failed counts the requests the source considers failed.
func (s Summary) Failed() int {
	n := s.Late + s.Errors
	for _, c := range s.Non2xx {
		n += c
	}
	return n
}

// Rate is the achieved send rate in events per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// String is a one-line human summary, e.g.
//
//	sent 2000 in 10.0s (200.0/s): ok 1998, failed 2 (late 1, 503×1), in flight 0; latency p50 3.1ms p90 5.2ms p99 21ms max 502ms
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d in %.1fs (%.1f/s): ok %d, failed %d", s.Sent, s.Elapsed.Seconds(), s.Rate(), s.OK, s.Failed())
	var parts []string
	if s.Late > 0 {
		parts = append(parts, fmt.Sprintf("late %d", s.Late))
	}
	for _, code := range slices.Sorted(maps.Keys(s.Non2xx)) {
		parts = append(parts, fmt.Sprintf("%d×%d", code, s.Non2xx[code]))
	}
	if s.Errors > 0 {
		parts = append(parts, fmt.Sprintf("errors %d: %s", s.Errors, s.LastError))
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", in flight %d; latency p50 %v p90 %v p99 %v max %v", s.InFlight,
		round(s.P50), round(s.P90), round(s.P99), round(s.Max))
	return b.String()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// NewEvent returns a fresh event as the source sends it: a random UUID
// (version 4) id, the example's name and body, and now as an RFC 3339
// timestamp with milliseconds (as JavaScript's toISOString writes it).
func NewEvent(now time.Time) (id string, body []byte) {
	id = newID()
	body, err := json.Marshal(struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Body      string `json:"body"`
		Timestamp string `json:"timestamp"`
	}{id, EventName, EventBody, now.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
	if err != nil {
		panic("sourcemock: marshal event: " + err.Error()) // strings always marshal
	}
	return id, body
}

func newID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // never fails (crypto/rand.Read crashes the program instead)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
