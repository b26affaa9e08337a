package relayctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"eventrelay/internal/devstack"
	"eventrelay/internal/engines"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/status/firestorestatus"
	"eventrelay/internal/status/sqlitestatus"
)

// engineFlags select the engines the inspection commands read: the local
// stack's SQLite files, or Cloud Tasks and Firestore (or their emulators).
type engineFlags struct {
	engine string
	data   string
	gcp    devstack.GCPOptions
	// dispatcherURL and invoker are what a replayed Cloud Task needs: where
	// to deliver and whose OIDC token to carry.
	dispatcherURL string
	invoker       string
}

func (e *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.engine, "engine", engines.Embedded, "engines to read: embedded (the local stack's --data) or gcp (Firestore and Cloud Tasks, or their emulators)")
	fs.StringVar(&e.data, "data", DefaultDataDir, "embedded engine: the local stack's data directory")
	gcpFlags(fs, &e.gcp)
}

func (e *engineFlags) registerReplay(fs *flag.FlagSet) {
	fs.StringVar(&e.dispatcherURL, "dispatcher-url", os.Getenv("DISPATCH_URL"), "gcp engine: the dispatcher's task URL replayed tasks are sent to (https://.../tasks/events)")
	fs.StringVar(&e.invoker, "invoker-sa", os.Getenv("TASKS_SERVICE_ACCOUNT"), "gcp engine: the service account whose OIDC token replayed tasks carry")
}

type closableStore interface {
	devstack.StatusStore
}

// openStatus opens the status store; for the embedded engine it refuses to
// create a store where none exists, so a wrong --data is reported, not
// papered over.
func (e *engineFlags) openStatus(ctx context.Context) (closableStore, error) {
	switch e.engine {
	case engines.Embedded:
		path := filepath.Join(e.data, devstack.StatusFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no status store at %s (is --data right? start the stack with relayctl dev): %w", path, err)
		}
		return sqlitestatus.Open(ctx, path)
	case engines.GCP:
		return firestorestatus.New(ctx, firestorestatus.Options{Project: e.gcp.Project, Collection: e.gcp.Collection, TTL: firestorestatus.DefaultTTL})
	default:
		return nil, fmt.Errorf("%w: unknown --engine %q (want %s or %s)", errUsage, e.engine, engines.Embedded, engines.GCP)
	}
}

type enqueuer interface {
	queue.Queue
	Close() error
}

// openQueue opens the queue for enqueueing only. The embedded queue is
// delivered by the running relayctl dev (which owns its dispatch loop); this
// handle only adds tasks to the same file, so its target is never used.
func (e *engineFlags) openQueue(ctx context.Context) (enqueuer, error) {
	switch e.engine {
	case engines.Embedded:
		path := filepath.Join(e.data, devstack.QueueFile)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no queue at %s (is --data right?): %w", path, err)
		}
		cfg := queue.Config{Name: "events", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1,
			DispatchDeadline: 30 * time.Second, Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second}}
		return sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: cfg, Target: "http://enqueue-only.invalid/"})
	case engines.GCP:
		if e.dispatcherURL == "" {
			return nil, fmt.Errorf("%w: --dispatcher-url is required with --engine gcp", errUsage)
		}
		return cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project: e.gcp.Project, Location: e.gcp.Location, Queue: e.gcp.Queue,
			Target: e.dispatcherURL, ServiceAccountEmail: e.invoker,
			DispatchDeadline: 30 * time.Second, Endpoint: e.gcp.TasksEndpoint,
		})
	default:
		return nil, errors.New("unknown engine " + e.engine)
	}
}
