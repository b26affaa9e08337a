// Package queue is the port between ingest and the dispatcher: a durable,
// rate-limited, retrying HTTP task queue with the semantics of a Cloud Tasks
// queue. Engines live in sibling packages (sqlitequeue is the embedded one,
// cloudtasksqueue the GCP one) and all pass the suite in queuetest.
package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers a queue sets on every delivery, named as Cloud Tasks names them.
// They describe the delivery; they are never proof of identity.
const (
	HeaderTaskName       = "X-CloudTasks-TaskName"
	HeaderRetryCount     = "X-CloudTasks-TaskRetryCount"
	HeaderExecutionCount = "X-CloudTasks-TaskExecutionCount"
	HeaderQueueName      = "X-CloudTasks-QueueName"
	HeaderETA            = "X-CloudTasks-TaskETA"
)

var (
	// ErrAlreadyExists is returned by Enqueue when a task with the same name
	// was accepted before: the caller treats it as an accepted duplicate.
	ErrAlreadyExists = errors.New("queue: task already exists")
	// ErrUnavailable is returned when the queue could not confirm in time that
	// it durably accepted the task; the caller answers 503. The outcome may be
	// unknown (a deadline hit mid-commit): the task may still have been stored
	// and will then be delivered — at least once, never lost.
	ErrUnavailable = errors.New("queue: unavailable")
)

// Task is one HTTP request the queue delivers to the dispatcher.
type Task struct {
	// Name is the deduplication key; see TaskName.
	Name string
	// Body is the request body (the event as JSON).
	Body []byte
	// Header holds extra request headers, e.g. traceparent and tracestate.
	Header http.Header
	// NotBefore, when set, is the earliest time the task is delivered (Cloud
	// Tasks' schedule_time, also sent as X-CloudTasks-TaskETA); zero or a
	// past time means now. The dispatcher uses it to requeue an event the
	// target rate-limited, after its Retry-After.
	NotBefore time.Time
}

// Queue accepts tasks. Enqueue returns only after the task is durably stored
// (nil), was stored before (ErrAlreadyExists), or could not be stored
// (an error wrapping ErrUnavailable or the cause).
type Queue interface {
	Enqueue(ctx context.Context, t Task) error
}

// Stats is what an engine can tell about its backlog.
type Stats struct {
	// Backlog counts tasks accepted and not yet finished (queued, waiting for
	// a retry, or in flight).
	Backlog int64
	// InFlight counts tasks being delivered now.
	InFlight int64
	// OldestAge is the age of the oldest unfinished task; zero when empty.
	OldestAge time.Duration
}

// StatsReader is implemented by engines that can report their backlog.
type StatsReader interface {
	Stats(ctx context.Context) (Stats, error)
}

// ShardStatsReader is implemented by a queue made of several engine queues
// (shardedqueue): it reports each one's Stats, for the gauges, pages and
// rate balancing that look at the shards one by one.
type ShardStatsReader interface {
	ShardStats(ctx context.Context) []ShardStat
}

// ShardStat is one shard's Stats.
type ShardStat struct {
	// Name is the shard's engine queue name.
	Name  string
	Stats Stats
	// Err is why the shard could not report; Stats is then zero.
	Err error
}

// Inspector is implemented by engines that can tell whether a task is
// still in the queue: accepted and not yet finished (waiting, scheduled for
// a retry, or in flight). A task that was delivered, that used its last
// attempt, or that was deleted does not exist, even while the engine still
// remembers its name for deduplication. The reconciler uses it to find
// events whose task is gone while their record is not final.
type Inspector interface {
	// TaskExists reports whether the task named name is in the queue. An
	// error means the engine could not tell; it is never a "no".
	TaskExists(ctx context.Context, name string) (bool, error)
}

// TaskName derives the task name for an event id: a hex SHA-256, because
// Cloud Tasks names allow only [A-Za-z0-9_-] and sequential names hot-spot.
// The same id always yields the same name, which is what deduplicates.
func TaskName(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return "ev-" + hex.EncodeToString(sum[:])
}

