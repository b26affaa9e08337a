package queue_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/queue"
)

// TestBackoff checks the Cloud Tasks documentation's own example:
// min 10s, max 300s, max doublings 3 retries at 10, 20, 40, 80, 160, 240,
// 300, 300 seconds.
func TestBackoff(t *testing.T) {
	t.Parallel()
	r := queue.RetryConfig{MinBackoff: 10 * time.Second, MaxBackoff: 300 * time.Second, MaxDoublings: 3, MaxAttempts: 10}
	want := []time.Duration{10, 20, 40, 80, 160, 240, 300, 300}
	for i, w := range want {
		if got := r.Backoff(i + 1); got != w*time.Second {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := r.Backoff(0); got != 10*time.Second {
		t.Errorf("Backoff(0) = %v, want the first retry's 10s", got)
	}
	huge := queue.RetryConfig{MinBackoff: time.Second, MaxBackoff: time.Hour, MaxDoublings: 5000}
	if got := huge.Backoff(4000); got != time.Hour {
		t.Errorf("Backoff overflowing float64 = %v, want MaxBackoff", got)
	}
}

func TestIsLastAttempt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		attempts   int
		duration   time.Duration
		retryCount int
		first      time.Time
		now        time.Time
		want       bool
	}{
		{"attempts only, before the last", 3, 0, 1, t0, t0, false},
		{"attempts only, the last", 3, 0, 2, t0, t0, true},
		{"single attempt", 1, 0, 0, t0, t0, true},
		{"unlimited attempts, no duration", -1, 0, 1000, t0, t0.Add(1000 * time.Hour), false},
		{"unlimited attempts with a duration never ends", -1, time.Hour, 1000, t0, t0.Add(2 * time.Hour), false},
		{"both set, attempts reached, duration not", 3, time.Hour, 5, t0, t0.Add(time.Minute), false},
		{"both set, duration reached, attempts not", 3, time.Hour, 1, t0, t0.Add(2 * time.Hour), false},
		{"both set, both reached", 3, time.Hour, 2, t0, t0.Add(time.Hour), true},
		{"both set, first attempt unknown", 3, time.Hour, 9, time.Time{}, t0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := queue.RetryConfig{MaxAttempts: tc.attempts, MaxRetryDuration: tc.duration, MinBackoff: time.Second, MaxBackoff: time.Minute}
			if got := r.IsLastAttempt(tc.retryCount, tc.first, tc.now); got != tc.want {
				t.Errorf("IsLastAttempt(%d) = %v, want %v", tc.retryCount, got, tc.want)
			}
		})
	}
}

func TestTaskName(t *testing.T) {
	t.Parallel()
	a, b := queue.TaskName("evt-1"), queue.TaskName("evt-2")
	if a == b {
		t.Fatalf("different ids share the task name %q", a)
	}
	if a != queue.TaskName("evt-1") {
		t.Errorf("TaskName is not deterministic")
	}
	for _, id := range []string{"evt-1", "with space/and:colon", strings.Repeat("é", 100)} {
		name := queue.TaskName(id)
		if len(name) > 500 {
			t.Errorf("TaskName(%q) is %d chars; Cloud Tasks allows 500", id, len(name))
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Errorf("TaskName(%q) = %q has %q, outside [A-Za-z0-9_-]", id, name, c)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := queue.Config{Name: "events", MaxDispatchesPerSecond: 10, MaxBurstSize: 1, MaxConcurrentDispatches: 5,
		DispatchDeadline: time.Second, Retry: queue.RetryConfig{MaxAttempts: 5, MinBackoff: time.Second, MaxBackoff: time.Minute}}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	bad := queue.Config{Retry: queue.RetryConfig{MaxAttempts: 0, MinBackoff: time.Minute, MaxBackoff: time.Second, MaxDoublings: -1}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate(bad) = nil")
	}
	for _, want := range []string{"queue name", "max dispatches", "burst", "concurrent", "deadline", "max attempts", "max backoff", "max doublings"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(bad) does not mention %q: %v", want, err)
		}
	}
}

func TestShardOf(t *testing.T) {
	const n = 4
	counts := make([]int, n)
	for i := range 4000 {
		id := fmt.Sprintf("event-%d", i)
		s := queue.ShardOf(queue.TaskName(id), n)
		if s < 0 || s >= n {
			t.Fatalf("ShardOf(%q) = %d, want 0..%d", id, s, n-1)
		}
		counts[s]++
		// Every task of one event lands on the shard of its first task.
		for _, name := range []string{queue.ReplayTaskName(id, 2), queue.TaskName(id) + "-q3", queue.ReplayTaskName(id, 1) + "-q1"} {
			if got := queue.ShardOf(name, n); got != s {
				t.Fatalf("ShardOf(%q) = %d, want %d (the shard of %s)", name, got, s, queue.TaskName(id))
			}
		}
	}
	for i, c := range counts {
		// 1,000 expected per shard; a hash that ignored part of the name
		// would pile them up.
		if c < 850 || c > 1150 {
			t.Errorf("shard %d got %d of 4000 tasks, want about 1000: %v", i, c, counts)
		}
	}
	if got := queue.ShardOf(queue.TaskName("x"), 1); got != 0 {
		t.Errorf("one shard: ShardOf = %d, want 0", got)
	}
	if a, b := queue.ShardOf("foreign-name", n), queue.ShardOf("foreign-name", n); a != b || a < 0 || a >= n {
		t.Errorf("a foreign name must map to one stable shard, got %d and %d", a, b)
	}
}

func TestShardName(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{{0, "events"}, {1, "events-1"}, {3, "events-3"}} {
		if got := queue.ShardName("events", tc.i); got != tc.want {
			t.Errorf("ShardName(events, %d) = %q, want %q", tc.i, got, tc.want)
		}
	}
}
