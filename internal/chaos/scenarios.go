package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/devstack"
	"eventrelay/internal/engines"
	"eventrelay/internal/governor"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/targetmock"
)

// scenarioScale picks the size of a scenario.
type scenarioScale int

const (
	// reduced sizes run inside `make test`: a few minutes on two cores.
	reduced scenarioScale = iota
	// full sizes are the (5,000-event bursts, a 30 s outage, 60 s of
	// overload): `make chaos`.
	full
)

func (s scenarioScale) String() string {
	if s == full {
		return "full"
	}
	return "reduced"
}

// scenarioEnv is where a scenario runs.
type scenarioEnv struct {
	// Engine is devstack.EngineEmbedded (default) or devstack.EngineGCP.
	Engine string
	// GCP points the GCP engines at the emulators (TasksEndpoint,
	// OIDCIssuer). Each run gets its own queue and collection.
	GCP devstack.GCPOptions
	// Scale picks the sizes.
	Scale scenarioScale
	// DataDir is a fresh directory for the run's files.
	DataDir string
	// Relayctl is the relayctl binary, for the scenarios that kill a real
	// process.
	Relayctl string
	// Seed drives every random choice (the kill moments), so a run can be
	// repeated.
	Seed uint64
}

func (e scenarioEnv) engine() string {
	if e.Engine == "" {
		return devstack.EngineEmbedded
	}
	return e.Engine
}

func (e scenarioEnv) gcp() bool { return e.engine() == devstack.EngineGCP }

// scenario is one fault scenario. Run drives it to the end, waits for the
// drain and reconciles; the caller judges the report (problems).
type scenario struct {
	Name string
	// Injects says what the scenario injects, in a line.
	Injects string
	// Engines lists the engines the scenario runs on.
	Engines []string
	// Process marks scenarios that run the real relayctl binary
	// (scenarioEnv.Relayctl is required).
	Process bool
	// Root marks scenarios that need root on Linux (to mount a filesystem).
	Root bool
	Run  func(ctx context.Context, env scenarioEnv) (report, error)
}

