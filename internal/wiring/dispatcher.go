// Package wiring builds a service complete from its configuration and its
// engines. It is the one place the dispatcher is assembled with its rate
// governor (ADR 0010): dispatcher/main.go calls OpenDispatcher, which opens
// the configured engines, and the one-process dev stack (internal/devstack)
// calls NewDispatcher with the engines it already runs. Both end in
// NewDispatcher.
//
// On Cloud Tasks the dispatcher runs as many instances, each seeing a share
// of the calls: the governor judges that share (Window.Partial) and acts only
// while it holds the Firestore lease (package firestorelease) of its queue,
// named by the queue's full resource name (projects/P/locations/L/queues/Q,
// the base queue's when QUEUE_SHARDS > 1), so that each region's
// dispatchers govern their own queue. Over N shards the queue is one
// shardedqueue (internal/engines): one governor sets the total rate, the
// shards sharing it (total/N each, re-split by backlog by the balancer below), requeues go to each event's own shard and the
// reconciler asks that shard whether a task exists. On the
// embedded engine one dispatcher process sees every dispatch: no lease, and
// the queue's configured rate is the ceiling.
//
// Over N shards the dispatcher also runs the shards' balancer
// (shardedqueue.Balancer), which re-splits the governor's total across the
// shards by their backlogs so that the total rate is used while any shard
// has work (QUEUE_SHARD_BALANCE_INTERVAL, in engines.Config: every second
// on the embedded engine, off on Cloud Tasks). It acts on the same
// Controller as the governor, and with a lease only on the instance that
// holds it, as the governor does.
//
// The dispatcher also runs the reconciler (internal/reconcile), which
// requeues events whose task vanished from the queue: on the instance that
// holds the governor's lease when there is one (one instance does the
// work), else on every instance (safe: the reconciler is idempotent).
package wiring

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/governor"
	"eventrelay/internal/governor/firestorelease"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// DispatcherConfig is the dispatcher process's configuration, read once
// from the environment (go-envconfig). Every default is in the env tags of
// the structs it holds.
type DispatcherConfig struct {
	// Server is the dispatcher's own (BRAND, TARGET_*, PORT, AUTH_*).
	Server dispatcher.Config
	// Telemetry is OTEL_* and TRACE_SAMPLE_RATIO.
	Telemetry telemetry.Config
	// Engines selects and configures the queue and status engines.
	Engines engines.Config
	// Queue is the queue's configuration (QUEUE_*): its name, on the
	// embedded engine the rate that is the governor's ceiling, and the
	// backoff the dispatcher's retry policy shares with the queue.
	Queue queue.Config
	// Delivery is DELIVERY_*: the dispatcher's own retry budget.
	Delivery DeliveryBudget
	// Governor is QUEUE_GOVERNOR and its knobs.
	Governor governor.Config
	// DispatchURL is the dispatcher's own task URL, which requeued tasks
	// are POSTed to (as ingest's). Empty: no requeue and no governor, with
	// a WARN: a rate-limited last attempt then dead-letters.
	DispatchURL string `env:"DISPATCH_URL"`
	// LeaseCollection holds the governor's Firestore lease documents.
	LeaseCollection string `env:"GOVERNOR_LEASE_COLLECTION, default=governor"`
	// Reconcile is RECONCILE_*: the reconciler the dispatcher runs.
	Reconcile reconcile.Config
}

// DeliveryBudget is how long the dispatcher keeps delivering an event
// before it dead-letters it: the last attempt is the one that reaches it,
// by Cloud Tasks' rule (queue.RetryConfig.IsLastAttempt). The queue itself
// retries without limit (QUEUE_MAX_ATTEMPTS -1), so that a task whose last
// attempt the dispatcher could not finish (the status store and the queue
// both down, or Cloud Run's front end answering for it) is retried instead
// of dropped: the dispatcher owns the budget (docs/adr/0008).
type DeliveryBudget struct {
	// MaxAttempts counts every attempt, the first included; -1 is
	// unlimited (never dead-letter).
	MaxAttempts int `env:"DELIVERY_MAX_ATTEMPTS, default=100"`
	// MaxRetryDuration ends the budget once the first recorded attempt is
	// this old (with MaxAttempts set too, both must be reached); zero is
	// unlimited.
	MaxRetryDuration time.Duration `env:"DELIVERY_MAX_RETRY_DURATION, default=0s"`
}

