package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/logging"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/testutil"
)

// Environment variables `make chaos` sets.
const (
	// outEnv names a directory for the JSON and table of the run.
	outEnv = "CHAOS_OUT"
	// seedEnv fixes the seed of the random choices (kill moments).
	seedEnv = "CHAOS_SEED"
	// onlyEnv keeps only the scenarios whose name contains it.
	onlyEnv = "CHAOS_ONLY"
)

// reducedGCP are the scenarios that also run on the emulators inside make
// test; make chaos runs every scenario on every engine it lists.
var reducedGCP = map[string]bool{"target-5xx": true, "storm-429": true}

// binDir holds the relayctl binary the process scenarios run.
var binDir string

func TestMain(m *testing.M) {
	// The stack propagates trace context through the global propagator, as
	// every service's main sets it up.
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "chaos-test", SampleRatio: 1})
	if err != nil {
		panic(err)
	}
	binDir, err = os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = shutdown(context.Background())
	_ = os.RemoveAll(binDir)
	os.Exit(code)
}

// relayctl builds the real binary once, so that kill -9 kills a real process.
var relayctl = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "relayctl")
	out, err := exec.Command("go", "build", "-o", bin, "eventrelay/relayctl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build relayctl: %v\n%s", err, out)
	}
	return bin, nil
})

// runCase is one scenario on one engine.
type runCase struct {
	name     string
	scenario scenario
	engine   string
}

// cases lists what runs at this scale: every scenario on the embedded
// engine, the GCP engines (emulators) for reducedGCP only when reduced.
// The longest scenario goes first, so that parallel runs overlap it.
func cases(scale scenarioScale) []runCase {
	var out []runCase
	only := os.Getenv(onlyEnv)
	for _, sc := range scenarios() {
		for _, engine := range sc.Engines {
			if engine == devstack.EngineGCP && scale == reduced && !reducedGCP[sc.Name] {
				continue
			}
			name := sc.Name + "/" + engine
			if only != "" && !strings.Contains(name, only) {
				continue
			}
			out = append(out, runCase{name: name, scenario: sc, engine: engine})
		}
	}
	slices.SortStableFunc(out, func(a, b runCase) int {
		return boolInt(b.scenario.Name == "overload") - boolInt(a.scenario.Name == "overload")
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func seed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv(seedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// gcpEnv returns the emulators' settings, or skips (fails under
// REQUIRE_EMULATORS=1) when they are not running.
func gcpEnv(t *testing.T) devstack.GCPOptions {
	t.Helper()
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	issuer := os.Getenv(testutil.CloudTasksOIDCIssuerEnv)
	if issuer == "" {
		t.Fatalf("%s is not set (scripts/emulators.sh exports it with the emulator's address)", testutil.CloudTasksOIDCIssuerEnv)
	}
	return devstack.GCPOptions{TasksEndpoint: tasks, OIDCIssuer: issuer}
}

// TestScenarios runs every fault scenario and checks the acceptance: no
// acknowledged event lost, no duplicate side effect, nothing stuck, and the
// fault visibly injected. Duplicate calls are counted in the report.
func TestScenarios(t *testing.T) {
	var (
		mu      sync.Mutex
		reports []report
	)
	t.Cleanup(func() {
		if len(reports) == 0 {
			return
		}
		var table bytes.Buffer
		if err := writeTable(&table, reports); err != nil {
			t.Errorf("write table: %v", err)
		}
		t.Logf("chaos scenarios (%s):\n%s", testScale, table.String())
		if dir := os.Getenv(outEnv); dir != "" {
			writeResults(t, dir, reports, table.Bytes())
		}
	})
	for _, c := range cases(testScale) {
		t.Run(c.name, func(t *testing.T) {
			if testScale == reduced {
				t.Parallel()
			}
			env := scenarioEnv{Engine: c.engine, Scale: testScale, DataDir: t.TempDir(), Seed: seed(t)}
			if c.engine == devstack.EngineGCP {
				env.GCP = gcpEnv(t)
			}
			if c.scenario.Root && (runtime.GOOS != "linux" || os.Geteuid() != 0) {
				t.Skipf("%s mounts a tmpfs: needs root on Linux (CI runs as root)", c.scenario.Name)
			}
			if c.scenario.Process {
				bin, err := relayctl()
				if err != nil {
					t.Fatal(err)
				}
				env.Relayctl = bin
			}
			logPath := filepath.Join(env.DataDir, "chaos.log")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = logFile.Close() })
			ctx := logging.WithLogger(t.Context(), slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn})))

			rep, err := c.scenario.Run(context.WithoutCancel(ctx), env)
			if err != nil {
				tailLog(t, logPath)
				t.Fatalf("%s: %v", c.name, err)
			}
			mu.Lock()
			reports = append(reports, rep)
			mu.Unlock()
			t.Logf("%s (seed %d):\n%s", c.name, env.Seed, strings.Join(rep.Timeline, "\n"))
			check(t, c.scenario.Name, rep)
			if t.Failed() {
				tailLog(t, logPath)
			}
		})
	}
}

