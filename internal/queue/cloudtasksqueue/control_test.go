package cloudtasksqueue_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/testutil"
)

func TestSetRate_invalid(t *testing.T) {
	t.Parallel()
	q := newQueue(t, cloudtasksqueue.Options{
		Project: "p", Location: "l", Queue: "events", Target: "https://dispatcher.example/tasks/events",
		DispatchDeadline: 45 * time.Second, Endpoint: "127.0.0.1:1", // never dialled: refused before any call
	})
	cases := []struct {
		name string
		rate float64
	}{
		{name: "zero", rate: 0},
		{name: "negative", rate: -2},
		{name: "NaN", rate: math.NaN()},
		{name: "infinite", rate: math.Inf(1)},
		{name: "above Cloud Tasks' 500", rate: cloudtasksqueue.MaxRate + 0.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := q.SetRate(ctx, tc.rate, queue.ByOperator); !errors.Is(err, queue.ErrInvalidRate) {
				t.Errorf("SetRate(%v) = %v, want ErrInvalidRate", tc.rate, err)
			}
		})
	}
}

// TestSetRate_emulatorUnimplemented pins what the emulator does with
// UpdateQueue, and that the error says so plainly: why the conformance
// suite's SetRate check is off for it.
func TestSetRate_emulatorUnimplemented(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	cfg := queuetest.Config()
	q := ensured(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := q.SetRate(ctx, cloudtasksqueue.MaxRate, queue.ByOperator) // the highest valid rate reaches the server
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("SetRate on the emulator = %v, want an error wrapping codes.Unimplemented", err)
	}
	for _, want := range []string{"unimplemented", q.Name()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("SetRate error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, queue.ErrInvalidRate) {
		t.Errorf("SetRate error %v wraps ErrInvalidRate; the rate was valid", err)
	}
	got, err := q.Control(ctx)
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if got.Rate != cfg.MaxDispatchesPerSecond {
		t.Errorf("Control().Rate = %v after the failed SetRate, want the queue's %v", got.Rate, cfg.MaxDispatchesPerSecond)
	}
}

// TestControl_missingQueue checks every control call on a queue that does
// not exist fails with NotFound, and that Pause and Resume do not reach
// the emulator's PauseQueue and ResumeQueue, which crash it then.
func TestControl_missingQueue(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	q := newQueue(t, options(host, queueID(t), "http://127.0.0.1:1/tasks")) // never created
	cases := []struct {
		name string
		call func(context.Context) error
	}{
		{name: "Control", call: func(ctx context.Context) error { _, err := q.Control(ctx); return err }},
		{name: "Pause", call: func(ctx context.Context) error { return q.Pause(ctx, queue.ByOperator) }},
		{name: "Resume", call: func(ctx context.Context) error { return q.Resume(ctx, queue.ByOperator) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tc.call(ctx); status.Code(err) != codes.NotFound {
				t.Errorf("%s on a missing queue = %v, want NotFound", tc.name, err)
			}
		})
	}
	// The emulator is still up: a queue of its own answers.
	other := ensured(t, options(host, queueID(t)+"-b", "http://127.0.0.1:1/tasks"), queuetest.Config())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.Control(ctx); err != nil {
		t.Errorf("Control on another queue after the calls: %v (did the emulator crash?)", err)
	}
}

// TestControl_burst checks Control reports the burst the emulator delivers
// (TestRateLimit_emulatorBurst measures it): the max_burst_size GetQueue
// returns, which EnsureQueue set to emulatorBurst(MaxBurstSize), plus 2.
func TestControl_burst(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	cases := []struct {
		name         string
		burst        int
		wantReported int32 // GetQueue's rate_limits.max_burst_size
		wantBurst    int
	}{
		{name: "burst 100", burst: 100, wantReported: 98, wantBurst: 100},
		{name: "burst 4", burst: 4, wantReported: 2, wantBurst: 4},
		{name: "burst 1 (the emulator's floor is 3)", burst: 1, wantReported: 1, wantBurst: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := queuetest.Config()
			cfg.MaxBurstSize = tc.burst
			q := ensured(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"), cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			raw, err := q.GetQueue(ctx)
			if err != nil {
				t.Fatalf("GetQueue: %v", err)
			}
			if got := raw.GetRateLimits().GetMaxBurstSize(); got != tc.wantReported {
				t.Errorf("the emulator reports max_burst_size %d, want %d", got, tc.wantReported)
			}
			got, err := q.Control(ctx)
			if err != nil {
				t.Fatalf("Control: %v", err)
			}
			if got.Burst != tc.wantBurst || got.Rate != cfg.MaxDispatchesPerSecond {
				t.Errorf("Control() = %+v, want burst %d at rate %v", got, tc.wantBurst, cfg.MaxDispatchesPerSecond)
			}
		})
	}
}
