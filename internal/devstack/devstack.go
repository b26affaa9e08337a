// Package devstack runs the whole pipeline in one process on the embedded
// engine: the dev token issuer, ingest, the SQLite queue, the dispatcher,
// targetmock and (optionally) sourcemock. `relayctl dev`, the end-to-end
// tests and the load benchmarks all start the stack through here, so what a
// newcomer runs is what the tests prove.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/governor"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/serving"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
	"eventrelay/internal/status/firestorestatus"
	"eventrelay/internal/targetmock"
	"eventrelay/internal/telemetry"
	"eventrelay/internal/wiring"
)

// Files in the data directory.
const (
	QueueFile  = "queue.db"
	StatusFile = "status.db"
	TargetFile = "target.db"
)

// Engines a stack can run on.
const (
	// EngineEmbedded keeps the queue and the status store in SQLite files
	// in the data dir: only Go needed.
	EngineEmbedded = engines.Embedded
	// EngineGCP uses the Cloud Tasks queue and the Firestore status store,
	// here against their emulators (FIRESTORE_EMULATOR_HOST and the
	// Cloud Tasks emulator's address): the production engines, locally.
	EngineGCP = engines.GCP
)

// GCPOptions point the stack's GCP engines at Cloud Tasks and Firestore
// (in practice their emulators).
type GCPOptions struct {
	// Project and Location name the queue's parent (defaults
	// "eventrelay-dev", "us-central1").
	Project, Location string
	// Queue is the queue id (default "events"). The emulator cannot update a
	// queue: a queue id keeps the config it was created with.
	Queue string
	// TasksEndpoint is the Cloud Tasks emulator's host:port (required).
	TasksEndpoint string
	// OIDCIssuer is the issuer URL of the tokens the emulator puts on tasks
	// (its -openid-issuer); the dispatcher verifies them against its /jwks.
	OIDCIssuer string
	// InvokerEmail is the service account the tasks' OIDC tokens name
	// (default cloud-tasks-invoker@PROJECT.iam.gserviceaccount.com).
	InvokerEmail string
	// Collection holds the status documents (default "events").
	Collection string
}

// Options configure a local stack. Zero values take the defaults noted.
type Options struct {
	// Engine is EngineEmbedded (default) or EngineGCP.
	Engine string
	// GCP configures EngineGCP.
	GCP GCPOptions
	// DataDir holds every durable file; a restart on the same dir resumes.
	DataDir string
	// TargetRate is the target's limit in events/s; the queue's max
	// dispatch rate is set to it (default QUEUE_MAX_DISPATCHES_PER_SECOND's).
	TargetRate float64
	// TargetBurst is the target's token-bucket size (default 5).
	TargetBurst int
	// TargetMode is how the target signals its limit: http or graphql.
	TargetMode string
	// TargetURL, when set, is an external target's GraphQL endpoint: the
	// dispatcher calls it and no targetmock is started (Stack.Target is
	// nil, TargetAddr unused). TargetRate still sets the queue's rate.
	TargetURL string
	// QueueBurst is the queue's burst (default QUEUE_MAX_BURST_SIZE's, 1:
	// dispatch smoothly).
	QueueBurst int
	// QueueShards is how many engine queues carry the queue (default
	// QUEUE_SHARDS's, 1), as in production (internal/engines): embedded,
	// the files QueueFile, queue-1.db, ...; on gcp the queues GCP.Queue,
	// GCP.Queue-1, ... TargetRate and QueueBurst are the totals, which
	// the shards share.
	QueueShards int
	// SourceRate drives sourcemock at this many events/s; 0 runs no source.
	SourceRate float64
	// SourceCount stops the source after this many events (0 = unbounded).
	SourceCount int
	// Addresses; "127.0.0.1:0" picks a free port.
	IngestAddr, TargetAddr, DispatcherAddr string
	// Brand added to every event (default BRAND's).
	Brand string
	// Retry overrides the retry policy (zero value = defaults suited to a
	// local run: 100 ms .. 10 s backoff, 100 attempts). Its backoff is the
	// queue's; its MaxAttempts and MaxRetryDuration are the dispatcher's
	// budget (DELIVERY_*), after which it dead-letters, while the queue
	// retries without limit, as in production (docs/adr/0008).
	Retry queue.RetryConfig
	// QueueMaxAttempts, when > 0, gives the queue a finite budget of its
	// own: it drops a task after that many attempts, whatever the
	// dispatcher answered, as a queue configured so in production would
	// (the reconciler covers it). Zero: unlimited, the default.
	QueueMaxAttempts int
	// DispatchDeadline bounds one delivery (default 15 s).
	DispatchDeadline time.Duration
	// TracerProvider and MeterProvider instrument every component (nil: the
	// global ones). With a meter provider the queue's backlog gauges are
	// reported too, when the engine has stats.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// TracerProviderFor, when set, gives each component its own tracer
	// provider, by the service name it has in production (ingest,
	// dispatcher, targetmock), in place of TracerProvider: its spans then
	// carry that name (telemetry.Pipeline).
	TracerProviderFor func(service string) trace.TracerProvider

	// WrapQueue, when set, wraps the queue ingest enqueues into, and
	// WrapStatus the status store ingest and the dispatcher write. They are
	// fault-injection seams for the reliability harness (internal/chaos):
	// the engines and Stack.Queue / Stack.Status stay unwrapped, so the
	// harness reads the truth while the services see the faults.
	WrapQueue  func(queue.Queue) queue.Queue
	WrapStatus func(status.Store) status.Store
	// WrapDispatcher, when set, wraps the dispatcher's handler: a layer in
	// front of it, as Cloud Run's front end is in production, that can
	// answer a delivery itself so the handler never runs.
	WrapDispatcher func(http.Handler) http.Handler

	// Governor configures the rate governor (ADR 0010); the zero value is
	// on with the defaults, Mode "off" only watches.
	Governor governor.Config
	// Reconcile configures the reconciler the dispatcher runs; each zero
	// field takes its RECONCILE_* env tag's default.
	Reconcile reconcile.Config
}

