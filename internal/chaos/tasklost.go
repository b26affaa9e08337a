package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/queue"
	reconciler "eventrelay/internal/reconcile"
	"eventrelay/internal/status"
)

// The scenarios below lose an event's task while its record is not final:
// nothing in the pipeline would ever deliver it again, only the reconciler
// (internal/reconcile) finds it. They run it with a grace and an interval
// of seconds, so that it acts within a scenario.
const (
	reconcileGrace    = 2 * time.Second
	reconcileInterval = time.Second
)

// startStack starts a stack whose reconciler acts within seconds when on
// (reconcileConfig), and not within any run when off (a grace of an hour:
// the dispatcher always runs one).
func startStack(ctx context.Context, o devstack.Options, on bool) (*devstack.Stack, error) {
	o.Reconcile = reconcileConfig()
	if !on {
		o.Reconcile.Grace = time.Hour
	}
	return devstack.Start(ctx, o)
}

func reconcileConfig() reconciler.Config {
	return reconciler.Config{Grace: reconcileGrace, Interval: reconcileInterval, Policy: reconciler.PolicyRequeue, PageSize: 200}
}

// oneAttempt makes every attempt a task's last.
var oneAttempt = queue.RetryConfig{MaxAttempts: 1, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxDoublings: 3}

// lastAttemptBudget is the retry budget per task in the scenarios that make
// tasks reach their last attempt.
var lastAttemptBudget = queue.RetryConfig{MaxAttempts: 3, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxDoublings: 3}

// lastAttemptLost puts a layer in front of the dispatcher that answers
// every attempt of about one event in sixteen itself, the last one 503
// (lastAttemptDropper): the queue drops those tasks while their records
// still say queued. Each of those events must end delivered (requeued by
// the reconciler) or dead-lettered, never non-final.
func lastAttemptLost(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	drop := newLastAttemptDropper(lastAttemptBudget, pickOriginal)
	var (
		dropped    []string
		violations []string
		checkErr   error
	)
	rep, err := onStack(ctx, env, stackPlan{
		name: "last-attempt-lost",
		injects: fmt.Sprintf("a layer in front of the dispatcher answers every attempt of ~1/16 of the events itself, the last of %d with 503: the queue drops those tasks",
			lastAttemptBudget.MaxAttempts),
		opts: devstack.Options{
			TargetRate: s.limit,
			Retry:      lastAttemptBudget,
			// The queue is given the dispatcher's budget, as a queue
			// with finite attempts in production: only then does it
			// drop the tasks (by default it retries them).
			QueueMaxAttempts: lastAttemptBudget.MaxAttempts,
			WrapDispatcher:   drop.wrap,
		},
		load:      burstLoad(s),
		reconcile: true,
		window:    drainWindow(s, reconcileGrace+reconcileInterval),
		after: func(ctx context.Context, st *devstack.Stack, r *run) {
			dropped = drop.droppedIDs()
			r.note("front layer: %d earlier attempts answered 500, %d last attempts answered 503", drop.earlier.Load(), len(dropped))
			violations, checkErr = reconciledViolations(ctx, st.Status, dropped)
		},
	})
	rep.InjectedFaults = int64(len(dropped))
	rep.Violations = append(rep.Violations, violations...)
	return rep, errors.Join(err, checkErr)
}

// reconciledViolations reads the records of ids (events whose task the
// scenario made disappear) and returns a violation for those not final and
// for those the reconciler never touched.
func reconciledViolations(ctx context.Context, st statusReader, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	recs, err := getAll(ctx, st, ids)
	if err != nil {
		return nil, err
	}
	var notFinal, untouched []string
	for i, id := range ids {
		switch {
		case !recs[i].found || !recs[i].rec.Status.Terminal():
			notFinal = append(notFinal, id)
		case !hasReconciled(recs[i].rec):
			untouched = append(untouched, id)
		}
	}
	var v []string
	if len(notFinal) > 0 {
		v = append(v, fmt.Sprintf("%d of the %d events whose task was lost are not final, e.g. %s",
			len(notFinal), len(ids), strings.Join(notFinal[:min(len(notFinal), maxExamples)], ", ")))
	}
	if len(untouched) > 0 {
		v = append(v, fmt.Sprintf("%d of the %d events whose task was lost ended without the reconciler, e.g. %s",
			len(untouched), len(ids), strings.Join(untouched[:min(len(untouched), maxExamples)], ", ")))
	}
	return v, nil
}

