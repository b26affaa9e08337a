package queue_test

import (
	"regexp"
	"testing"

	"eventrelay/internal/queue"
)

func TestRequeueTaskName(t *testing.T) {
	t.Parallel()
	const id = "ev-1"
	base := queue.TaskName(id)
	cases := []struct {
		name    string
		current string
		want    string
		wantOK  bool
	}{
		{name: "first task", current: base, want: base + "-q1", wantOK: true},
		{name: "counts up", current: base + "-q1", want: base + "-q2", wantOK: true},
		{name: "counts past nine", current: base + "-q9", want: base + "-q10", wantOK: true},
		{name: "a replay keeps its replay number", current: queue.ReplayTaskName(id, 2), want: base + "-r2-q1", wantOK: true},
		{name: "a requeued replay", current: base + "-r2-q3", want: base + "-r2-q4", wantOK: true},
		{name: "missing", current: ""},
		{name: "another event's task", current: queue.TaskName("ev-2")},
		{name: "foreign suffix", current: base + "-x"},
		{name: "suffixes out of order", current: base + "-q1-r1"},
		{name: "zero is not a count", current: base + "-q0"},
		{name: "a full path is not the short name", current: "projects/p/locations/l/queues/q/tasks/" + base},
	}
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{1,500}$`) // Cloud Tasks' task id rule
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := queue.RequeueTaskName(id, tc.current)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("RequeueTaskName(%q) = %q, %t; want %q, %t", tc.current, got, ok, tc.want, tc.wantOK)
			}
			if ok && !valid.MatchString(got) {
				t.Errorf("%q is not a valid Cloud Tasks task id", got)
			}
		})
	}
}

// TestRequeueChainNeverRepeats follows one event through replays and
// requeues: every name is new, so the queue's dedup never swallows one.
func TestRequeueChainNeverRepeats(t *testing.T) {
	t.Parallel()
	const id = "ev-chain"
	seen := map[string]bool{}
	for r := 0; r <= 3; r++ {
		name := queue.TaskName(id)
		if r > 0 {
			name = queue.ReplayTaskName(id, r)
		}
		for range 20 {
			if seen[name] {
				t.Fatalf("name %q repeats", name)
			}
			seen[name] = true
			next, ok := queue.RequeueTaskName(id, name)
			if !ok {
				t.Fatalf("RequeueTaskName(%q) refused one of the event's own names", name)
			}
			name = next
		}
	}
}