// scenarios returns every scenario, in the order docs/reliability.md
// lists them.
func scenarios() []scenario {
	both := []string{devstack.EngineEmbedded, devstack.EngineGCP}
	return []scenario{
		{Name: "kill9", Engines: both, Process: true,
			Injects: "SIGKILL of relayctl dev at 5 random moments of a burst and its drain, restarting each time",
			Run:     kill9},
		{Name: "crash-after-target", Engines: both, Process: true,
			Injects: "SIGKILL of relayctl dev right after the target stored an event, before the dispatcher heard back, 3 times",
			Run:     crashAfterTarget},
		{Name: "target-5xx", Engines: both,
			Injects: "20 % of the target's calls answered HTTP 500", Run: target5xx},
		{Name: "target-malformed", Engines: both,
			Injects: "20 % of the target's successful answers mangled after the event was stored", Run: targetMalformed},
		{Name: "target-slow", Engines: []string{devstack.EngineEmbedded},
			Injects: "target latency 600 ms + up to 600 ms against a 1 s dispatch deadline", Run: targetSlow},
		{Name: "target-outage", Engines: both,
			Injects: "every target call answered HTTP 500 for 5 s (full: 30 s)", Run: targetOutage},
		{Name: "target-500-storm", Engines: both,
			Injects: "every target call answered HTTP 500 for 5 s (full: 30 s), then healed: calls during the outage, time back to full rate", Run: target500Storm},
		{Name: "last-attempt-lost", Engines: both,
			Injects: "a layer in front of the dispatcher answers the last attempt of ~1/16 of the tasks 503: the queue drops them", Run: lastAttemptLost},
		{Name: "task-vanished", Engines: both, Process: true,
			Injects: "waiting tasks removed from the queue behind the stack's back (24 of 160; full: 60 of 400)", Run: taskVanished},
		{Name: "store-and-queue-down", Engines: both,
			Injects: "the status store and requeues fail together for 3 s (full: 10 s) after the burst, with one attempt per task", Run: storeAndQueueDown},
		{Name: "storm-429", Engines: both,
			Injects: "target limit cut to a tenth for 5 s (full: 30 s): HTTP 429 + Retry-After", Run: storm(targetmock.ModeHTTP)},
		{Name: "storm-graphql", Engines: both,
			Injects: "target limit cut to a tenth for 5 s (full: 30 s): RATE_LIMITED errors in HTTP 200", Run: storm(targetmock.ModeGraphQL)},
		{Name: "status-down", Engines: both,
			Injects: "every status store read and write fails for 3 s (full: 10 s)", Run: statusFault("status-down", faultFail, 0, 0)},
		{Name: "status-down-budget", Engines: both,
			Injects: "as status-down, with 3 attempts per task: the outage outlasts the retry budget",
			Run:     statusFault("status-down-budget", faultFail, 0, 3)},
		{Name: "status-slow", Engines: both,
			Injects: "every status store read and write 2 s slower for 3 s (full: 10 s)", Run: statusFault("status-slow", faultSlow, 2*time.Second, 0)},
		{Name: "queue-down", Engines: []string{devstack.EngineEmbedded},
			Injects: "every enqueue fails for 3 s, then hangs for 3 s (full: 10 s each)", Run: queueDown},
		{Name: "db-locked", Engines: []string{devstack.EngineEmbedded},
			Injects: "queue.db write-locked by a second connection for 3 s (full: 10 s)", Run: dbLocked},
		{Name: "disk-full", Engines: []string{devstack.EngineEmbedded}, Root: true,
			Injects: "the data directory's filesystem full for 3 s (full: 10 s)", Run: diskFull},
		{Name: "overload", Engines: both,
			Injects: "source at 10x the limit for 10 s (full, embedded: 60 s)", Run: overload},
	}
}

// sizes are a scenario's numbers.
type sizes struct {
	events int     // events the source sends
	limit  float64 // the target's and the queue's rate
	rate   float64 // the source's rate
}

// burstSizes are the sizes of the burst scenarios: the source at 4x the
// limit. The emulators are slower, so the GCP runs are smaller.
func burstSizes(env scenarioEnv) sizes {
	switch {
	case env.gcp() && env.Scale == full:
		return sizes{events: 1000, limit: 20, rate: 80}
	case env.gcp():
		return sizes{events: 200, limit: 20, rate: 80}
	case env.Scale == full:
		return sizes{events: 5000, limit: 100, rate: 400}
	default:
		return sizes{events: 600, limit: 50, rate: 200}
	}
}

// faultLength is how long an outage or a 429 storm lasts.
func faultLength(env scenarioEnv) time.Duration {
	if env.Scale == full {
		return 30 * time.Second
	}
	return 5 * time.Second
}

// drainWindow is how long the harness waits for the backlog to drain:
// generous, since an event still pending at its end counts as stuck.
func drainWindow(s sizes, extra time.Duration) time.Duration {
	ideal := time.Duration(float64(s.events) / s.limit * float64(time.Second))
	return 3*ideal + extra + time.Minute
}

// stackPlan is a scenario on an in-process stack (internal/devstack).
type stackPlan struct {
	name, injects string
	opts          devstack.Options
	load          sourcemock.Config
	// inject runs beside the load from its start and returns once every
	// fault it injected is lifted.
	inject func(ctx context.Context, s *devstack.Stack, r *run) error
	// after, when set, runs once the drain wait ended, before the
	// reconciliation, with the stack still running.
	after  func(ctx context.Context, s *devstack.Stack, r *run)
	window time.Duration
	// reconcile runs the stack with the reconciler (reconcileConfig).
	reconcile bool
}