func (o *Options) defaults() {
	if o.Engine == "" {
		o.Engine = EngineEmbedded
	}
	if o.GCP.Project == "" {
		o.GCP.Project = "eventrelay-dev"
	}
	if o.GCP.Location == "" {
		o.GCP.Location = "us-central1"
	}
	if o.GCP.Queue == "" {
		o.GCP.Queue = "events"
	}
	if o.GCP.InvokerEmail == "" {
		o.GCP.InvokerEmail = "cloud-tasks-invoker@" + o.GCP.Project + ".iam.gserviceaccount.com"
	}
	if o.GCP.Collection == "" {
		o.GCP.Collection = firestorestatus.DefaultCollection
	}
	if o.TargetBurst == 0 {
		// Above the queue's burst of 1 (TARGET_BURST's default), so that
		// the queue, not the target, holds the limit.
		o.TargetBurst = 5
	}
	if o.TargetMode == "" {
		o.TargetMode = "http"
	}
	if o.IngestAddr == "" {
		o.IngestAddr = "127.0.0.1:8080"
	}
	if o.TargetAddr == "" {
		o.TargetAddr = "127.0.0.1:8082"
	}
	if o.DispatcherAddr == "" {
		o.DispatcherAddr = "127.0.0.1:0"
	}
	// The two settings a local run overrides on purpose (every other one
	// takes its env tag's default, in serviceConfigs): retries come fast
	// (100 ms to 10 s instead of production's 1 s to 300 s), and a delivery
	// is bounded by 15 s instead of 30 s, so that a stuck one is retried
	// soon.
	if o.Retry == (queue.RetryConfig{}) {
		o.Retry = queue.RetryConfig{MaxAttempts: 100, MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxDoublings: 5}
	}
	if o.DispatchDeadline == 0 {
		o.DispatchDeadline = 15 * time.Second
	}
}

// Queue is what the stack needs of a queue engine.
type Queue interface {
	queue.Queue
	queue.StatsReader
	Close() error
}

// StatusStore is what the stack needs of a status engine: a status store
// that must be closed.
type StatusStore = engines.Store