// hasReconciled reports whether the reconciler acted on rec.
func hasReconciled(rec status.Record) bool {
	return slices.ContainsFunc(rec.Attempts, func(a status.Attempt) bool { return a.Outcome == status.OutcomeReconciled })
}

// storeAndQueueDown takes the status store down (every read and write
// fails) and, at the same time, fails every enqueue of a requeued task
// (…-qN): on a task's last attempt (by the dispatcher's budget) the
// dispatcher can neither record anything nor carry the event on in a new
// task, so it answers 503, and the queue, which retries without limit
// (ADR 0008), tries the task again until the store is back. The
// dispatcher's budget is a single attempt, so every attempt in the outage
// is a last one. The outage begins
// once the burst has been acknowledged; on the GCP engines ingest's
// best-effort status write times out for many events, which then have no
// record at all, and only the queue's retry brings them through.
func storeAndQueueDown(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	length := storeFaultLength(env)
	storeFault, queueFault := &fault{}, &fault{}
	rep, err := onStack(ctx, env, stackPlan{
		name: "store-and-queue-down",
		injects: fmt.Sprintf("every status read and write and every requeue enqueue fail for %v, from the end of the burst, with one attempt per task: each is the last",
			length),
		opts: devstack.Options{
			TargetRate: s.limit,
			Retry:      oneAttempt,
			WrapStatus: func(st status.Store) status.Store { return faultyStatus{Store: st, f: storeFault} },
			WrapQueue:  func(q queue.Queue) queue.Queue { return requeueFaults{faultyQueue{Queue: q, f: queueFault}} },
		},
		load:      burstLoad(s),
		reconcile: true,
		inject: func(ctx context.Context, _ *devstack.Stack, r *run) error {
			if !sleep(ctx, time.Duration(float64(s.events)/s.rate*float64(time.Second))+500*time.Millisecond) {
				return ctx.Err()
			}
			r.note("status store down and requeues failing")
			storeFault.set(faultFail, 0)
			queueFault.set(faultFail, 0)
			ok := sleep(ctx, length)
			storeFault.set(faultOff, 0)
			queueFault.set(faultOff, 0)
			r.note("status store and requeues back (%d store calls, %d requeues failed)", storeFault.hits.Load(), queueFault.hits.Load())
			if !ok {
				return ctx.Err()
			}
			return nil
		},
		window: drainWindow(s, length+reconcileGrace+reconcileInterval),
	})
	rep.InjectedFaults = storeFault.hits.Load()
	rep.QueueFaults = queueFault.hits.Load()
	return rep, err
}

// requeueFaults applies its queue's fault to requeued tasks only (names
// with a -qN suffix, queue.RequeueTaskName), passing ingest's enqueues
// through untouched.
type requeueFaults struct{ faultyQueue }

func (q requeueFaults) Enqueue(ctx context.Context, t queue.Task) error {
	if isRequeueName(t.Name) {
		return q.faultyQueue.Enqueue(ctx, t)
	}
	return q.faultyQueue.Queue.Enqueue(ctx, t)
}

// isRequeueName reports whether a task name is a requeued task's (…-qN).
func isRequeueName(name string) bool {
	i := strings.LastIndex(name, "-q")
	return i > 0 && i+2 < len(name) && strings.Trim(name[i+2:], "0123456789") == ""
}

// vanishSizes are task-vanished's numbers: the measured case (400 events
// into a 20/s target, 60 tasks removed) in full runs.
func vanishSizes(env scenarioEnv) (sizes, int) {
	if env.Scale == full {
		return sizes{events: 400, limit: 20, rate: 80}, 60
	}
	return sizes{events: 160, limit: 20, rate: 80}, 24
}

