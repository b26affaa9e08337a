package relayctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

// runningQueue starts an embedded queue in dir, as relayctl dev would, at
// the given configured rate with a burst of runningBurst, and stops it
// when the test ends.
func runningQueue(t *testing.T, dir string, rate float64) *sqlitequeue.Queue {
	t.Helper()
	return runningQueueAt(t, filepath.Join(dir, devstack.QueueFile), "events", rate, runningBurst)
}

// runningBurst is runningQueue's burst: not the placeholder's 1, so a
// command that shows it read the running queue's.
const runningBurst = 4

// runningQueueAt starts the embedded queue name in the file path at the
// given configured rate and burst, and stops it when the test ends.
func runningQueueAt(t *testing.T, path, name string, rate float64, burst int) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.New(t.Context(), sqlitequeue.Options{
		Path: path, Target: "http://127.0.0.1:1/tasks/events",
		Config: queue.Config{Name: name, MaxDispatchesPerSecond: rate, MaxBurstSize: burst, MaxConcurrentDispatches: 1,
			DispatchDeadline: time.Second, Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second}},
		ControlPollInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("sqlitequeue.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		q.Close()
	})
	return q
}

// showJSON runs `relayctl queue ARGS --json` and decodes its output.
func showJSON(t *testing.T, args ...string) queueJSON {
	t.Helper()
	code, out, errOut := run(t, append(append([]string{"queue"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("relayctl queue %v --json: exit %d: %s", args, code, errOut)
	}
	var got queueJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("relayctl queue %v --json printed %q: %v", args, out, err)
	}
	return got
}

func TestQueue_embedded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	owner := runningQueue(t, dir, 10)

	// Before any change it reports the running queue's configured rate
	// and burst (recorded by its Run as it starts), not a placeholder's.
	deadline := time.Now().Add(10 * time.Second)
	for got := showJSON(t, "show", "--data", dir); got.Rate != 10 || got.Burst != runningBurst; got = showJSON(t, "show", "--data", dir) {
		if time.Now().After(deadline) {
			t.Fatalf("queue show = %+v, want the running queue's rate 10 and burst %d", got, runningBurst)
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, out, errOut := run(t, "queue", "pause", "--data", dir)
	if code != 0 {
		t.Fatalf("queue pause: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"paused   yes", "rate     10/s", "burst    4\n", "by operator"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue pause printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "worst first second") {
		t.Errorf("queue pause printed the shards' worst first second for one queue:\n%s", out)
	}
	if !strings.Contains(errOut, "applies this within about a second") {
		t.Errorf("queue pause did not say when the running queue applies it; stderr: %q", errOut)
	}

	before := time.Now()
	got := showJSON(t, "rate", "2.5", "--data", dir) // flags after the action work too
	if got.Rate != 2.5 || !got.Paused || got.By != queue.ByOperator || got.At.Before(before.Add(-time.Minute)) {
		t.Errorf("queue rate 2.5 = %+v, want rate 2.5, still paused, by operator, now", got)
	}
	if got := showJSON(t, "--data", dir, "resume"); got.Paused || got.Rate != 2.5 || got.Burst != runningBurst {
		t.Errorf("queue resume = %+v, want not paused, rate 2.5, the burst kept at %d", got, runningBurst)
	}

	// The running queue has them too.
	ctl, err := owner.Control(t.Context())
	if err != nil {
		t.Fatalf("owner's Control: %v", err)
	}
	if ctl.Rate != 2.5 || ctl.Paused || ctl.By != queue.ByOperator {
		t.Errorf("running queue's Control() = %+v, want rate 2.5, not paused, by operator", ctl)
	}
}

func TestQueue_usage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runningQueue(t, dir, 10)
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{name: "no action", args: nil, wantCode: 2, want: "want show, rate N, pause or resume"},
		{name: "unknown action", args: []string{"stop"}, wantCode: 2, want: `unknown action "stop"`},
		{name: "rate without N", args: []string{"rate"}, wantCode: 2, want: "rate needs the new rate"},
		{name: "rate not a number", args: []string{"rate", "fast"}, wantCode: 2, want: `rate "fast" must be a number`},
		{name: "rate zero", args: []string{"rate", "0"}, wantCode: 2, want: "> 0"},
		{name: "rate negative", args: []string{"rate", "--", "-3"}, wantCode: 2, want: "> 0"},
		{name: "rate NaN", args: []string{"rate", "NaN"}, wantCode: 2, want: "> 0"},
		{name: "rate infinite", args: []string{"rate", "Inf"}, wantCode: 2, want: "> 0"},
		{name: "extra argument", args: []string{"pause", "now"}, wantCode: 2, want: `unexpected argument "now"`},
		{name: "unknown engine", args: []string{"show", "--engine", "aws"}, wantCode: 2, want: `unknown --engine "aws"`},
		{name: "wrong data dir", args: []string{"show", "--data", filepath.Join(dir, "nope")}, wantCode: 1, want: "is --data right?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"queue"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--data") {
				args = append(args, "--data", dir)
			}
			code, _, errOut := run(t, args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.want) {
				t.Errorf("relayctl %v: exit %d, stderr %q; want exit %d saying %q", args, code, errOut, tc.wantCode, tc.want)
			}
		})
	}
	// Nothing above changed the queue.
	if got := showJSON(t, "show", "--data", dir); got.Paused || got.By != "" {
		t.Errorf("queue show after the refused commands = %+v, want untouched", got)
	}
}