// Stack is a running local pipeline.
type Stack struct {
	opts Options

	Issuer *devissuer.Issuer
	// Queue is the engine ingest enqueues into (over Options.QueueShards >
	// 1, a shardedqueue.Queue, whose Stats and Control are the totals);
	// Stats may fail where the engine cannot tell (the Cloud Tasks
	// emulator has no queue stats).
	Queue Queue
	// Status is the status store.
	Status StatusStore
	Target *targetmock.Server
	Sender *sourcemock.Sender // nil when SourceRate is 0
	// Governor is the rate governor (nil when the engine has no controls).
	Governor *governor.Governor
	// Reconciler requeues events whose task vanished from the queue (nil
	// when the engine cannot tell whether a task exists).
	Reconciler *reconcile.Reconciler

	IngestURL, TargetURL, DispatcherURL string
	QueueConfig                         queue.Config

	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	done   chan struct{}
	// SourceDone is closed when the source has finished sending (never, when
	// there is no source or it is unbounded).
	SourceDone chan struct{}
	// SourceSummary holds the source's final summary once SourceDone closes.
	SourceSummary sourcemock.Summary
}

// Start opens the data dir and starts every component. The stack runs until
// ctx is done or Stop is called; Wait returns the first error.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	o.defaults()
	if o.DataDir == "" {
		return nil, errors.New("devstack: a data directory is required")
	}
	switch o.Engine {
	case EngineEmbedded:
	case EngineGCP:
		if o.GCP.TasksEndpoint == "" || o.GCP.OIDCIssuer == "" {
			return nil, errors.New("devstack: the gcp engine needs the Cloud Tasks emulator's address and OIDC issuer (scripts/emulators.sh start exports them)")
		}
	default:
		return nil, fmt.Errorf("devstack: unknown engine %q (want %s or %s)", o.Engine, EngineEmbedded, EngineGCP)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	logger := logging.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{opts: o, cancel: cancel, done: make(chan struct{}), SourceDone: make(chan struct{})}
	var closers []func() error
	defer func() {
		if err != nil {
			cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	if s.Issuer, err = devissuer.LoadOrCreate(o.DataDir); err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	devissuer.LogNotForProduction(ctx)
	// Both hops check dev tokens with the cloud's rules: ingest accepts the
	// source's email only, the dispatcher the queue's only, each for its
	// own audience.
	verifier, err := auth.NewOIDCVerifier(ctx, auth.OIDCConfig{
		Issuer:        devissuer.IssuerID,
		Audience:      devissuer.DefaultAudience,
		Keys:          s.Issuer.PublicKeys(),
		AllowedEmails: []string{devissuer.DefaultSourceEmail},
	})
	if err != nil {
		return nil, fmt.Errorf("ingest verifier: %w", err)
	}
	// Listeners first, so every URL is known before anything is wired.
	// Until they serve, a failed start must release them.
	ingestSrv, err := serving.New(o.IngestAddr, serving.Timeouts{})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	listening := []*serving.Server{ingestSrv}
	defer func() {
		if err != nil {
			for _, l := range listening {
				_ = l.Close()
			}
		}
	}()
	var targetSrv *serving.Server
	if o.TargetURL == "" {
		if targetSrv, err = serving.New(o.TargetAddr, serving.Timeouts{}); err != nil {
			return nil, fmt.Errorf("targetmock: %w", err)
		}
		listening = append(listening, targetSrv)
	}
	dispatchSrv, err := serving.New(o.DispatcherAddr, serving.Timeouts{})
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	listening = append(listening, dispatchSrv)
	s.IngestURL, s.DispatcherURL = ingestSrv.URL(), dispatchSrv.URL()
	targetGraphQL := o.TargetURL
	if targetSrv != nil {
		s.TargetURL = targetSrv.URL()
		targetGraphQL = s.TargetURL + "/graphql"
	}

	cfg, err := s.serviceConfigs(ctx, targetGraphQL)
	if err != nil {
		return nil, err
	}

	taskURL := s.DispatcherURL + dispatcher.TaskPath
	dispatchVerifier, err := s.dispatcherVerifier(ctx, taskURL)
	if err != nil {
		return nil, fmt.Errorf("dispatcher verifier: %w", err)
	}

	if s.Status, err = s.openStatus(ctx); err != nil {
		return nil, fmt.Errorf("status store: %w", err)
	}
	closers = append(closers, s.Status.Close)

	instrument := func(service string) []telemetry.Option {
		tp := o.TracerProvider
		if o.TracerProviderFor != nil {
			tp = o.TracerProviderFor(service)
		}
		return []telemetry.Option{telemetry.WithTracerProvider(tp), telemetry.WithMeterProvider(o.MeterProvider)}
	}
	if targetSrv != nil {
		_, targetPort, _ := net.SplitHostPort(targetSrv.Addr())
		if s.Target, err = targetmock.NewServer(ctx, targetmock.Config{
			Port:          targetPort,
			Rate:          s.opts.TargetRate,
			Burst:         o.TargetBurst,
			RateLimitMode: targetmock.RateLimitMode(o.TargetMode),
			DataPath:      filepath.Join(o.DataDir, TargetFile),
		}, instrument("targetmock")...); err != nil {
			return nil, fmt.Errorf("targetmock: %w", err)
		}
		closers = append(closers, s.Target.Close)
	}

	var runQueue func(context.Context) error
	if s.Queue, runQueue, err = s.openQueue(ctx, taskURL); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	closers = append(closers, s.Queue.Close)
	// The emulator has no queue stats: no gauges rather than an error each
	// collection.
	if _, err := s.Queue.Stats(ctx); !errors.Is(err, cloudtasksqueue.ErrNoStats) {
		stop, err := queue.ObserveGauges(ctx, o.MeterProvider, s.QueueConfig.Name, s.Queue)
		if err != nil {
			return nil, fmt.Errorf("queue gauges: %w", err)
		}
		closers = append(closers, stop)
	}

	var (
		ingestQueue queue.Queue  = s.Queue
		services    status.Store = s.Status
	)
	if o.WrapQueue != nil {
		ingestQueue = o.WrapQueue(ingestQueue)
	}
	if o.WrapStatus != nil {
		services = o.WrapStatus(services)
	}
	// The same wiring as the dispatcher binary's: the queue engine (behind
	// WrapQueue, as ingest's) is the requeue queue, the governor's control
	// and, with the engine's Inspector (unwrapped: the truth), what the
	// reconciler repairs through.
	inspector, _ := s.Queue.(queue.Inspector)
	disp, err := wiring.NewDispatcher(ctx, wiring.DispatcherParts{
		Config:       cfg.Dispatcher,
		Retry:        o.Retry, // the queue's backoff, the dispatcher's budget
		Store:        services,
		Authenticate: auth.Middleware(dispatchVerifier),
		Requeue:      ingestQueue,
		Governor:     s.governorOptions(ctx, o.Governor),
		Inspector:    inspector,
		Reconcile:    cfg.Reconcile,
		Telemetry:    instrument("dispatcher"),
	})
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	closers = append(closers, disp.Close)
	s.Governor, s.Reconciler = disp.Governor, disp.Reconciler

	ing, err := ingest.NewServer(ctx, cfg.Ingest, ingestQueue, services, verifier, instrument("ingest")...)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}

	if o.SourceRate > 0 {
		s.Sender, err = sourcemock.NewSender(sourcemock.Config{
			IngestURL:   s.IngestURL,
			Rate:        o.SourceRate,
			Count:       o.SourceCount,
			Concurrency: 64,
			Deadline:    500 * time.Millisecond,
		}, s.Token, nil)
		if err != nil {
			return nil, fmt.Errorf("sourcemock: %w", err)
		}
	}

	// Nothing below fails: from here on the goroutines own the listeners.
	if targetSrv != nil {
		s.run(func() error { return targetSrv.Serve(ctx, s.Target.Routes(ctx)) })
	}
	if disp.Governor != nil || disp.Reconciler != nil {
		s.run(func() error { return disp.Run(ctx) })
	}
	dispatchHandler := disp.Server.Routes(ctx)
	if o.WrapDispatcher != nil {
		dispatchHandler = o.WrapDispatcher(dispatchHandler)
	}
	s.run(func() error { return dispatchSrv.Serve(ctx, dispatchHandler) })
	if runQueue != nil {
		s.run(func() error { return runQueue(ctx) }) // the embedded engine dispatches in-process
	}
	s.run(func() error { return ingestSrv.Serve(ctx, ing.Routes(ctx)) })

	if s.Sender != nil {
		s.run(func() error {
			defer close(s.SourceDone)
			sum, err := s.Sender.Run(ctx)
			s.SourceSummary = sum
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("sourcemock: %w", err)
			}
			return nil
		})
	}

	go func() {
		s.wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil {
				s.fail(err)
			}
		}
		close(s.done)
	}()
	logger.InfoContext(ctx, "local stack started",
		"ingest", s.IngestURL, "target", s.TargetURL, "dispatcher", s.DispatcherURL,
		"data", o.DataDir, "target_rate", s.opts.TargetRate)
	return s, nil
}