// taskVanished removes waiting tasks from the queue behind the stack's back,
// as a finished task would be removed (vanishTasks), right after the load,
// on a stack running without the reconciler. Every other event is
// delivered; the removed ones stay non-final, with nothing left to deliver
// them. With the stack stopped, relayctl audit must list exactly them. The
// stack is then restarted on the same data with the reconciler on, which
// must have every one delivered.
func taskVanished(ctx context.Context, env scenarioEnv) (_ report, err error) {
	s, n := vanishSizes(env)
	o := devstack.Options{
		Engine: env.engine(), DataDir: env.DataDir, TargetRate: s.limit,
		IngestAddr: "127.0.0.1:0", TargetAddr: "127.0.0.1:0", DispatcherAddr: "127.0.0.1:0",
	}
	if env.gcp() {
		o.GCP = env.GCP
		unique := fmt.Sprintf("chaos-task-vanished-%d", time.Now().UnixNano())
		o.GCP.Queue, o.GCP.Collection = unique, unique
	}
	// The Cloud Tasks emulator can delete a task only before its schedule
	// time (vanishCloudTasks): there the target fails every call during
	// the load, so the tasks it refused wait out a 10 s backoff, and those
	// are removed.
	var ahead time.Duration
	if env.gcp() {
		o.Retry = queue.RetryConfig{MaxAttempts: 100, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, MaxDoublings: 1}
		ahead = 2 * time.Second
	}
	r := newRun()
	stack, err := startStack(ctx, o, false)
	if err != nil {
		return report{}, fmt.Errorf("start the stack: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, stack.Stop())
		}
	}()

	if env.gcp() {
		if err := stack.Target.SetErrorRatio(1); err != nil {
			return report{}, err
		}
		r.note("target failing every call (HTTP 500) during the load; 10 s backoff")
	}
	load := burstLoad(s)
	load.IngestURL = stack.IngestURL
	sum, start, end, err := sendLoad(ctx, load, stack.Token)
	if err != nil {
		return report{}, err
	}
	r.note("load ended: %s", sum)
	gone, err := vanishTasks(ctx, env, stack, n, ahead)
	if err != nil {
		return report{}, fmt.Errorf("remove tasks: %w", err)
	}
	r.note("removed %d tasks from the queue", len(gone))
	if env.gcp() {
		if err := stack.Target.SetErrorRatio(0); err != nil {
			return report{}, err
		}
		r.note("target healed")
	}
	byName := make(map[string]string, len(sum.Accepted))
	for _, id := range sum.Accepted {
		byName[queue.TaskName(id)] = id
	}
	var vanished []string
	for _, name := range gone {
		if id, ok := byName[name]; ok {
			vanished = append(vanished, id)
		}
	}
	slices.Sort(vanished)
	if len(vanished) != len(gone) {
		return report{}, fmt.Errorf("%d of the %d removed tasks carried no acknowledged event", len(gone)-len(vanished), len(gone))
	}

	// Everything else drains; the vanished stay where they are, for as
	// long as the reconciler would have needed to act, and more.
	pending, err := waitPending(ctx, stack.Status, sum.Accepted, drainWindow(s, 0), len(vanished))
	if err != nil {
		return report{}, fmt.Errorf("wait for the drain: %w", err)
	}
	sleep(ctx, 2*(reconcileGrace+reconcileInterval))
	if pending, err = waitPending(ctx, stack.Status, sum.Accepted, 0, 0); err != nil {
		return report{}, err
	}
	r.note("without the reconciler: %d acknowledged events not final after the drain, %d of them removed", len(pending), countIn(pending, vanished))
	var violations []string
	if !slices.Equal(pending, vanished) {
		violations = append(violations, fmt.Sprintf("without the reconciler the events left non-final (%d) are not the %d removed", len(pending), len(vanished)))
	}

	stopped = true
	if err := stack.Stop(); err != nil {
		return report{}, fmt.Errorf("stop the stack: %w", err)
	}
	audit, err := relayctlAudit(ctx, env, o.GCP)
	if err != nil {
		return report{}, err
	}
	r.note("stack stopped; relayctl audit lists %d events", len(audit))
	if !slices.Equal(audit, vanished) {
		violations = append(violations, fmt.Sprintf("relayctl audit lists %d events, want exactly the %d removed (missing %v, extra %v)",
			len(audit), len(vanished), minus(vanished, audit), minus(audit, vanished)))
	}

	// Restart on the same data (and dispatcher address, which the Cloud
	// Tasks emulator's tasks carry), with the reconciler on.
	u, err := url.Parse(stack.DispatcherURL)
	if err != nil {
		return report{}, err
	}
	o.DispatcherAddr = u.Host
	if stack, err = startStack(ctx, o, true); err != nil {
		return report{}, fmt.Errorf("restart the stack with the reconciler: %w", err)
	}
	stopped = false
	r.note("restarted with the reconciler (grace %v, every %v)", reconcileGrace, reconcileInterval)
	left, err := waitDrained(ctx, stack.Status, sum.Accepted, drainWindow(sizes{events: len(vanished), limit: s.limit}, reconcileGrace+reconcileInterval))
	if err != nil {
		return report{}, fmt.Errorf("wait for the drain: %w", err)
	}
	r.note("drain wait ended, %d acknowledged events pending", left)

	rep, err := reconcile(ctx, reconcileInput{Source: sum, LoadStart: start, LoadEnd: end, Target: stack.Target, Status: stack.Status})
	if err != nil {
		return report{}, err
	}
	rep.Scenario, rep.Engine, rep.Limit = "task-vanished", o.Engine, s.limit
	rep.Injected = fmt.Sprintf("%d waiting tasks removed from the queue right after a %d-event burst, as finished tasks; the reconciler off, then on", n, s.events)
	if env.gcp() {
		rep.Injected = fmt.Sprintf("%d tasks waiting out a retry backoff deleted (DeleteTask) right after a %d-event burst the target refused; the reconciler off, then on", n, s.events)
	}
	rep.InjectedFaults = int64(len(vanished))
	rep.StuckWithoutReconciler = len(pending)
	rep.Violations = append(rep.Violations, violations...)
	rep.Timeline = r.notes()
	v, err := reconciledViolations(ctx, stack.Status, vanished)
	rep.Violations = append(rep.Violations, v...)
	return rep, err
}