// onStack starts a stack, drives the load while injecting, waits for the
// drain, reconciles and stops the stack.
func onStack(ctx context.Context, env scenarioEnv, p stackPlan) (_ report, err error) {
	o := p.opts
	o.Engine = env.engine()
	o.DataDir = env.DataDir
	o.IngestAddr, o.TargetAddr, o.DispatcherAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if env.gcp() {
		o.GCP = env.GCP
		// The emulator remembers queue ids and task names forever.
		unique := fmt.Sprintf("chaos-%s-%d", p.name, time.Now().UnixNano())
		o.GCP.Queue, o.GCP.Collection = unique, unique
	}
	stack, err := startStack(ctx, o, p.reconcile)
	if err != nil {
		return report{}, fmt.Errorf("start the stack: %w", err)
	}
	defer func() {
		if stopErr := stack.Stop(); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stop the stack: %w", stopErr))
		}
	}()
	backlog := sampleBacklog(ctx, stack.Queue)

	r := newRun()
	injected := make(chan error, 1)
	go func() {
		if p.inject == nil {
			injected <- nil
			return
		}
		injected <- p.inject(ctx, stack, r)
	}()
	load := p.load
	load.IngestURL = stack.IngestURL
	sum, start, end, err := sendLoad(ctx, load, stack.Token)
	if err != nil {
		return report{}, errors.Join(err, <-injected)
	}
	r.note("load ended: %s", sum)
	if err := <-injected; err != nil {
		return report{}, fmt.Errorf("inject: %w", err)
	}
	pending, err := waitDrained(ctx, stack.Status, sum.Accepted, p.window)
	if err != nil {
		return report{}, fmt.Errorf("wait for the drain: %w", err)
	}
	r.note("drain wait ended, %d acknowledged events pending", pending)
	if p.after != nil {
		p.after(ctx, stack, r)
	}

	rep, err := reconcile(ctx, reconcileInput{Source: sum, LoadStart: start, LoadEnd: end, Target: stack.Target, Status: stack.Status})
	if err != nil {
		return report{}, err
	}
	rep.Scenario, rep.Engine, rep.Injected, rep.Limit = p.name, o.Engine, p.injects, o.TargetRate
	rep.MaxBacklog = backlog.Max()
	rep.Timeline = r.notes()
	return rep, nil
}

// burstLoad is the source sending s.events at s.rate, judged by the
// source's 500 ms rule.
func burstLoad(s sizes) sourcemock.Config {
	return sourcemock.Config{Rate: s.rate, Count: s.events, Concurrency: 64, Deadline: sourcemock.DefaultDeadline}
}

func target5xx(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	return onStack(ctx, env, stackPlan{
		name:    "target-5xx",
		injects: "20 % of the target's calls answered HTTP 500, for the whole run",
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
			r.note("target error ratio 0.2")
			return st.Target.SetErrorRatio(0.2)
		},
		window: drainWindow(s, 0),
	})
}

func targetMalformed(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	return onStack(ctx, env, stackPlan{
		name:    "target-malformed",
		injects: "20 % of the target's successful answers replaced by a truncated body, an HTML page or JSON without the receipt (HTTP 200), after the event was stored",
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
			r.note("target malformed ratio 0.2")
			return st.Target.SetMalformedRatio(0.2)
		},
		window: drainWindow(s, 0),
	})
}

func targetSlow(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	s.events /= 2
	s.rate /= 2
	const deadline = time.Second
	return onStack(ctx, env, stackPlan{
		name:    "target-slow",
		injects: "target latency 600 ms + up to 600 ms: about a third of the calls outlive the 1 s dispatch deadline",
		opts:    devstack.Options{TargetRate: s.limit, DispatchDeadline: deadline},
		load:    burstLoad(s),
		inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
			r.note("target latency 600ms + [0, 600ms), dispatch deadline %v", deadline)
			return errors.Join(st.Target.SetLatency(600*time.Millisecond), st.Target.SetLatencyJitter(600*time.Millisecond))
		},
		window: drainWindow(s, 2*time.Minute),
	})
}