// ReplayTaskName names the task of an event's n-th replay (1, 2, ...): a
// name of its own, since the queue remembers the first one (dedup), and a
// stable one, so a replay interrupted after the status moved can be
// re-enqueued without creating a second task.
func ReplayTaskName(eventID string, n int) string {
	return TaskName(eventID) + "-r" + strconv.Itoa(n)
}

// ShardName names shard i of n of the queue named base: base itself for
// shard 0, so a single queue keeps its name when more shards are added, and
// base-<i> for the others.
func ShardName(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "-" + strconv.Itoa(i)
}

// ShardOf picks the shard, of n, that carries the task named name. It reads
// the hash in the name (TaskName's hex SHA-256 of the event id), so every
// task of one event (its replays and requeues, which extend that name)
// lands on the same shard, and a repeated id meets its first task there
// and is deduplicated. A name without that hash falls back to a hash of the
// whole name. n < 2 is shard 0.
func ShardOf(name string, n int) int {
	if n < 2 {
		return 0
	}
	var h uint64
	if rest, ok := strings.CutPrefix(name, "ev-"); ok && len(rest) >= 16 {
		if v, err := strconv.ParseUint(rest[:16], 16, 64); err == nil {
			h = v
		}
	}
	if h == 0 {
		sum := sha256.Sum256([]byte(name))
		for _, b := range sum[:8] {
			h = h<<8 | uint64(b)
		}
	}
	return int(h % uint64(n))
}

// Config is a queue's rate, concurrency and retry configuration, the same
// knobs (and defaults) as a Cloud Tasks queue so that one set of numbers
// describes the embedded engine, the Cloud Tasks queue and its Terraform.
type Config struct {
	// Name of the queue, sent in X-CloudTasks-QueueName.
	Name string `env:"QUEUE_NAME, default=events"`
	// MaxDispatchesPerSecond is the token-bucket refill rate: the target's limit.
	MaxDispatchesPerSecond float64 `env:"QUEUE_MAX_DISPATCHES_PER_SECOND, default=10"`
	// MaxBurstSize is the bucket size. Cloud Tasks derives it from the rate;
	// the embedded engine takes it from here.
	MaxBurstSize int `env:"QUEUE_MAX_BURST_SIZE, default=1"`
	// MaxConcurrentDispatches bounds deliveries in flight.
	MaxConcurrentDispatches int `env:"QUEUE_MAX_CONCURRENT_DISPATCHES, default=100"`
	// DispatchDeadline bounds one delivery (Cloud Tasks allows 15s to 30m).
	DispatchDeadline time.Duration `env:"QUEUE_DISPATCH_DEADLINE, default=30s"`
	Retry            RetryConfig
}

