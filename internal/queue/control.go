package queue

import (
	"context"
	"errors"
	"time"
)

// Controller is implemented by engines whose dispatching can be slowed,
// paused and resumed while they run: the embedded queue (persisted, so a
// restart keeps a slowed or paused queue slowed or paused) and Cloud Tasks
// (UpdateQueue on rate_limits.max_dispatches_per_second, PauseQueue,
// ResumeQueue). The rate governor and the operator's `relayctl queue`
// commands act through it; both name themselves in by.
type Controller interface {
	// Control reports the live dispatch settings.
	Control(ctx context.Context) (Control, error)
	// SetRate sets the maximum dispatch rate in tasks per second (> 0).
	SetRate(ctx context.Context, perSecond float64, by string) error
	// Pause stops dispatching; tasks keep being accepted and kept.
	Pause(ctx context.Context, by string) error
	// Resume restarts dispatching after Pause.
	Resume(ctx context.Context, by string) error
}

// Control is a queue's live dispatch settings.
type Control struct {
	// Rate is the live maximum dispatch rate in tasks per second.
	Rate float64
	// Burst is the live token bucket size: after an idle spell the queue
	// can dispatch Burst tasks at once, then Rate per second, so it sends
	// up to Rate + Burst in its first second. The embedded engine's is its
	// configured MaxBurstSize; Cloud Tasks picks its own from the rate
	// (rate_limits.max_burst_size is output only). 0 when the engine
	// cannot tell.
	Burst int
	// Paused reports whether dispatching is paused.
	Paused bool
	// By names who made the last change ("" when the engine cannot tell,
	// e.g. Cloud Tasks, which keeps no such record).
	By string
	// At is when the last change was made (zero when unknown).
	At time.Time
}

// Who changed a queue's dispatch settings, as passed in by.
const (
	ByGovernor = "governor"
	ByOperator = "operator"
)

// ErrInvalidRate is returned by SetRate for a rate that is not > 0 or is
// above the engine's maximum.
var ErrInvalidRate = errors.New("queue: invalid dispatch rate")