// relayctlAudit runs `relayctl audit --json` on a stopped stack's engines
// (its data directory, or its queue and collection on the emulators), with
// the scenarios' grace, and returns the event ids it lists as stuck,
// sorted.
func relayctlAudit(ctx context.Context, env scenarioEnv, gcp devstack.GCPOptions) ([]string, error) {
	if env.Relayctl == "" {
		return nil, errors.New("task-vanished needs the relayctl binary (scenarioEnv.Relayctl)")
	}
	args := []string{"audit", "--json", "--grace", reconcileGrace.String(), "--data", env.DataDir}
	if env.gcp() {
		if gcp.Project == "" {
			gcp.Project = "eventrelay-dev"
		}
		args = append(args, "--engine", devstack.EngineGCP, "--gcp-project", gcp.Project, "--gcp-queue", gcp.Queue,
			"--firestore-collection", gcp.Collection, "--tasks-emulator", gcp.TasksEndpoint)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, env.Relayctl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("relayctl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var out struct {
		Stuck []struct {
			EventID string `json:"event_id"`
		} `json:"stuck"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("relayctl audit --json: %w\n%s", err, stdout.String())
	}
	ids := make([]string, 0, len(out.Stuck))
	for _, f := range out.Stuck {
		ids = append(ids, f.EventID)
	}
	slices.Sort(ids)
	return ids, nil
}

// waitPending polls ids' records until at most want are not final, or
// window has passed, and returns the ones not final, sorted.
func waitPending(ctx context.Context, st statusReader, ids []string, window time.Duration, want int) ([]string, error) {
	deadline := time.Now().Add(window)
	for {
		recs, err := getAll(ctx, st, ids)
		if err != nil {
			return nil, err
		}
		var pending []string
		for i, id := range ids {
			if !recs[i].found || !recs[i].rec.Status.Terminal() {
				pending = append(pending, id)
			}
		}
		if len(pending) <= want || time.Now().After(deadline) {
			slices.Sort(pending)
			return pending, nil
		}
		if !sleep(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
}

func countIn(ids, set []string) int {
	n := 0
	for _, id := range ids {
		if slices.Contains(set, id) {
			n++
		}
	}
	return n
}

// minus returns the ids of a not in b, at most maxExamples.
func minus(a, b []string) []string {
	var out []string
	for _, id := range a {
		if !slices.Contains(b, id) && len(out) < maxExamples {
			out = append(out, id)
		}
	}
	return out
}