func (s *Stack) run(f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil {
			s.fail(err)
			s.cancel() // one component down takes the stack down
		}
	}()
}

func (s *Stack) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// Token mints a fresh dev ID token for ingest.
func (s *Stack) Token(context.Context) (string, error) {
	return s.Issuer.Mint(devissuer.DefaultAudience, "sourcemock", devissuer.DefaultSourceEmail, time.Hour)
}

// Stop shuts every component down and waits for it.
func (s *Stack) Stop() error {
	s.cancel()
	return s.Wait()
}

// Wait blocks until the stack has stopped and returns what failed.
func (s *Stack) Wait() error {
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Done is closed when the stack has stopped.
func (s *Stack) Done() <-chan struct{} { return s.done }

// HTTPClient is a client for talking to the stack's listeners.
func HTTPClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }

// dispatcherVerifier accepts only the queue's tokens: the dev issuer's for
// the embedded engine, the Cloud Tasks emulator's for the gcp engine (as
// Cloud Tasks' OIDC tokens in production), each naming the invoker.
func (s *Stack) dispatcherVerifier(ctx context.Context, taskURL string) (auth.Verifier, error) {
	if s.opts.Engine == EngineGCP {
		return auth.NewOIDCVerifier(ctx, auth.OIDCConfig{
			Issuer:        s.opts.GCP.OIDCIssuer,
			JWKSURL:       strings.TrimSuffix(s.opts.GCP.OIDCIssuer, "/") + "/jwks",
			Audience:      taskURL, // Cloud Tasks' default audience: the task's URL
			AllowedEmails: []string{s.opts.GCP.InvokerEmail},
		})
	}
	return auth.NewOIDCVerifier(ctx, auth.OIDCConfig{
		Issuer:        devissuer.IssuerID,
		Audience:      devissuer.DispatcherAudience,
		Keys:          s.Issuer.PublicKeys(),
		AllowedEmails: []string{devissuer.InvokerEmail},
	})
}

