package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
)

// pollInterval is how often the harness polls the status store and the
// queue's backlog.
const pollInterval = 250 * time.Millisecond

// readTimeout bounds each read of the status store, so that a store that
// went away (an emulator stopped under the run) fails the run instead of
// hanging it: the Firestore client retries Unavailable until its context
// ends.
const readTimeout = 30 * time.Second

// run is one scenario run in progress: its clock and its timeline.
type run struct {
	start time.Time

	mu       sync.Mutex
	timeline []string
}

func newRun() *run { return &run{start: time.Now()} }

// note appends a timeline entry stamped with the time since the run began.
func (r *run) note(format string, args ...any) {
	at := time.Since(r.start).Round(100 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeline = append(r.timeline, fmt.Sprintf("t+%v %s", at, fmt.Sprintf(format, args...)))
}

func (r *run) notes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.timeline...)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sendLoad runs one sourcemock sender to its end and returns its summary
// with the times it started and ended.
func sendLoad(ctx context.Context, cfg sourcemock.Config, token func(context.Context) (string, error)) (sourcemock.Summary, time.Time, time.Time, error) {
	sender, err := sourcemock.NewSender(cfg, token, nil)
	if err != nil {
		return sourcemock.Summary{}, time.Time{}, time.Time{}, err
	}
	start := time.Now()
	sum, err := sender.Run(ctx)
	if err != nil {
		return sourcemock.Summary{}, time.Time{}, time.Time{}, fmt.Errorf("send: %w", err)
	}
	return sum, start, time.Now(), nil
}

// statusPoller is what waitDrained reads: per-status counts as a cheap
// first check, then each pending record.
type statusPoller interface {
	statusReader
	Counts(ctx context.Context) (map[status.Status]int64, error)
}

// waitDrained waits until every id's status record is terminal, or until
// window has passed; it returns how many are still pending (0 = drained).
// Missing records count as pending. It fails only when ctx ends or the
// store cannot be read at all.
func waitDrained(ctx context.Context, st statusPoller, ids []string, window time.Duration) (int, error) {
	deadline := time.Now().Add(window)
	pending := append([]string(nil), ids...)
	for {
		cctx, cancel := context.WithTimeout(ctx, readTimeout)
		counts, err := st.Counts(cctx)
		cancel()
		if err != nil {
			return len(pending), fmt.Errorf("status counts: %w", err)
		}
		var terminal int64
		for s, n := range counts {
			if s.Terminal() {
				terminal += n
			}
		}
		// Only once enough records are terminal is it worth reading the
		// pending ones one by one.
		if terminal >= int64(len(ids)) {
			recs, err := getAll(ctx, st, pending)
			if err != nil {
				return len(pending), err
			}
			still := pending[:0]
			for i, id := range pending {
				if !recs[i].found || !recs[i].rec.Status.Terminal() {
					still = append(still, id)
				}
			}
			pending = still
			if len(pending) == 0 {
				return 0, nil
			}
		}
		if time.Now().After(deadline) {
			return len(pending), nil
		}
		if !sleep(ctx, pollInterval) {
			return len(pending), ctx.Err()
		}
	}
}

// backlogSampler keeps the largest backlog a queue reports until stopped;
// -1 when it could read none.
type backlogSampler struct {
	max  int64
	stop context.CancelFunc
	done chan struct{}
}

// sampleBacklog polls q's stats every pollInterval until the sampler is
// stopped. An engine without stats leaves the maximum at -1.
func sampleBacklog(ctx context.Context, q queue.StatsReader) *backlogSampler {
	ctx, cancel := context.WithCancel(ctx)
	b := &backlogSampler{max: -1, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			st, err := q.Stats(ctx)
			if err != nil {
				return // stopped, or no stats on this engine (the Cloud Tasks emulator)
			}
			b.max = max(b.max, st.Backlog)
			if !sleep(ctx, pollInterval) {
				return
			}
		}
	}()
	return b
}

// Max stops the sampler and returns the largest backlog seen.
func (b *backlogSampler) Max() int64 {
	b.stop()
	<-b.done
	return b.max
}