// Policy is the dispatcher's retry policy: the queue's backoff (q) with
// the budget b.
func (b DeliveryBudget) Policy(q queue.RetryConfig) queue.RetryConfig {
	q.MaxAttempts, q.MaxRetryDuration = b.MaxAttempts, b.MaxRetryDuration
	return q
}

// checkBudgets refuses a queue that gives up before the dispatcher does
// (finite attempts below the dispatcher's, or finite while the
// dispatcher's are unlimited), and WARNs about a queue with finite
// attempts at all: it may drop a task whose last attempt the dispatcher
// never handled, and only the reconciler, after its grace, then brings the
// event back.
func checkBudgets(ctx context.Context, q, d queue.RetryConfig) error {
	if q.MaxAttempts < 1 {
		return nil
	}
	if d.MaxAttempts < 1 || q.MaxAttempts < d.MaxAttempts {
		return fmt.Errorf("QUEUE_MAX_ATTEMPTS %d is below DELIVERY_MAX_ATTEMPTS %d: the queue would drop tasks before the dispatcher dead-letters them; set QUEUE_MAX_ATTEMPTS=-1", q.MaxAttempts, d.MaxAttempts)
	}
	logging.FromContext(ctx).WarnContext(ctx, "the queue's attempts are finite: it may drop a task whose last attempt the dispatcher never handled (the reconciler requeues the event after its grace); set QUEUE_MAX_ATTEMPTS=-1",
		"queue_max_attempts", q.MaxAttempts, "delivery_max_attempts", d.MaxAttempts)
	return nil
}

// DispatcherParts are what NewDispatcher assembles a dispatcher from.
type DispatcherParts struct {
	// Config is the dispatcher's configuration.
	Config dispatcher.Config
	// Retry is the dispatcher's retry policy: the queue's backoff and the
	// dispatcher's budget (DeliveryBudget.Policy), which decides the last
	// attempt.
	Retry queue.RetryConfig
	// Store records the events' status.
	Store status.Store
	// Client calls the target (nil: a default client).
	Client *http.Client
	// Authenticate verifies the queue's token on every delivery.
	Authenticate func(http.Handler) http.Handler
	// Requeue is the queue a rate-limited last attempt is enqueued into
	// again (nil: none, the event dead-letters).
	Requeue queue.Queue
	// Governor configures the rate governor. Governor.Control nil: no
	// governor (the queue engine has no dispatch controls, or there is no
	// queue). Governor.MeterProvider nil: Telemetry's.
	Governor governor.Options
	// Inspector tells the reconciler whether a task is still in the queue
	// Requeue enqueues into. Nil (or Requeue nil): no reconciler.
	Inspector queue.Inspector
	// Reconcile configures the reconciler; it must be valid when
	// Inspector is set.
	Reconcile reconcile.Config
	// Telemetry instruments the dispatcher and the governor (nil: the
	// global providers).
	Telemetry []telemetry.Option
}

// Dispatcher is a dispatcher built complete: its server, its governor, and
// what they hold open.
type Dispatcher struct {
	// Server is the dispatcher's HTTP service.
	Server *dispatcher.Server
	// Governor is nil when there is none.
	Governor *governor.Governor
	// Requeue is the queue the server requeues into (nil: none).
	Requeue queue.Queue
	// Reconciler requeues events whose task vanished (nil: none).
	Reconciler *reconcile.Reconciler
	// Balancer re-splits the total rate across the shards by backlog
	// (nil: none, the queue is not sharded or its balancer is off).
	Balancer *shardedqueue.Balancer
	closers  []func() error
}

