package relayctl

import (
	"context"
	"flag"
	"fmt"
	"os"

	"eventrelay/internal/devstack"
	"eventrelay/internal/engines"
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
	// shards is how many engine queues carry the queue (QUEUE_SHARDS).
	shards int
}

func (e *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&e.engine, "engine", engines.Embedded, "engines to read: embedded (the local stack's --data) or gcp (Firestore and Cloud Tasks, or their emulators)")
	fs.StringVar(&e.data, "data", DefaultDataDir, "embedded engine: the local stack's data directory")
	gcpFlags(fs, &e.gcp)
	queueShardsFlag(fs, &e.shards)
}

func (e *engineFlags) registerReplay(fs *flag.FlagSet) {
	fs.StringVar(&e.dispatcherURL, "dispatcher-url", os.Getenv("DISPATCH_URL"), "gcp engine: the dispatcher's task URL replayed tasks are sent to (https://.../tasks/events)")
	fs.StringVar(&e.invoker, "invoker-sa", os.Getenv("TASKS_SERVICE_ACCOUNT"), "gcp engine: the service account whose OIDC token replayed tasks carry")
}

// config is the engines' configuration the flags select.
func (e *engineFlags) config() (engines.Config, error) {
	c, err := devstack.EngineConfig(e.engine, e.data, e.gcp)
	if err != nil {
		return engines.Config{}, fmt.Errorf("%w: unknown --engine %q (want %s or %s)", errUsage, e.engine, engines.Embedded, engines.GCP)
	}
	if e.shards < 1 {
		return engines.Config{}, fmt.Errorf("%w: --queue-shards must be >= 1, got %d", errUsage, e.shards)
	}
	c.QueueShards = e.shards
	return c, nil
}

// openStatus opens the status store; for the embedded engine it refuses to
// create a store where none exists, so a wrong --data is reported, not
// papered over.
func (e *engineFlags) openStatus(ctx context.Context) (engines.Store, error) {
	c, err := e.config()
	if err != nil {
		return nil, err
	}
	st, err := engines.OpenExistingStatus(ctx, c)
	if err != nil && e.engine == engines.Embedded {
		return nil, fmt.Errorf("%w (is --data right? start the stack with relayctl dev)", err)
	}
	return st, err
}

// openQueue opens the queue for enqueueing only. The embedded queue is
// delivered by the running relayctl dev (which owns its dispatch loop); this
// handle only adds tasks to the same file.
func (e *engineFlags) openQueue(ctx context.Context) (engines.Queue, error) {
	c, err := e.config()
	if err != nil {
		return engines.Queue{}, err
	}
	if e.engine == engines.GCP && e.dispatcherURL == "" {
		return engines.Queue{}, fmt.Errorf("%w: --dispatcher-url is required with --engine gcp", errUsage)
	}
	c.TasksServiceAccount = e.invoker
	q, err := engines.OpenEnqueuer(ctx, c, e.gcp.Queue, e.dispatcherURL)
	if err != nil && e.engine == engines.Embedded {
		return engines.Queue{}, fmt.Errorf("%w (is --data right?)", err)
	}
	return q, err
}