func targetOutage(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	outage := faultLength(env)
	return onStack(ctx, env, stackPlan{
		name:    "target-outage",
		injects: fmt.Sprintf("every target call answered HTTP 500 for %v, from 1 s into the burst", outage),
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			r.note("target down (error ratio 1)")
			if err := st.Target.SetErrorRatio(1); err != nil {
				return err
			}
			sleep(ctx, outage)
			r.note("target back (error ratio 0)")
			return st.Target.SetErrorRatio(0)
		},
		window: drainWindow(s, outage),
	})
}

// storm cuts the target's limit to a tenth of the queue's rate for a
// while: most calls are answered rate limited, in the given mode. The
// queue's retry budget is cut to stormAttempts so that events do reach
// their last attempt during the storm: the dispatcher must requeue them,
// never dead-letter them (ADR 0010). The rate governor judges 2 s windows
// so that it acts within the reduced 5 s storm; the harness notes each of
// its decisions and the live rate once the backlog drained.
func storm(mode targetmock.RateLimitMode) func(ctx context.Context, env scenarioEnv) (report, error) {
	name := "storm-429"
	if mode == targetmock.ModeGraphQL {
		name = "storm-graphql"
	}
	return func(ctx context.Context, env scenarioEnv) (report, error) {
		s := burstSizes(env)
		length := faultLength(env)
		const burst = 5
		var (
			final     governor.Snapshot
			stopWatch = func() {}
		)
		rep, err := onStack(ctx, env, stackPlan{
			name:    name,
			injects: fmt.Sprintf("target limit cut from %.4g/s to %.4g/s for %v, from 1 s into the burst (%s rate limiting); %d attempts per task", s.limit, s.limit/10, length, mode, stormAttempts),
			opts: devstack.Options{
				TargetRate: s.limit, TargetBurst: burst, TargetMode: string(mode),
				Retry:    queue.RetryConfig{MaxAttempts: stormAttempts, MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxDoublings: 5},
				Governor: governor.Config{Window: 2 * time.Second, MinAttempts: 2},
			},
			load: burstLoad(s),
			inject: func(ctx context.Context, st *devstack.Stack, r *run) error {
				stopWatch = watchGovernor(ctx, st.Governor, r) // until after the drain
				if !sleep(ctx, time.Second) {
					return ctx.Err()
				}
				r.note("target limit %.4g/s burst 1 (%s)", s.limit/10, mode)
				if err := st.Target.SetRate(s.limit/10, 1); err != nil {
					return err
				}
				sleep(ctx, length)
				r.note("target limit back to %.4g/s", s.limit)
				return st.Target.SetRate(s.limit, burst)
			},
			after: func(_ context.Context, st *devstack.Stack, r *run) {
				defer stopWatch()
				if st.Governor == nil {
					return
				}
				// The queue is idle now: give the governor the windows it
				// needs to raise the rate back to the ceiling.
				deadline := time.Now().Add(30 * time.Second)
				for {
					final = st.Governor.Snapshot()
					if !final.Holding || time.Now().After(deadline) || !sleep(ctx, 500*time.Millisecond) {
						break
					}
				}
				r.note("after the drain: live rate %.4g/s of %.4g/s, governor holding=%v", final.Live.Rate, final.Ceiling, final.Holding)
			},
			window: drainWindow(s, length),
		})
		rep.GovernorCeiling, rep.GovernorFinalRate = final.Ceiling, final.Live.Rate
		return rep, err
	}
}

// stormAttempts is the retry budget per task in the storm scenarios.
const stormAttempts = 3

