// Package dispatchgov arms a standalone dispatcher process (dispatcher/main.go)
// against 429 storms (ADR 0010): it opens the configured queue engine so the
// dispatcher can requeue an event the target rate limited on its last
// attempt (dispatcher.Server.Requeue), and builds the rate governor that
// observes every target call (Server.Observer) and acts on the queue.
//
// On Cloud Tasks the dispatcher runs as many instances, each seeing a share
// of the calls: the governor judges that share (Window.Partial) and acts only
// while it holds the Firestore lease (package firestorelease) of its queue,
// named by the queue's full resource name (projects/P/locations/L/queues/Q),
// so that each region's dispatchers govern their own queue. On the
// embedded engine one dispatcher process sees every dispatch: no lease, and
// the queue's configured rate is the ceiling.
package dispatchgov

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.opentelemetry.io/otel/metric"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/engines"
	"eventrelay/internal/governor"
	"eventrelay/internal/governor/firestorelease"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// Config is what the dispatcher reads for requeueing and governing, beside
// engines.Config.
type Config struct {
	// Queue is the queue's configuration (QUEUE_*): its name, and on the
	// embedded engine the rate that is the governor's ceiling.
	Queue queue.Config
	// Governor is QUEUE_GOVERNOR and its knobs.
	Governor governor.Config
	// DispatchURL is the dispatcher's own task URL, which requeued tasks
	// are POSTed to (as ingest's). Empty: no requeue and no governor, with
	// a WARN: a rate-limited last attempt then dead-letters.
	DispatchURL string `env:"DISPATCH_URL"`
	// LeaseCollection holds the governor's Firestore lease documents.
	LeaseCollection string `env:"GOVERNOR_LEASE_COLLECTION, default=governor"`
}

// Armed is what Arm set up: Run runs the governor until ctx ends; Close
// releases the queue and the lease's client.
type Armed struct {
	// Governor is nil when there is none (no DISPATCH_URL).
	Governor *governor.Governor
	closers  []func() error
}

// Run runs the governor, if any, until ctx is done.
func (a *Armed) Run(ctx context.Context) error {
	if a.Governor == nil {
		<-ctx.Done()
		return nil
	}
	return a.Governor.Run(ctx)
}

// Close releases what Arm opened.
func (a *Armed) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}

// Arm opens the queue engine ec names for enqueueing only (the embedded
// engine's dispatch loop runs in ingest's process; Cloud Tasks dispatches
// by itself), sets srv.Requeue and srv.Observer, and returns the governor to
// run. mp records the governor's metrics (nil: the global provider).
func Arm(ctx context.Context, ec engines.Config, c Config, srv *dispatcher.Server, mp metric.MeterProvider) (_ *Armed, err error) {
	log := logging.FromContext(ctx)
	a := &Armed{}
	if c.DispatchURL == "" {
		log.WarnContext(ctx, "DISPATCH_URL is not set: no requeue of rate-limited last attempts and no rate governor")
		return a, nil
	}
	if err := c.Governor.Validate(); err != nil {
		return nil, fmt.Errorf("governor config: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, a.Close())
		}
	}()
	q, err := engines.OpenQueue(ctx, ec, c.Queue, c.DispatchURL)
	if err != nil {
		return nil, fmt.Errorf("requeue queue: %w", err)
	}
	a.closers = append(a.closers, q.Close)
	srv.Requeue = q.Queue

	ctl, ok := q.Queue.(queue.Controller)
	if !ok {
		log.WarnContext(ctx, "the queue engine has no dispatch controls: no rate governor", "engine", ec.QueueEngine)
		return a, nil
	}
	o := governor.Options{Control: ctl, Config: c.Governor, MeterProvider: mp}
	if ec.QueueEngine == engines.CloudTasks {
		// The lease is keyed by the queue's full resource name: every
		// region has a queue of the same short name (ADR 0006), and their
		// governors share one Firestore database.
		named, ok := q.Queue.(interface{ Name() string })
		if !ok {
			return nil, errors.New("governor lease: the Cloud Tasks queue does not report its full name")
		}
		lease, err := firestorelease.New(ctx, firestorelease.Options{
			Project: ec.Project, Database: ec.FirestoreDatabase, Collection: c.LeaseCollection, Queue: named.Name(),
		})
		if err != nil {
			return nil, fmt.Errorf("governor lease: %w", err)
		}
		a.closers = append(a.closers, lease.Close)
		// The ceiling is the live rate ops gave the queue (ADR 0005), or
		// the one the lease kept while the governor held it lower.
		o.Lease, o.Holder, o.Partial, o.Queue = lease, holderName(), true, named.Name()
	} else {
		// The embedded engine has one queue per file: the file names it.
		o.Ceiling, o.Queue = c.Queue.MaxDispatchesPerSecond, ec.QueueDB
		if abs, err := filepath.Abs(ec.QueueDB); err == nil {
			o.Queue = abs
		}
	}
	if a.Governor, err = governor.New(ctx, o); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.Governor.Close)
	srv.Observer = a.Governor
	return a, nil
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