// Run runs the governor, the shards' balancer and the reconciler, those
// there are, until ctx is done. A failing balancer pass is logged and
// retried, never an error of Run.
func (d *Dispatcher) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if d.Governor != nil {
		g.Go(func() error { return d.Governor.Run(ctx) })
	}
	if d.Balancer != nil {
		g.Go(func() error { return d.Balancer.Run(ctx) })
	}
	if d.Reconciler != nil {
		g.Go(func() error { return d.Reconciler.Run(ctx) })
	}
	g.Go(func() error { <-ctx.Done(); return nil })
	return g.Wait()
}

// Close releases what the dispatcher holds: the governor's instruments, the
// lease's client and the requeue queue when OpenDispatcher opened them.
func (d *Dispatcher) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	return errors.Join(errs...)
}

// NewDispatcher builds the governor (when p.Governor.Control is set), the
// shards' balancer (when p.Governor.Control is a sharded queue whose
// balancer is on: shardedqueue.WithBalance, set by engines.OpenQueue), the
// reconciler (when p.Inspector and p.Requeue are set) and the dispatcher
// that requeues into p.Requeue, tells the governor every verdict and
// authenticates with p.Authenticate. An invalid governor or reconciler
// configuration is an error. With a governor that takes a lease, the
// balancer and the reconciler run only while this instance holds it.
func NewDispatcher(ctx context.Context, p DispatcherParts) (_ *Dispatcher, err error) {
	d := &Dispatcher{}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
		}
	}()
	d.Requeue = p.Requeue
	o := dispatcher.Options{Retry: p.Retry, Client: p.Client, Authenticate: p.Authenticate, Requeue: p.Requeue}
	if p.Governor.Control != nil {
		g := p.Governor
		if g.MeterProvider == nil {
			g.MeterProvider = telemetry.NewProviders(p.Telemetry...).Meter
		}
		if d.Governor, err = governor.New(ctx, g); err != nil {
			return nil, fmt.Errorf("governor: %w", err)
		}
		d.closers = append(d.closers, d.Governor.Close)
		o.Observer = d.Governor
		if sq, ok := p.Governor.Control.(balanced); ok {
			var active func() bool
			if p.Governor.Lease != nil {
				gov := d.Governor
				active = func() bool { return gov.Snapshot().Leader }
			}
			d.Balancer = sq.NewBalancer(active)
		}
	}
	if d.Server, err = dispatcher.NewServer(ctx, p.Config, p.Store, o, p.Telemetry...); err != nil {
		return nil, err
	}
	if p.Inspector != nil && p.Requeue != nil {
		ro := reconcile.Options{
			Store: p.Store, Queue: p.Requeue, Inspector: p.Inspector, Config: p.Reconcile,
			MeterProvider: telemetry.NewProviders(p.Telemetry...).Meter,
		}
		if d.Governor != nil && p.Governor.Lease != nil {
			gov := d.Governor
			ro.Active = func() bool { return gov.Snapshot().Leader }
		}
		if d.Reconciler, err = reconcile.New(ro); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// balanced is a sharded queue, which may balance its shards
// (*shardedqueue.Queue, or a type that embeds it, as the dev stack's).
type balanced interface {
	NewBalancer(active func() bool) *shardedqueue.Balancer
}

// OpenDispatcher builds a standalone dispatcher process's dispatcher
// (dispatcher/main.go) from its configuration c: it opens the queue engine
// c.Engines names for enqueueing only (the embedded engine's dispatch loop
// runs in ingest's process; Cloud Tasks dispatches by itself) as the
// requeue queue and the governor's control, and on Cloud Tasks the
// governor's Firestore lease, then calls NewDispatcher. Without
// c.DispatchURL there is no requeue and no governor (a WARN). A queue
// with finite attempts is WARNed about, and refused when they are fewer
// than the dispatcher's (checkBudgets). p's Config, Retry (c.Delivery's
// budget over c.Queue's backoff), Requeue and Governor are set here from c; the rest of p (the
// store, Authenticate, the client, telemetry) is passed on.
func OpenDispatcher(ctx context.Context, c DispatcherConfig, p DispatcherParts) (_ *Dispatcher, err error) {
	log := logging.FromContext(ctx)
	ec, g := c.Engines, c
	p.Config, p.Retry = c.Server, c.Delivery.Policy(c.Queue.Retry)
	p.Reconcile = c.Reconcile
	if err := checkBudgets(ctx, c.Queue.Retry, p.Retry); err != nil {
		return nil, err
	}
	if g.DispatchURL == "" {
		log.WarnContext(ctx, "DISPATCH_URL is not set: no requeue of rate-limited last attempts, no rate governor and no reconciler")
		p.Requeue, p.Governor, p.Inspector = nil, governor.Options{}, nil
		return NewDispatcher(ctx, p)
	}
	if err := g.Governor.Validate(); err != nil {
		return nil, fmt.Errorf("governor config: %w", err)
	}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				err = errors.Join(err, closers[i]())
			}
		}
	}()
	q, err := engines.OpenQueue(ctx, ec, g.Queue, g.DispatchURL)
	if err != nil {
		return nil, fmt.Errorf("requeue queue: %w", err)
	}
	closers = append(closers, q.Close)
	p.Requeue = q.Queue
	p.Inspector = nil
	if q.Inspector != nil {
		p.Inspector = q.Inspector
		if least := g.Queue.DispatchDeadline + time.Minute; c.Reconcile.Grace < least {
			log.WarnContext(ctx, "RECONCILE_GRACE is shorter than a delivery can outlive its task: the reconciler may requeue events still being delivered (the target deduplicates them)",
				"grace", c.Reconcile.Grace.String(), "at_least", least.String())
		}
	} else {
		log.WarnContext(ctx, "the queue engine cannot tell whether a task exists: no reconciler", "engine", ec.QueueEngine)
	}
	p.Governor = governor.Options{Control: q.Controller, Config: g.Governor}
	if q.Controller == nil {
		log.WarnContext(ctx, "the queue engine has no dispatch controls: no rate governor", "engine", ec.QueueEngine)
	} else if ec.QueueEngine == engines.CloudTasks {
		// The lease is keyed by the base queue's full resource name (shard
		// 0's, whatever QUEUE_SHARDS is): every region has a queue of the
		// same short name (ADR 0006) and their governors share one
		// Firestore database, while one governor governs all of a
		// region's shards, setting their total rate.
		if q.Name == "" {
			return nil, errors.New("governor lease: the Cloud Tasks queue does not report its full name")
		}
		lease, err := firestorelease.New(ctx, firestorelease.Options{
			Project: ec.Project, Database: ec.FirestoreDatabase, Collection: g.LeaseCollection, Queue: q.Name,
		})
		if err != nil {
			return nil, fmt.Errorf("governor lease: %w", err)
		}
		closers = append(closers, lease.Close)
		// The ceiling is the live rate ops gave the queue (ADR 0005), or
		// the one the lease kept while the governor held it lower.
		p.Governor.Lease, p.Governor.Holder, p.Governor.Partial, p.Governor.Queue = lease, holderName(), true, q.Name
	} else {
		// The embedded engine has one queue per file: the file names it
		// (shard 0's, QUEUE_DB). The ceiling is the configured total rate.
		p.Governor.Ceiling, p.Governor.Queue = g.Queue.MaxDispatchesPerSecond, ec.QueueDB
		if abs, err := filepath.Abs(ec.QueueDB); err == nil {
			p.Governor.Queue = abs
		}
	}
	d, err := NewDispatcher(ctx, p)
	if err != nil {
		return nil, err
	}
	// The dispatcher's own closers (the governor) go first, then the lease
	// and the queue, in the reverse of their opening.
	d.closers = append(closers, d.closers...)
	return d, nil
}

// holderName names this instance in the lease: the host name (the Cloud
// Run instance) and a random suffix, so two processes never share a name.
func holderName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "dispatcher"
	}
	return host + "-" + rand.Text()[:8]
}
