package devstack_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/dispatcher"
	"eventrelay/internal/queue"
	"eventrelay/internal/relayctl"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// deadLetterThenReplay: with the target failing every call, events end
// dead_lettered after the configured attempts and relayctl lists them;
// once the target recovers, relayctl replay delivers each exactly once and
// the record keeps the first round's history.
func deadLetterThenReplay(t *testing.T, o devstack.Options, engineArgs func(*devstack.Stack) (common, replay []string)) {
	const n = 20
	o.TargetRate = 50
	o.Retry = queue.RetryConfig{MaxAttempts: 3, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxDoublings: 2}
	stack := startStack(t, o)
	if err := stack.Target.SetErrorRatio(1); err != nil {
		t.Fatalf("make the target fail: %v", err)
	}
	// The 500 ms rule is the e2e tests' business; here every 2xx counts.
	sender, err := sourcemock.NewSender(sourcemock.Config{IngestURL: stack.IngestURL, Rate: 50, Count: n, Concurrency: 8,
		Deadline: 5 * time.Second}, stack.Token, nil)
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil || len(sum.Accepted) == 0 {
		t.Fatalf("send: %v, %s", err, sum)
	}
	// A loaded emulator may answer some enqueues late (503): those events
	// were refused (or, at least once, stored anyway); the ones that got a
	// 202 are what must be dead-lettered and replayed.
	accepted := int64(len(sum.Accepted))
	if accepted < n {
		t.Logf("%d of %d events accepted: %s", accepted, n, sum)
	}
	waitCount(t, stack, status.DeadLettered, accepted)

	args, replayArgs := engineArgs(stack)
	run := func(cmd ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append(cmd, args...)
		if cmd[0] == "replay" {
			full = append(full, replayArgs...)
		}
		if code := relayctl.Main(t.Context(), full, &out, &errOut); code != 0 {
			t.Fatalf("relayctl %v: exit %d: %s", cmd, code, errOut.String())
		}
		return out.String()
	}
	listed := run("events", "--status", "dead_lettered", "--json")
	if got := strings.Count(listed, "\n"); int64(got) < accepted {
		t.Fatalf("relayctl events --status dead_lettered listed %d events, want at least %d", got, accepted)
	}
	for _, id := range sum.Accepted {
		if !strings.Contains(listed, `"event_id":"`+id+`"`) {
			t.Errorf("relayctl events --status dead_lettered does not list %s", id)
		}
	}
	for _, id := range sum.Accepted {
		rec, err := stack.Status.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("status %s: %v", id, err)
		}
		if len(rec.Attempts) != 3 || rec.Reason == "" {
			t.Errorf("dead-lettered %s has %d attempts and reason %q; want 3 and a reason", id, len(rec.Attempts), rec.Reason)
		}
	}

	if err := stack.Target.SetErrorRatio(0); err != nil {
		t.Fatalf("heal the target: %v", err)
	}
	out := run("replay", "--status", "dead_lettered")
	if got := strings.Count(out, "replayed "); int64(got) < accepted {
		t.Fatalf("relayctl replay replayed %d events, want at least %d:\n%s", got, accepted, out)
	}
	waitCount(t, stack, status.Delivered, accepted)
	waitDistinct(t, stack, int(accepted), 30*time.Second)
	for _, id := range sum.Accepted {
		ev, err := stack.Target.Event(t.Context(), id)
		if err != nil {
			t.Errorf("target has no %s after replay: %v", id, err)
			continue
		}
		if ev.Calls != 1 {
			t.Errorf("event %s reached the target in %d accepted calls, want 1", id, ev.Calls)
		}
		rec, err := stack.Status.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("status %s: %v", id, err)
		}
		if rec.Replays() != 1 || len(rec.Attempts) < 5 {
			t.Errorf("record %s after replay: %d replays, %d entries; want the first round's 3 attempts, the replay and the delivery", id, rec.Replays(), len(rec.Attempts))
		}
	}
	// Replaying a delivered event is refused.
	var out2, errOut bytes.Buffer
	if code := relayctl.Main(t.Context(), append(append([]string{"replay", sum.Accepted[0]}, args...), replayArgs...), &out2, &errOut); code == 0 {
		t.Errorf("replay of a delivered event succeeded: %s", out2.String())
	}
}

// waitCount waits until want status records are st.
func waitCount(t *testing.T, stack *devstack.Stack, st status.Status, want int64) {
	t.Helper()
	var counts map[status.Status]int64
	defer func() {
		if t.Failed() {
			t.Logf("status counts: %v", counts)
		}
	}()
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d records %s", want, st), func() bool {
		c, err := stack.Status.Counts(t.Context())
		if err != nil {
			t.Fatalf("counts: %v", err)
		}
		counts = c
		return c[st] >= want
	})
}

func TestDeadLetterAndReplay(t *testing.T) {
	dir := t.TempDir()
	deadLetterThenReplay(t, devstack.Options{DataDir: dir}, func(*devstack.Stack) ([]string, []string) {
		return []string{"--data", dir}, nil
	})
}

func TestDeadLetterAndReplayGCP(t *testing.T) {
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	suffix := fmt.Sprintf("replay-%d", time.Now().UnixNano())
	gcp := devstack.GCPOptions{Queue: suffix, Collection: suffix, TasksEndpoint: tasks, OIDCIssuer: os.Getenv(testutil.CloudTasksOIDCIssuerEnv)}
	deadLetterThenReplay(t, devstack.Options{Engine: devstack.EngineGCP, GCP: gcp}, func(s *devstack.Stack) ([]string, []string) {
		return []string{"--engine", "gcp", "--gcp-queue", suffix, "--firestore-collection", suffix, "--tasks-emulator", tasks},
			[]string{"--dispatcher-url", s.DispatcherURL + dispatcher.TaskPath,
				"--invoker-sa", "cloud-tasks-invoker@eventrelay-dev.iam.gserviceaccount.com"}
	})
}