// RetryConfig mirrors Cloud Tasks' RetryConfig.
type RetryConfig struct {
	// MaxAttempts counts every attempt, the first included; -1 is
	// unlimited, the default: the queue never drops a task, and the
	// dispatcher's own budget (DELIVERY_*) decides when an event is
	// dead-lettered (docs/adr/0008).
	MaxAttempts int `env:"QUEUE_MAX_ATTEMPTS, default=-1"`
	// MaxRetryDuration stops retrying once the first attempt is this old;
	// zero is unlimited.
	MaxRetryDuration time.Duration `env:"QUEUE_MAX_RETRY_DURATION, default=0s"`
	MinBackoff       time.Duration `env:"QUEUE_MIN_BACKOFF, default=1s"`
	MaxBackoff       time.Duration `env:"QUEUE_MAX_BACKOFF, default=300s"`
	// MaxDoublings is how many times the backoff doubles before it grows
	// linearly (by MinBackoff*2^MaxDoublings each retry) up to MaxBackoff.
	MaxDoublings int `env:"QUEUE_MAX_DOUBLINGS, default=16"`
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("queue name is required"))
	}
	if !(c.MaxDispatchesPerSecond > 0) || math.IsInf(c.MaxDispatchesPerSecond, 0) {
		errs = append(errs, fmt.Errorf("max dispatches per second must be > 0, got %v", c.MaxDispatchesPerSecond))
	}
	if c.MaxBurstSize < 1 {
		errs = append(errs, fmt.Errorf("max burst size must be >= 1, got %d", c.MaxBurstSize))
	}
	if c.MaxConcurrentDispatches < 1 {
		errs = append(errs, fmt.Errorf("max concurrent dispatches must be >= 1, got %d", c.MaxConcurrentDispatches))
	}
	if c.DispatchDeadline <= 0 {
		errs = append(errs, fmt.Errorf("dispatch deadline must be > 0, got %v", c.DispatchDeadline))
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Validate reports every problem in r.
func (r RetryConfig) Validate() error {
	var errs []error
	if r.MaxAttempts == 0 || r.MaxAttempts < -1 {
		errs = append(errs, fmt.Errorf("max attempts must be >= 1 or -1 (unlimited), got %d", r.MaxAttempts))
	}
	if r.MinBackoff <= 0 {
		errs = append(errs, fmt.Errorf("min backoff must be > 0, got %v", r.MinBackoff))
	}
	if r.MaxBackoff < r.MinBackoff {
		errs = append(errs, fmt.Errorf("max backoff %v must be >= min backoff %v", r.MaxBackoff, r.MinBackoff))
	}
	if r.MaxDoublings < 0 {
		errs = append(errs, fmt.Errorf("max doublings must be >= 0, got %d", r.MaxDoublings))
	}
	if r.MaxRetryDuration < 0 {
		errs = append(errs, fmt.Errorf("max retry duration must be >= 0, got %v", r.MaxRetryDuration))
	}
	return errors.Join(errs...)
}

// Backoff is the wait before retry number retry (1 for the first retry), as
// Cloud Tasks computes it: MinBackoff doubled MaxDoublings times, then grown
// linearly by the last doubled interval, capped at MaxBackoff.
func (r RetryConfig) Backoff(retry int) time.Duration {
	if retry < 1 {
		retry = 1
	}
	n := retry - 1
	var d float64
	if n <= r.MaxDoublings {
		d = float64(r.MinBackoff) * math.Pow(2, float64(n))
	} else {
		last := float64(r.MinBackoff) * math.Pow(2, float64(r.MaxDoublings))
		d = last * float64(1+n-r.MaxDoublings)
	}
	if d > float64(r.MaxBackoff) || math.IsInf(d, 0) || math.IsNaN(d) {
		return r.MaxBackoff
	}
	return time.Duration(d)
}

// IsLastAttempt reports whether the attempt whose X-CloudTasks-TaskRetryCount
// is retryCount is the last one the queue will make, by Cloud Tasks' rule:
// with both MaxAttempts and MaxRetryDuration set, retries go on until both
// limits are reached; with one set, until that one is. firstAttempt is when
// the task was first tried; zero means unknown (the duration then counts as
// not reached, which errs towards another attempt, never towards a drop).
func (r RetryConfig) IsLastAttempt(retryCount int, firstAttempt, now time.Time) bool {
	attemptsSet := r.MaxAttempts > 0
	durationSet := r.MaxRetryDuration > 0
	attemptsReached := attemptsSet && retryCount+1 >= r.MaxAttempts
	durationReached := durationSet && !firstAttempt.IsZero() && now.Sub(firstAttempt) >= r.MaxRetryDuration
	switch {
	case attemptsSet && durationSet:
		return attemptsReached && durationReached
	case attemptsSet:
		return attemptsReached
	default:
		// MaxAttempts is -1 (unlimited): Cloud Tasks retries until both
		// limits are reached, which is never, whatever MaxRetryDuration says.
		return false
	}
}
