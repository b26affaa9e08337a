package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/logging"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/targetmock"
)

// crashAfterTarget runs the real relayctl binary against a target the
// harness serves itself, and SIGKILLs the process at the one moment that
// matters most: right after the target stored an event and before the
// dispatcher could hear the answer and record it. kill9 hits that window by
// chance; this scenario hits it on purpose, three times.
//
// What must follow, for each event the crash cut: the record is left
// `delivering`, the queue redelivers after the restart, the dispatcher
// calls the target again, gets `duplicate: true` and records `delivered`.
// So exactly one duplicate call for that event, no second side effect, and
// the event delivered.
func crashAfterTarget(ctx context.Context, env scenarioEnv) (_ report, err error) {
	if env.Relayctl == "" {
		return report{}, errors.New("crash-after-target needs the relayctl binary (scenarioEnv.Relayctl)")
	}
	s := burstSizes(env)
	// The crashes come after these many events were stored: spread over the
	// burst's drain.
	at := []int{s.events / 10, s.events / 3, 2 * s.events / 3}

	quiet := logging.WithLogger(ctx, discardLogger())
	target, err := targetmock.NewServer(quiet, targetmock.Config{
		Port: "0", Rate: s.limit, Burst: 5, RateLimitMode: targetmock.ModeHTTP,
		DataPath: filepath.Join(env.DataDir, devstack.TargetFile),
	})
	if err != nil {
		return report{}, fmt.Errorf("start the target: %w", err)
	}
	defer target.Close()

	r := newRun()
	crash := &crasher{at: at, requests: make(chan string), done: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return report{}, err
	}
	srv := &http.Server{Handler: crash.wrap(target.Routes(quiet)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	targetURL := "http://" + ln.Addr().String()

	gcp, args := processEngine(env, "crash")
	args = append([]string{"--target-rate", fmt.Sprint(s.limit), "--target-url", targetURL + "/graphql"}, args...)
	p, err := startRelayProcess(ctx, relayProcessOptions{
		Bin: env.Relayctl, DataDir: env.DataDir,
		// The health check of the target address reaches the harness's
		// target, which answers /health like targetmock in the process.
		IngestAddr: "127.0.0.1:0", TargetAddr: ln.Addr().String(), DispatcherAddr: "127.0.0.1:0",
		Args: args,
	})
	if err != nil {
		return report{}, err
	}
	defer func() {
		if stopErr := p.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	// One goroutine owns the process: it kills when the target asks,
	// releases the target's handler, then restarts.
	killed := make(chan error, 1)
	go func() {
		defer close(crash.done)
		for range at {
			var id string
			select {
			case id = <-crash.requests:
			case <-ctx.Done():
				killed <- ctx.Err()
				return
			}
			kerr := p.kill()
			crash.release <- struct{}{}
			if kerr != nil {
				killed <- kerr
				return
			}
			r.note("kill -9 right after the target stored %s", id)
			if err := p.restart(ctx); err != nil {
				killed <- err
				return
			}
			r.note("restarted")
		}
		killed <- nil
	}()

	token, err := devToken(env.DataDir)
	if err != nil {
		return report{}, err
	}
	sum, start, end, err := sendLoad(ctx, sourcemock.Config{
		IngestURL: "http://" + p.ingestAddr(), Rate: s.rate, Count: s.events, Concurrency: 64, Deadline: sourcemock.DefaultDeadline,
	}, token)
	if err != nil {
		return report{}, err
	}
	r.note("load ended: %s", sum)
	select {
	case err := <-killed:
		if err != nil {
			return report{}, fmt.Errorf("kill and restart: %w", err)
		}
	case <-time.After(drainWindow(s, 0)):
		return report{}, fmt.Errorf("only %d of %d crashes happened", len(crash.ids()), len(at))
	}

	st, err := drainAndStop(ctx, env, gcp, p, r, sum.Accepted, drainWindow(s, 0))
	if err != nil {
		return report{}, err
	}
	defer st.Close()

	rep, err := reconcile(ctx, reconcileInput{Source: sum, LoadStart: start, LoadEnd: end, Target: target, Status: st})
	if err != nil {
		return report{}, err
	}
	rep.Scenario, rep.Engine, rep.Limit = "crash-after-target", env.engine(), s.limit
	rep.Injected = fmt.Sprintf("SIGKILL of relayctl dev right after the target stored the %v-th events, before the dispatcher heard back; restarted each time", at)
	rep.Timeline = r.notes()
	rep.Violations, err = checkCrashed(ctx, target, st, crash.ids())
	return rep, err
}

// checkCrashed checks each event whose answer a crash cut: stored once,
// called exactly twice (the cut call and one redelivery answered
// duplicate), and recorded delivered.
func checkCrashed(ctx context.Context, target *targetmock.Server, st statusReader, ids []string) ([]string, error) {
	var v []string
	for _, id := range ids {
		calls, err := target.Calls(ctx, targetmock.CallFilter{EventID: id})
		if err != nil {
			return nil, fmt.Errorf("calls of %s: %w", id, err)
		}
		var accepted, duplicate int
		for _, c := range calls {
			switch c.Outcome {
			case targetmock.OutcomeAccepted:
				accepted++
			case targetmock.OutcomeDuplicate:
				duplicate++
			}
		}
		if accepted != 1 || duplicate != 1 {
			v = append(v, fmt.Sprintf("%s: %d accepting and %d duplicate calls, want 1 and 1 (the cut call and one redelivery)", id, accepted, duplicate))
		}
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		rec, err := st.Get(rctx, id)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", id, err)
		}
		if rec.Status != status.Delivered {
			v = append(v, fmt.Sprintf("%s: status %s, want delivered", id, rec.Status))
		}
	}
	if len(ids) == 0 {
		v = append(v, "no crash happened")
	}
	return v, nil
}

// crasher wraps the target: after the at[i]-th stored event it asks for
// the process to be killed and holds the answer until it is dead, so the
// dispatcher never hears it.
type crasher struct {
	at       []int
	requests chan string
	release  chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	stored  int
	crashed []string
}

func (c *crasher) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.crashed)
}

func (c *crasher) wrap(next http.Handler) http.Handler {
	c.release = make(chan struct{})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/graphql" {
			next.ServeHTTP(w, req)
			return
		}
		buf := httptest.NewRecorder()
		next.ServeHTTP(buf, req)
		if id, ok := firstStore(buf); ok && c.due(id) {
			select {
			case c.requests <- id:
				<-c.release // the process is dead: nobody reads this answer
			case <-c.done:
			}
			return
		}
		for k, v := range buf.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.Code)
		_, _ = w.Write(buf.Body.Bytes())
	})
}

// due counts one stored event and reports whether a crash is due after it.
func (c *crasher) due(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stored++
	if len(c.crashed) < len(c.at) && c.stored >= c.at[len(c.crashed)] {
		c.crashed = append(c.crashed, id)
		return true
	}
	return false
}

// firstStore reports the event id of an answer that stored an event for
// the first time (a receipt with duplicate false).
func firstStore(b *httptest.ResponseRecorder) (string, bool) {
	if b.Code != http.StatusOK {
		return "", false
	}
	var resp struct {
		Data struct {
			ReceiveEvent *struct {
				ID        string `json:"id"`
				Duplicate bool   `json:"duplicate"`
			} `json:"receiveEvent"`
		} `json:"data"`
	}
	if json.Unmarshal(b.Body.Bytes(), &resp) != nil || resp.Data.ReceiveEvent == nil || resp.Data.ReceiveEvent.Duplicate {
		return "", false
	}
	return resp.Data.ReceiveEvent.ID, true
}