// watchGovernor notes every decision the governor acts on until stopped.
func watchGovernor(ctx context.Context, g *governor.Governor, r *run) (stop func()) {
	if g == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last time.Time
		for {
			sn := g.Snapshot()
			if !sn.ActedAt.IsZero() && sn.ActedAt != last {
				last = sn.ActedAt
				r.note("governor %s to %.4g/s: %s", sn.Acted.Action, sn.Acted.Rate, sn.Acted.Reason)
			}
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

func overload(ctx context.Context, env scenarioEnv) (report, error) {
	limit, length := 20.0, 10*time.Second
	switch {
	case env.gcp():
		// The emulators are functional stand-ins, not performance ones, and
		// shared: a ten-minute drain on them measures their restarts. The
		// 60 s figure is the embedded engine's.
	case env.Scale == full:
		limit, length = 50, 60*time.Second
	}
	s := sizes{limit: limit, rate: 10 * limit, events: int(10 * limit * length.Seconds())}
	return onStack(ctx, env, stackPlan{
		name:    "overload",
		injects: fmt.Sprintf("source at %.4g/s, 10x the %.4g/s limit, for %v", s.rate, s.limit, length),
		opts:    devstack.Options{TargetRate: s.limit},
		load:    sourcemock.Config{Rate: s.rate, Duration: length, Concurrency: 64, Deadline: sourcemock.DefaultDeadline},
		window:  drainWindow(s, 0),
	})
}

// kill9 runs the real relayctl binary and SIGKILLs it at random moments
// while a burst is sent and drained, restarting it on the same data
// directory each time. On the GCP engines the queue and the status store
// live in the emulators and survive the kills; the target's record lives in
// the data directory on both.
func kill9(ctx context.Context, env scenarioEnv) (_ report, err error) {
	if env.Relayctl == "" {
		return report{}, errors.New("kill9 needs the relayctl binary (scenarioEnv.Relayctl)")
	}
	const kills = 5
	s := burstSizes(env)
	// Each kill comes after a random uptime in [minUp, maxUp): spread over
	// the burst and its drain.
	minUp, maxUp := 300*time.Millisecond, 2500*time.Millisecond
	if env.Scale == full {
		minUp, maxUp = time.Second, 10*time.Second
	}
	rng := rand.New(rand.NewPCG(env.Seed, env.Seed^0x9e3779b97f4a7c15))

	gcp, args := processEngine(env, "kill9")
	p, err := startRelayProcess(ctx, relayProcessOptions{
		Bin: env.Relayctl, DataDir: env.DataDir,
		IngestAddr: "127.0.0.1:0", TargetAddr: "127.0.0.1:0", DispatcherAddr: "127.0.0.1:0",
		Args: append([]string{"--target-rate", fmt.Sprint(s.limit)}, args...),
	})
	if err != nil {
		return report{}, err
	}
	defer func() {
		if stopErr := p.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	token, err := devToken(env.DataDir)
	if err != nil {
		return report{}, err
	}

	r := newRun()
	r.note("seed %d", env.Seed)
	killed := make(chan error, 1)
	go func() {
		for i := range kills {
			up := minUp + time.Duration(rng.Int64N(int64(maxUp-minUp)))
			if !sleep(ctx, up) {
				killed <- ctx.Err()
				return
			}
			if err := p.kill(); err != nil {
				killed <- err
				return
			}
			r.note("kill -9 #%d after %v up", i+1, up.Round(time.Millisecond))
			if err := p.restart(ctx); err != nil {
				killed <- err
				return
			}
			r.note("restarted")
		}
		killed <- nil
	}()
	sum, start, end, err := sendLoad(ctx, sourcemock.Config{
		IngestURL: "http://" + p.ingestAddr(), Rate: s.rate, Count: s.events, Concurrency: 64, Deadline: sourcemock.DefaultDeadline,
	}, token)
	if err != nil {
		return report{}, errors.Join(err, <-killed)
	}
	r.note("load ended: %s", sum)
	if err := <-killed; err != nil {
		return report{}, fmt.Errorf("kill and restart: %w", err)
	}

	st, err := drainAndStop(ctx, env, gcp, p, r, sum.Accepted, drainWindow(s, 0))
	if err != nil {
		return report{}, err
	}
	defer st.Close()

	// reconcile from the target's file, as the next start would find it.
	quiet := logging.WithLogger(ctx, discardLogger())
	target, err := targetmock.NewServer(quiet, targetmock.Config{
		Port: "0", Rate: 1, Burst: 1, RateLimitMode: targetmock.ModeHTTP,
		DataPath: filepath.Join(env.DataDir, devstack.TargetFile),
	})
	if err != nil {
		return report{}, fmt.Errorf("open the target's record: %w", err)
	}
	defer target.Close()
	rep, err := reconcile(ctx, reconcileInput{Source: sum, LoadStart: start, LoadEnd: end, Target: target, Status: st})
	if err != nil {
		return report{}, err
	}
	rep.Scenario, rep.Engine, rep.Limit = "kill9", env.engine(), s.limit
	rep.Injected = fmt.Sprintf("%d x SIGKILL of relayctl dev after %v-%v up each, restarting on the same data", kills, minUp, maxUp)
	rep.Timeline = r.notes()
	return rep, nil
}

// processEngine returns the GCP options of a relayctl process's run (a
// queue and collection of its own, since the emulators remember every name)
// and the flags that select its engine.
func processEngine(env scenarioEnv, name string) (devstack.GCPOptions, []string) {
	gcp := env.GCP
	if !env.gcp() {
		return gcp, nil
	}
	if gcp.Project == "" {
		gcp.Project = "eventrelay-dev"
	}
	unique := fmt.Sprintf("chaos-%s-%d", name, time.Now().UnixNano())
	gcp.Queue, gcp.Collection = unique, unique
	return gcp, []string{"--engine", devstack.EngineGCP,
		"--gcp-project", gcp.Project, "--gcp-queue", gcp.Queue, "--firestore-collection", gcp.Collection,
		"--tasks-emulator", gcp.TasksEndpoint, "--tasks-oidc-issuer", gcp.OIDCIssuer}
}

// devToken mints the source's dev ID tokens with the issuer key a
// relayctl process keeps in dataDir.
func devToken(dataDir string) (func(context.Context) (string, error), error) {
	iss, err := devissuer.LoadOrCreate(dataDir)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	return func(context.Context) (string, error) {
		return iss.Mint(devissuer.DefaultAudience, "chaos", devissuer.DefaultSourceEmail, time.Hour)
	}, nil
}

// drainAndStop waits until every acknowledged id is terminal (or the window
// closes), then stops the process cleanly. It returns the status store,
// opened beside the process as relayctl status does (SQLite WAL, or
// Firestore); the caller closes it.
func drainAndStop(ctx context.Context, env scenarioEnv, gcp devstack.GCPOptions, p *relayProcess, r *run, acked []string, window time.Duration) (closingStatus, error) {
	st, err := openStatus(ctx, env, gcp)
	if err != nil {
		return nil, err
	}
	pending, err := waitDrained(ctx, st, acked, window)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("wait for the drain: %w", err), st.Close())
	}
	r.note("drain wait ended, %d acknowledged events pending", pending)
	if err := p.stop(); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	r.note("stopped cleanly")
	return st, nil
}

// closingStatus is a status store the harness opened itself.
type closingStatus interface {
	statusPoller
	Close() error
}

// openStatus opens the status store a relayctl process writes: the SQLite
// file in the data directory, or the run's Firestore collection.
func openStatus(ctx context.Context, env scenarioEnv, gcp devstack.GCPOptions) (closingStatus, error) {
	engine := devstack.EngineEmbedded
	if env.gcp() {
		engine = devstack.EngineGCP
	}
	c, err := devstack.EngineConfig(engine, env.DataDir, gcp)
	if err != nil {
		return nil, err
	}
	st, err := engines.OpenStatus(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("open the status store: %w", err)
	}
	return st, nil
}

// scenarioNames lists the scenarios' names, for flags and messages.
func scenarioNames() string {
	var n []string
	for _, s := range scenarios() {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}