// openStatus opens the status engine through internal/engines.
func (s *Stack) openStatus(ctx context.Context) (StatusStore, error) {
	c, err := EngineConfig(s.opts.Engine, s.opts.DataDir, s.opts.GCP)
	if err != nil {
		return nil, err
	}
	return engines.OpenStatus(ctx, c)
}

// serviceConfigs are the configurations the stack's ingest, dispatcher and
// queue are built from, filled as the binaries fill theirs: go-envconfig
// over a map of the stack's settings, so that every value the stack does
// not set takes its env tag's default, as in production. It sets
// s.QueueConfig, and s.opts.TargetRate to the queue's rate.
func (s *Stack) serviceConfigs(ctx context.Context, targetGraphQL string) (serviceConfigs, error) {
	o := s.opts
	env := map[string]string{
		"TARGET_URL":              targetGraphQL,
		"QUEUE_DISPATCH_DEADLINE": o.DispatchDeadline.String(),
	}
	if o.Brand != "" {
		env["BRAND"] = o.Brand
	}
	if o.TargetRate != 0 {
		env["QUEUE_MAX_DISPATCHES_PER_SECOND"] = strconv.FormatFloat(o.TargetRate, 'g', -1, 64)
	}
	if o.QueueBurst != 0 {
		env["QUEUE_MAX_BURST_SIZE"] = strconv.Itoa(o.QueueBurst)
	}
	if o.Engine == EngineGCP {
		env["QUEUE_NAME"] = o.GCP.Queue
	}
	var c serviceConfigs
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		return serviceConfigs{}, fmt.Errorf("devstack config: %w", err)
	}
	// The retry policy is one value, replaced whole (defaults() set it):
	// the queue takes its backoff and retries without limit (or
	// QueueMaxAttempts times); its budget is the dispatcher's.
	c.Queue.Retry = o.Retry
	c.Queue.Retry.MaxAttempts, c.Queue.Retry.MaxRetryDuration = -1, 0
	if o.QueueMaxAttempts > 0 {
		c.Queue.Retry.MaxAttempts = o.QueueMaxAttempts
	}
	// The reconciler's fields the caller set replace their defaults.
	if r := o.Reconcile; r.Grace != 0 {
		c.Reconcile.Grace = r.Grace
	}
	if r := o.Reconcile; r.Interval != 0 {
		c.Reconcile.Interval = r.Interval
	}
	if r := o.Reconcile; r.Policy != "" {
		c.Reconcile.Policy = r.Policy
	}
	if r := o.Reconcile; r.PageSize != 0 {
		c.Reconcile.PageSize = r.PageSize
	}
	if r := o.Reconcile; r.ChecksPerSecond != 0 {
		c.Reconcile.ChecksPerSecond = r.ChecksPerSecond
	}
	if err := c.Reconcile.Validate(); err != nil {
		return serviceConfigs{}, fmt.Errorf("devstack reconciler: %w", err)
	}
	s.QueueConfig, s.opts.TargetRate = c.Queue, c.Queue.MaxDispatchesPerSecond
	return c, nil
}

