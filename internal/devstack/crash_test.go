package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/testutil"
)

// buildRelayctl builds the real binary, so the crash is a real process kill.
func buildRelayctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relayctl")
	cmd := exec.Command("go", "build", "-o", bin, "eventrelay/relayctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build relayctl: %v\n%s", err, out)
	}
	return bin
}

// crashWait bounds every wait on the relayctl process: a guard against a
// hang, not a speed assertion.
const crashWait = 60 * time.Second

// httpClient talks to the process; its timeout bounds every request, so no
// poll can hang on one.
var httpClient = &http.Client{Timeout: 10 * time.Second}

type devProcess struct {
	cmd                    *exec.Cmd
	out                    *output
	ingestAddr, targetAddr string
}

// output collects a process's stdout and stderr; it may be read while the
// process writes.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// startDev starts `relayctl dev` on data and waits until ingest and the
// target answer. ingestAddr and targetAddr "127.0.0.1:0" let it pick free
// ports, read back from what it prints; a restart passes the ones the first
// run got, so clients keep their URLs.
func startDev(t *testing.T, bin, data, ingestAddr, targetAddr string, limit float64) *devProcess {
	t.Helper()
	out := &output{}
	cmd := exec.Command(bin, "dev", "--data", data, "--source-rate", "0",
		"--target-rate", fmt.Sprint(limit), "--ingest-addr", ingestAddr, "--target-addr", targetAddr,
		"--ops-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start relayctl dev: %v", err)
	}
	p := &devProcess{cmd: cmd, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	defer func() {
		if t.Failed() {
			t.Logf("relayctl output:\n%s", out)
		}
	}()
	testutil.WaitFor(t, crashWait, "relayctl dev to print its addresses", func() bool {
		var okIngest, okTarget bool
		p.ingestAddr, okIngest = testutil.PrintedAddr(out.String(), "ingest")
		p.targetAddr, okTarget = testutil.PrintedAddr(out.String(), "targetmock")
		return okIngest && okTarget
	})
	waitHealthy(t, "http://"+p.ingestAddr+"/health")
	waitHealthy(t, "http://"+p.targetAddr+"/health")
	return p
}

func waitHealthy(t *testing.T, healthURL string) {
	t.Helper()
	testutil.WaitFor(t, crashWait, healthURL+" to answer 200", func() bool {
		resp, err := httpClient.Get(healthURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

type targetStats struct {
	Calls          int `json:"calls"`
	Accepted       int `json:"accepted"`
	Duplicates     int `json:"duplicates"`
	DistinctEvents int `json:"distinctEvents"`
}

// graphql runs a query against targetmock over HTTP, as any client would.
func graphql(t *testing.T, targetAddr, query string, vars map[string]any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := httpClient.Post("http://"+targetAddr+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("query target: %v", err)
	}
	defer resp.Body.Close()
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Errors) > 0 {
		t.Fatalf("query target: %v %v", err, env.Errors)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("decode target answer: %v", err)
	}
}

func stats(t *testing.T, targetAddr string) targetStats {
	t.Helper()
	var d struct{ Stats targetStats }
	graphql(t, targetAddr, `{ stats { calls accepted duplicates distinctEvents } }`, nil, &d)
	return d.Stats
}

// TestKillMidDrain kills `relayctl dev` with SIGKILL while the backlog
// drains, restarts it on the same data dir, and checks that every event that
// got a 202 reaches the target, with duplicate calls counted and no
// duplicate side effect.
func TestKillMidDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real process; skipped with -short")
	}
	const (
		n     = 600
		limit = 50.0
	)
	bin := buildRelayctl(t)
	data := t.TempDir()

	dev := startDev(t, bin, data, "127.0.0.1:0", "127.0.0.1:0", limit)
	ingestAddr, targetAddr := dev.ingestAddr, dev.targetAddr
	iss, err := devissuer.LoadOrCreate(data)
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	token := func(context.Context) (string, error) {
		return iss.Mint(devissuer.DefaultAudience, "crash-test", devissuer.DefaultSourceEmail, time.Hour)
	}
	sender, err := sourcemock.NewSender(sourcemock.Config{
		IngestURL: "http://" + ingestAddr, Rate: 4 * limit, Count: n, Concurrency: 32, Deadline: 500 * time.Millisecond,
	}, token, nil)
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	sum, err := sender.Run(t.Context())
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(sum.Accepted) != n {
		t.Fatalf("only %d of %d events accepted before the crash: %s", len(sum.Accepted), n, sum)
	}

	// Kill once about a third has been delivered: mid-drain, with tasks in
	// flight.
	testutil.WaitFor(t, crashWait, "a third of the events delivered", func() bool {
		return stats(t, targetAddr).DistinctEvents >= n/3
	})
	if err := dev.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	_ = dev.cmd.Wait()

	startDev(t, bin, data, ingestAddr, targetAddr, limit)
	deadline := time.Now().Add(time.Duration(2*n/limit) * time.Second)
	var st targetStats
	for {
		st = stats(t, targetAddr)
		if st.DistinctEvents >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after restart: %+v", st)

	var missing []string
	for _, id := range sum.Accepted {
		var d struct {
			Event *struct {
				Calls int    `json:"calls"`
				Brand string `json:"brand"`
			} `json:"event"`
		}
		graphql(t, targetAddr, `query($id: ID!) { event(id: $id) { calls brand } }`, map[string]any{"id": id}, &d)
		if d.Event == nil {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d events got a 202 but never reached the target, e.g. %s", len(missing), strings.Join(missing[:min(5, len(missing))], ", "))
	}
	if st.DistinctEvents != n {
		t.Errorf("target holds %d distinct events (side effects), want exactly %d", st.DistinctEvents, n)
	}
	t.Logf("duplicate calls to the target (crash window): %d; duplicate side effects: %d", st.Duplicates, st.DistinctEvents-n)
	if os.Getenv("EVENTRELAY_CRASH_LOG") != "" {
		t.Logf("relayctl output:\n%s", dev.out)
	}
}
