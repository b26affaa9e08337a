package serving

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastRetries keeps the retry tests short.
var fastRetries = WarmupOptions{AttemptTimeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

// probe answers one request to ReadyPath through WithReadiness.
func probe(tb testing.TB, w *Warmup, method string) *httptest.ResponseRecorder {
	tb.Helper()
	next := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusTeapot) })
	rec := httptest.NewRecorder()
	WithReadiness(w, next).ServeHTTP(rec, httptest.NewRequest(method, ReadyPath, nil))
	return rec
}

// waitFor fails tb unless cond holds within 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReadyAnswers503BeforeWarmupAnd200After(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	w := NewWarmup(fastRetries, WarmupStep{Name: "store", Do: func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()

	rec := probe(t, w, http.MethodGet)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("before warm-up: status %d, want 503", rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	if body := rec.Body.String(); !strings.Contains(body, SlugNotReady) || !strings.Contains(body, "store") {
		t.Errorf("503 body %s: want the %s problem naming the pending step", body, SlugNotReady)
	}

	close(release)
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		if rec := probe(t, w, m); rec.Code != http.StatusOK {
			t.Errorf("%s after warm-up: status %d, want 200", m, rec.Code)
		}
	}
	if rec := probe(t, w, http.MethodPost); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", rec.Code)
	}
}

func TestFailingStepIsRetriedAndProbeStays503(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var healthy atomic.Bool
	w := NewWarmup(fastRetries,
		WarmupStep{Name: "ok", Do: func(context.Context) error { return nil }},
		WarmupStep{Name: "flaky", Do: func(context.Context) error {
			calls.Add(1)
			if healthy.Load() {
				return nil
			}
			if calls.Load() == 2 {
				panic("a panicking attempt is a failure like any other")
			}
			return errors.New("unavailable")
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()

	waitFor(t, "five failed attempts", func() bool { return calls.Load() >= 5 })
	if rec := probe(t, w, http.MethodGet); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("while a step fails: status %d, want 503", rec.Code)
	}
	if got := w.Pending(); len(got) != 1 || got[0] != "flaky" {
		t.Errorf("Pending() = %v, want [flaky]", got)
	}
	healthy.Store(true)
	waitFor(t, "ready", w.Ready)
	if rec := probe(t, w, http.MethodGet); rec.Code != http.StatusOK {
		t.Errorf("after the step recovered: status %d, want 200", rec.Code)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestWarmupNeverFinishingKeepsProbeFailingAndRunEndsWithContext(t *testing.T) {
	t.Parallel()
	w := NewWarmup(fastRetries, WarmupStep{Name: "down", Do: func(context.Context) error { return errors.New("down") }})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil: a warm-up failure must never end the process", err)
	}
	if w.Ready() {
		t.Error("Ready after a step that never succeeded")
	}
	if rec := probe(t, w, http.MethodGet); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
}

func TestOptionalStepDoesNotHoldReadiness(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	w := NewWarmup(fastRetries,
		WarmupStep{Name: "store", Do: func(context.Context) error { return nil }},
		WarmupStep{Name: "target", Optional: true, Do: func(context.Context) error { attempts.Add(1); return errors.New("down") }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	waitFor(t, "ready", w.Ready)
	waitFor(t, "the optional step retried", func() bool { return attempts.Load() >= 2 })
	if rec := probe(t, w, http.MethodGet); rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200 while only an optional step fails", rec.Code)
	}
}

func TestAttemptTimeoutBoundsAHangingStep(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	w := NewWarmup(WarmupOptions{AttemptTimeout: 10 * time.Millisecond, MinBackoff: time.Millisecond},
		WarmupStep{Name: "hangs", Do: func(ctx context.Context) error {
			if attempts.Add(1) > 1 {
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.Run(ctx)
	if !w.Ready() || attempts.Load() != 2 {
		t.Errorf("ready %v after %d attempts, want ready after 2 (the first cut off by AttemptTimeout)", w.Ready(), attempts.Load())
	}
}

func TestWithReadinessPassesOtherPathsThrough(t *testing.T) {
	t.Parallel()
	w := NewWarmup(fastRetries, WarmupStep{Name: "never", Do: func(context.Context) error { return errors.New("no") }})
	next := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusTeapot) })
	for _, path := range []string{"/health", "/events", "/ready/x"} {
		rec := httptest.NewRecorder()
		WithReadiness(w, next).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusTeapot {
			t.Errorf("%s: status %d, want the routes' answer", path, rec.Code)
		}
	}
}
