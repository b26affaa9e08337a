package serving

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"eventrelay/internal/logging"
)

// ReadyPath is the path of a service's startup probe: 503 until its
// warm-up has finished, 200 after. /health stays the liveness check, which
// answers 200 as soon as the process serves.
const ReadyPath = "/ready"

// WarmupStep is one warm-up step: Do opens and exercises one client (a
// cheap authenticated call), returning an error the warm-up retries.
type WarmupStep struct {
	// Name names the step in logs and in the probe's answer.
	Name string
	// Do runs one attempt, within the attempt timeout.
	Do func(ctx context.Context) error
	// Optional steps are attempted like the others, but readiness does not
	// wait for them (a third party's outage must not keep the service from
	// starting).
	Optional bool
}

// WarmupOptions tunes the retries. Zero values take the defaults below.
type WarmupOptions struct {
	// AttemptTimeout bounds one attempt of a step (default 10s).
	AttemptTimeout time.Duration
	// MinBackoff is the wait after a step's first failure (default 200ms);
	// it doubles after each further failure up to MaxBackoff (default 5s).
	MinBackoff, MaxBackoff time.Duration
}

func (o WarmupOptions) withDefaults() WarmupOptions {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	return o
}

// Warmup runs a service's warm-up steps before its startup probe passes,
// so that the first request on a new instance finds its clients connected
// and their tokens fetched. Each step is retried with backoff until it
// succeeds or the context ends: a failure is logged, never fatal, so a
// transient outage at start-up never crashes the process into a restart
// loop; if the warm-up cannot finish, the probe keeps answering 503 and
// the platform replaces the instance when its probe budget runs out.
type Warmup struct {
	steps []WarmupStep
	opts  WarmupOptions

	mu      sync.Mutex
	pending map[string]bool // required steps not yet done
	done    chan struct{}   // closed when no required step is pending
}

// NewWarmup returns a warm-up of steps, not yet started (Run starts it).
func NewWarmup(opts WarmupOptions, steps ...WarmupStep) *Warmup {
	w := &Warmup{steps: steps, opts: opts.withDefaults(), pending: map[string]bool{}, done: make(chan struct{})}
	for _, s := range steps {
		if !s.Optional {
			w.pending[s.Name] = true
		}
	}
	if len(w.pending) == 0 {
		close(w.done)
	}
	return w
}

// Run runs every step concurrently, each until it succeeds or ctx ends,
// and returns then. It never returns an error: a step that cannot finish
// keeps the service unready instead.
func (w *Warmup) Run(ctx context.Context) error {
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range w.steps {
		wg.Go(func() { w.runStep(ctx, s) })
	}
	go func() {
		select {
		case <-w.done:
			log := logging.FromContext(ctx)
			log.InfoContext(ctx, "warm-up finished: ready", "duration_ms", time.Since(start).Milliseconds())
		case <-ctx.Done():
		}
	}()
	wg.Wait()
	return nil
}

// runStep retries s with backoff until it succeeds or ctx ends.
func (w *Warmup) runStep(ctx context.Context, s WarmupStep) {
	log := logging.FromContext(ctx)
	backoff := w.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := w.attempt(ctx, s)
		if err == nil {
			log.InfoContext(ctx, "warm-up step done", "step", s.Name, "attempt", attempt,
				"latency_ms", time.Since(start).Milliseconds())
			w.finish(s)
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.WarnContext(ctx, "warm-up step failed; retrying", "step", s.Name, "attempt", attempt,
			"error", err.Error(), "retry_in_ms", backoff.Milliseconds(), "optional", s.Optional)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, w.opts.MaxBackoff)
	}
}

// attempt runs one attempt of s under the attempt timeout; a panic is an
// error like any other.
func (w *Warmup) attempt(ctx context.Context, s WarmupStep) (err error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.AttemptTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r}
		}
	}()
	return s.Do(ctx)
}

type panicError struct{ value any }

func (p *panicError) Error() string { return "panic in warm-up step" }

// finish marks s done.
func (w *Warmup) finish(s WarmupStep) {
	if s.Optional {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pending[s.Name] {
		return
	}
	delete(w.pending, s.Name)
	if len(w.pending) == 0 {
		close(w.done)
	}
}

// Ready reports whether every required step has succeeded.
func (w *Warmup) Ready() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Done is closed once every required step has succeeded.
func (w *Warmup) Done() <-chan struct{} { return w.done }

// Pending lists the required steps not yet done, sorted.
func (w *Warmup) Pending() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name := range w.pending {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// SlugNotReady is the 503 problem of the startup probe while warming up.
const SlugNotReady = "not-ready"

// Handler answers the startup probe: GET and HEAD get 200
// {"status":"ready"} once ready, else 503 not-ready naming the pending
// steps, with Retry-After: 1; other methods 405.
func (w *Warmup) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(rw http.ResponseWriter, r *http.Request) {
		if w.Ready() {
			WriteJSON(rw, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		rw.Header().Set("Retry-After", "1")
		WriteProblem(rw, http.StatusServiceUnavailable, SlugNotReady, "Warming up",
			"Waiting for: "+strings.Join(w.Pending(), ", ")+".", nil)
	})
	mux.Handle("/", MethodNotAllowed(http.MethodGet, http.MethodHead))
	return mux
}

// WithReadiness serves ReadyPath from w and every other path from next:
// what a service's main mounts in front of its routes.
func WithReadiness(w *Warmup, next http.Handler) http.Handler {
	ready := w.Handler()
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ReadyPath {
			ready.ServeHTTP(rw, r)
			return
		}
		next.ServeHTTP(rw, r)
	})
}