// check asserts the acceptance every scenario shares, then that the
// scenario's fault really happened.
func check(t *testing.T, scenario string, r report) {
	t.Helper()
	for _, p := range r.problems() {
		t.Error(p)
	}
	if r.Acknowledged == 0 {
		t.Fatalf("no event was acknowledged (sent %d): nothing was tested", r.Sent)
	}
	if got := r.Delivered + r.Failed + r.DeadLettered + r.Lost; got != r.Acknowledged {
		t.Errorf("delivered %d + failed %d + dead-lettered %d + lost %d = %d, want the %d acknowledged",
			r.Delivered, r.Failed, r.DeadLettered, r.Lost, got, r.Acknowledged)
	}
	switch scenario {
	case "kill9":
		if kills := countPrefix(r.Timeline, "kill -9"); kills != 5 {
			t.Errorf("the stack was killed %d times, want 5", kills)
		}
	case "crash-after-target":
		if kills := countPrefix(r.Timeline, "kill -9"); kills != 3 {
			t.Errorf("the stack was killed %d times, want 3", kills)
		}
		if r.DuplicateCalls < 3 {
			t.Errorf("%d duplicate calls, want at least one per crash", r.DuplicateCalls)
		}
	case "target-5xx", "target-outage":
		if r.FaultCalls == 0 {
			t.Error("no target call was answered with an injected 500: the fault did not happen")
		}
	case "target-500-storm":
		if r.FaultCalls == 0 || r.OutageCalls == 0 {
			t.Errorf("%d injected 500s, %d calls during the outage: the outage did not happen", r.FaultCalls, r.OutageCalls)
		}
		if r.RecoveryTime < 0 {
			t.Errorf("the dispatch rate never got back to %.0f%% of the limit after the target healed", 100*fullRateShare)
		}
	case "last-attempt-lost", "task-vanished":
		// Violations (problems) hold the per-event check: each event whose
		// task was lost ended final, through the reconciler.
		if r.InjectedFaults == 0 {
			t.Error("no task was lost: the fault did not happen")
		}
		if r.Reconciled < int(r.InjectedFaults) {
			t.Errorf("the reconciler acted on %d events, fewer than the %d whose task was lost", r.Reconciled, r.InjectedFaults)
		}
	case "store-and-queue-down":
		if r.InjectedFaults == 0 || r.QueueFaults == 0 {
			t.Errorf("%d status calls and %d requeues met the fault: want both, on the same last attempts", r.InjectedFaults, r.QueueFaults)
		}
		// The queue retries the tasks whose last attempt met the outage:
		// none is dropped, so nothing is left for the reconciler and
		// problems() reports any event lost.
	case "target-malformed":
		// Each mangled answer hides a stored event: its retry is a
		// duplicate call, answered duplicate, with no second side effect.
		if r.DuplicateCalls == 0 || r.MaxAttempts < 2 {
			t.Errorf("duplicate calls %d, max attempts %d: no answer was mangled", r.DuplicateCalls, r.MaxAttempts)
		}
	case "target-slow":
		// A call the queue gave up on is either refused by targetmock (its
		// client is gone) or stored, and then its retry is a duplicate call.
		if r.RejectedCalls+r.DuplicateCalls == 0 || r.MaxAttempts < 2 {
			t.Errorf("rejected %d + duplicate %d calls, max attempts %d: no delivery outlived the dispatch deadline",
				r.RejectedCalls, r.DuplicateCalls, r.MaxAttempts)
		}
	case "storm-429", "storm-graphql":
		if r.RateLimitedCalls == 0 {
			t.Error("no target call was rate limited: the storm did not happen")
		}
		if r.DeadLetteredRateLimitedOnly != 0 || r.DeadLettered != 0 {
			t.Errorf("%d events dead-lettered (%d of them only rate limited): a storm must dead-letter none",
				r.DeadLettered, r.DeadLetteredRateLimitedOnly)
		}
		if r.Engine == devstack.EngineEmbedded {
			// The governor acts on the embedded queue (the emulator cannot
			// change a rate): it slowed the queue during the storm and
			// raised it back to the ceiling after.
			if countPrefix(r.Timeline, "governor slow") == 0 {
				t.Error("the rate governor never slowed the queue during the storm")
			}
			if r.GovernorFinalRate != r.GovernorCeiling || r.GovernorCeiling == 0 {
				t.Errorf("after the storm the queue's rate is %v of a %v ceiling: the governor did not raise it back",
					r.GovernorFinalRate, r.GovernorCeiling)
			}
		}
	case "status-down", "status-down-budget", "status-slow":
		if r.InjectedFaults == 0 {
			t.Error("no status read or write met the injected fault")
		}
	case "queue-down", "db-locked", "disk-full":
		// Ingest answers 503 at its enqueue deadline; a hang would show as
		// late (no answer within the source's 500 ms) instead.
		if r.Answers[503] == 0 {
			t.Errorf("no 503 while the queue was unavailable (answers %v, late %d)", r.Answers, r.Late)
		}
		if r.Late*10 > r.Answers[503] {
			t.Errorf("%d requests got no answer within 500 ms against %d 503s: ingest hung on the queue", r.Late, r.Answers[503])
		}
		if r.NoAnswer > 0 {
			t.Errorf("%d requests got no answer at all", r.NoAnswer)
		}
		if scenario == "queue-down" && r.InjectedFaults == 0 {
			t.Error("no enqueue met the injected fault")
		}
	case "overload":
		if r.Engine == devstack.EngineEmbedded && r.MaxBacklog <= 0 {
			t.Error("the queue never held a backlog: the source did not outrun the limit")
		}
		// The queue (burst 1) holds the target's limit; the target's own
		// burst is 5.
		if limit := int(r.Limit) + 5; r.MaxAcceptedPerSecond > limit {
			t.Errorf("the target accepted %d events in one second, over its limit + burst %d", r.MaxAcceptedPerSecond, limit)
		}
	}
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l, " "); ok && strings.HasPrefix(rest, prefix) {
			n++
		}
	}
	return n
}

// tailLog prints the last lines of the run's WARN+ log.
func tailLog(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 40 {
			lines = lines[1:]
		}
	}
	t.Logf("last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

// writeResults writes the run's reports as JSON and as a table into dir.
func writeResults(t *testing.T, dir string, reports []report, table []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("results dir: %v", err)
		return
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	base := filepath.Join(dir, fmt.Sprintf("chaos-%s-%s", testScale, stamp))
	var js bytes.Buffer
	if err := writeJSON(&js, reports); err != nil {
		t.Errorf("write json: %v", err)
		return
	}
	for path, data := range map[string][]byte{base + ".json": js.Bytes(), base + ".txt": table} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Errorf("write %s: %v", path, err)
		}
	}
	t.Logf("results in %s.{json,txt}", base)
}