func TestQueue_gcp(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	var r [6]byte
	_, _ = rand.Read(r[:])
	id := "relayctl-queue-" + hex.EncodeToString(r[:])
	const project, location = "eventrelay-test", "us-central1"
	admin, err := cloudtasksqueue.New(t.Context(), cloudtasksqueue.Options{Project: project, Location: location, Queue: id,
		Target: "http://127.0.0.1:1/tasks/events", DispatchDeadline: time.Second, Endpoint: host})
	if err != nil {
		t.Fatalf("cloudtasksqueue.New: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	cfg := queue.Config{Name: id, MaxDispatchesPerSecond: 7, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Second,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second}}
	if err := admin.EnsureQueue(t.Context(), cfg); err != nil {
		t.Fatalf("EnsureQueue: %v", err)
	}
	// The queue is left in place: the emulator hangs deleting a queue that
	// was paused (internal/queue/cloudtasksqueue's package doc); it holds
	// no task.
	flags := []string{"--engine", "gcp", "--gcp-project", project, "--gcp-location", location, "--gcp-queue", id, "--tasks-emulator", host}

	// The emulator's smallest burst is 3 (cloudtasksqueue's emulatorBurst).
	if got := showJSON(t, append([]string{"show"}, flags...)...); got.Rate != 7 || got.Burst != 3 || got.Paused || got.Queue != id {
		t.Errorf("queue show = %+v, want queue %s at 7/s with a burst of 3, running", got, id)
	}
	code, out, errOut := run(t, append([]string{"queue", "pause"}, flags...)...)
	if code != 0 {
		t.Fatalf("queue pause: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"paused   yes", "Cloud Tasks keeps no record"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue pause printed no %q:\n%s", want, out)
		}
	}
	// The emulator has no UpdateQueue: the command fails and says so.
	code, _, errOut = run(t, append([]string{"queue", "rate", "5"}, flags...)...)
	if code != 1 || !strings.Contains(errOut, "unimplemented") {
		t.Errorf("queue rate 5 on the emulator: exit %d, stderr %q; want exit 1 saying unimplemented", code, errOut)
	}
}

// TestQueue_embeddedShards: over --queue-shards 3 the command reads every
// shard's file, rate N sets the total (each shard's file gets N/3, which
// its running queue applies), and show prints the total, each shard's
// settings and backlog.
func TestQueue_embeddedShards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var owners []*sqlitequeue.Queue
	for i := range 3 {
		q, err := sqlitequeue.New(t.Context(), sqlitequeue.Options{
			Path: filepath.Join(dir, strings.Replace(devstack.QueueFile, ".db", shardSuffix(i)+".db", 1)), Target: "http://127.0.0.1:1/tasks/events",
			Config: queue.Config{Name: queue.ShardName("events", i), MaxDispatchesPerSecond: 10, MaxBurstSize: 1, MaxConcurrentDispatches: 1,
				DispatchDeadline: time.Second, Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second}},
		})
		if err != nil {
			t.Fatalf("sqlitequeue.New: %v", err)
		}
		t.Cleanup(func() { q.Close() })
		owners = append(owners, q)
	}
	// Two tasks on the shards they route to, for the backlog.
	for _, id := range []string{"a", "b"} {
		name := queue.TaskName(id)
		if err := owners[queue.ShardOf(name, 3)].Enqueue(t.Context(), queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}

	got := showJSON(t, "rate", "90", "--data", dir, "--queue-shards", "3")
	if got.Rate != 90 || got.Backlog != 2 || len(got.Shards) != 3 {
		t.Fatalf("queue rate 90 over 3 shards = %+v, want a total of 90/s, a backlog of 2 and 3 shards", got)
	}
	var backlog int64
	for i, s := range got.Shards {
		if s.Queue != queue.ShardName("events", i) || s.Rate != 30 || s.By != queue.ByOperator || s.Error != "" {
			t.Errorf("shard %d = %+v, want %s at 30/s by operator", i, s, queue.ShardName("events", i))
		}
		backlog += s.Backlog
	}
	if backlog != 2 {
		t.Errorf("the shards' backlogs sum to %d, want 2", backlog)
	}
	for i, q := range owners {
		if c, err := q.Control(t.Context()); err != nil || c.Rate != 30 {
			t.Errorf("shard %d's own Control = %+v, %v; want 30/s", i, c, err)
		}
	}

	code, out, errOut := run(t, "queue", "show", "--data", dir, "--queue-shards", "3")
	if code != 0 {
		t.Fatalf("queue show: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"90/s in total over 3 shards", "backlog  2 (0 in flight)", "events-2", "30/s", "(3 shards)"} {
		if !strings.Contains(out, want) {
			t.Errorf("queue show printed no %q:\n%s", want, out)
		}
	}

	// A shard count the files do not match is reported, not created.
	if code, _, errOut := run(t, "queue", "show", "--data", dir, "--queue-shards", "4"); code != 1 || !strings.Contains(errOut, "queue-3.db") {
		t.Errorf("queue show over 4 shards with 3 files: exit %d, stderr %q; want exit 1 naming queue-3.db", code, errOut)
	}
	if code, _, errOut := run(t, "queue", "show", "--data", dir, "--queue-shards", "0"); code != 2 || !strings.Contains(errOut, "--queue-shards") {
		t.Errorf("queue show --queue-shards 0: exit %d, stderr %q; want a usage error", code, errOut)
	}
}

// shardSuffix is what shard i's file adds before .db.
func shardSuffix(i int) string {
	if i == 0 {
		return ""
	}
	return "-" + strconv.Itoa(i)
}

// TestQueue_embeddedShardsBurst: over running shards, each with a burst of
// its own, show reports each shard's burst, their sum, and the most the
// shards send in the first second after an idle spell.
func TestQueue_embeddedShardsBurst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bursts := []int{2, 5}
	for i, b := range bursts {
		runningQueueAt(t, filepath.Join(dir, strings.Replace(devstack.QueueFile, ".db", shardSuffix(i)+".db", 1)), queue.ShardName("events", i), 10, b)
	}
	flags := []string{"--data", dir, "--queue-shards", "2"}
	deadline := time.Now().Add(10 * time.Second)
	got := showJSON(t, append([]string{"show"}, flags...)...)
	for got.Burst != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("queue show = %+v, want the running shards' bursts summed to 7", got)
		}
		time.Sleep(10 * time.Millisecond)
		got = showJSON(t, append([]string{"show"}, flags...)...)
	}
	if got.Rate != 20 || len(got.Shards) != 2 || got.Shards[0].Burst != 2 || got.Shards[1].Burst != 5 {
		t.Errorf("queue show = %+v, want 20/s over 2 shards with bursts 2 and 5", got)
	}

	code, out, errOut := run(t, append([]string{"queue", "show"}, flags...)...)
	if code != 0 {
		t.Fatalf("queue show: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"burst    7 in total over 2 shards",
		"worst first second after an idle spell: rate + Σ burst = 27 tasks\n",
		"shard     rate  burst  paused",
		"events-1  10/s  5      no",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("queue show printed no %q:\n%s", want, out)
		}
	}
}