// serviceConfigs are what serviceConfigs fills.
type serviceConfigs struct {
	Dispatcher dispatcher.Config
	Ingest     ingest.Config
	Queue      queue.Config
	Reconcile  reconcile.Config
}

// openQueue opens the queue engine through internal/engines, delivering to
// taskURL: embedded, its deliveries carry the dev issuer's token (as Cloud
// Tasks' carry an OIDC token); on gcp the emulator's queue is created or
// updated with the stack's settings. It returns the embedded engine's
// dispatch loop (nil on gcp).
func (s *Stack) openQueue(ctx context.Context, taskURL string) (Queue, func(context.Context) error, error) {
	c, err := EngineConfig(s.opts.Engine, s.opts.DataDir, s.opts.GCP)
	if err != nil {
		return nil, nil, err
	}
	if s.opts.QueueShards != 0 {
		c.QueueShards = s.opts.QueueShards
	}
	// Embedded: each delivery carries a dev issuer token for the
	// dispatcher (Cloud Tasks ignores it and mints its own).
	c.QueueToken = s.Issuer.TokenSource(devissuer.DispatcherAudience, devissuer.InvokerSubject, devissuer.InvokerEmail, time.Hour)
	eq, err := engines.OpenQueue(ctx, c, s.QueueConfig, taskURL)
	if err != nil {
		return nil, nil, err
	}
	var q Queue
	if eq.Shards != nil {
		q = shardedQueue{Queue: eq.Shards, close: eq.Close}
	} else if one, ok := eq.Queue.(Queue); ok {
		q = one
	}
	if q == nil || eq.Stats == nil {
		return nil, nil, errors.Join(fmt.Errorf("the %s queue engine reports no stats", c.QueueEngine), eq.Close())
	}
	if err := eq.EnsureQueues(ctx); err != nil {
		return nil, nil, errors.Join(err, eq.Close())
	}
	return q, eq.Run, nil
}

// shardedQueue is a sharded queue as the stack's Queue: the
// shardedqueue.Queue (also the Controller and Inspector) with the close of
// its shards.
type shardedQueue struct {
	*shardedqueue.Queue
	close func() error
}

func (q shardedQueue) Close() error { return q.close() }
