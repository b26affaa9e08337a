// Package engines opens the queue and status engines a service is
// configured for: the embedded SQLite engines (local runs, tests) or Cloud
// Tasks and Firestore (production, or their emulators). Services read one
// Config from the environment and get the ports back, so ingest and the
// dispatcher choose engines the same way.
package engines

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/status"
	"eventrelay/internal/status/firestorestatus"
	"eventrelay/internal/status/sqlitestatus"
)

// Engine names, as QUEUE_ENGINE and STATUS_ENGINE take them.
const (
	SQLite     = "sqlite"
	CloudTasks = "cloudtasks"
	Firestore  = "firestore"
)

// Engine pairs, as relayctl's --engine takes them: one name for the queue
// and the status store together.
const (
	// Embedded is SQLite for both (QUEUE_ENGINE and STATUS_ENGINE
	// SQLite), in files of a data directory: only Go needed.
	Embedded = "embedded"
	// GCP is Cloud Tasks and Firestore (CloudTasks and Firestore), in
	// production or on their emulators.
	GCP = "gcp"
)

// SetPair sets c's queue and status engines from a pair name: Embedded is
// SQLite for both, GCP is Cloud Tasks and Firestore. It is the only
// translation of the pair names to the engine names.
func (c *Config) SetPair(pair string) error {
	switch pair {
	case Embedded:
		c.QueueEngine, c.StatusEngine = SQLite, SQLite
	case GCP:
		c.QueueEngine, c.StatusEngine = CloudTasks, Firestore
	default:
		return fmt.Errorf("unknown engine %q (want %s or %s)", pair, Embedded, GCP)
	}
	return nil
}

// Config selects and configures the engines. Terraform sets the GCP values
// (terraform/modules/region); the defaults run locally on SQLite files.
type Config struct {
	QueueEngine  string `env:"QUEUE_ENGINE, default=sqlite"`
	StatusEngine string `env:"STATUS_ENGINE, default=sqlite"`
	// QueueShards is how many engine queues carry the queue (>= 1): shard
	// i is the queue queue.ShardName(QUEUE_NAME, i), and with the embedded
	// engine the file QueueDBShard(i). They run at the configured rate / N
	// each (shardedqueue). It is read here, not in queue.Config, because it
	// says how many engine queues to open, which only this package does;
	// queue.Config describes one queue, and each shard has its own.
	QueueShards int `env:"QUEUE_SHARDS, default=1"`
	// QueueShardBalanceInterval is how often the dispatcher re-splits the
	// total rate across the shards by their backlogs (shardedqueue
	// Balancer; only with QueueShards > 1): a Go duration, 0 or "off" for
	// none, empty for the engine's default, 1s on the embedded engine and
	// off on Cloud Tasks, where each re-split is an UpdateQueue per shard
	// that resets the shard's burst and takes time to apply
	// (docs/lld/queue.md, "Shards"). Read here because only this package
	// builds the sharded queue, which carries it to the dispatcher's
	// wiring.
	QueueShardBalanceInterval string `env:"QUEUE_SHARD_BALANCE_INTERVAL"`

	// Embedded engines: the SQLite files. QueueDB is shard 0's;
	// QueueDBShard names the others'.
	QueueDB  string `env:"QUEUE_DB, default=eventrelay-queue.db"`
	StatusDB string `env:"STATUS_DB, default=eventrelay-status.db"`
	// QueueToken, with the embedded queue, is the bearer token of each
	// delivery, as Cloud Tasks puts its OIDC token on each. No variable
	// sets it: the process that opens the queue does (devstack, with the
	// dev issuer). Nil sends none.
	QueueToken func(context.Context) (string, error)

	// GCP engines.
	Project string `env:"GOOGLE_CLOUD_PROJECT"`
	// QueueLocation is the Cloud Tasks queue's region.
	QueueLocation string `env:"QUEUE_LOCATION"`
	// TasksEndpoint, when set, is the Cloud Tasks emulator's host:port.
	TasksEndpoint string `env:"CLOUD_TASKS_EMULATOR_HOST"`
	// TasksServiceAccount is the identity in each task's OIDC token: the
	// only caller the dispatcher accepts.
	TasksServiceAccount string `env:"TASKS_SERVICE_ACCOUNT"`
	// DispatchAudience is the OIDC audience of the tokens (default: the
	// dispatch URL, Cloud Tasks' own default).
	DispatchAudience    string        `env:"DISPATCH_AUDIENCE"`
	FirestoreDatabase   string        `env:"FIRESTORE_DATABASE, default=(default)"`
	FirestoreCollection string        `env:"FIRESTORE_COLLECTION, default=events"`
	StatusTTL           time.Duration `env:"STATUS_TTL, default=720h"`
}

// QueueDBShard is the embedded queue's file for shard i: QueueDB for
// shard 0, so a single queue keeps its file when shards are added, and
// QueueDB with -<i> before its extension for the others
// (eventrelay-queue.db, eventrelay-queue-1.db, ...).
func (c Config) QueueDBShard(i int) string {
	if i == 0 {
		return c.QueueDB
	}
	ext := filepath.Ext(c.QueueDB)
	return strings.TrimSuffix(c.QueueDB, ext) + "-" + strconv.Itoa(i) + ext
}

// validateShards reports a QueueShards below 1.
func (c Config) validateShards() error {
	if c.QueueShards < 1 {
		return fmt.Errorf("QUEUE_SHARDS must be >= 1, got %d", c.QueueShards)
	}
	return nil
}

// DefaultShardBalanceInterval is QUEUE_SHARD_BALANCE_INTERVAL's default
// on the embedded engine.
const DefaultShardBalanceInterval = time.Second

// ShardBalance is the balancer's configuration QUEUE_SHARD_BALANCE_INTERVAL
// and QUEUE_ENGINE give (Interval zero: no balancer).
func (c Config) ShardBalance() (shardedqueue.BalanceConfig, error) {
	switch v := strings.TrimSpace(c.QueueShardBalanceInterval); v {
	case "":
		if c.QueueEngine == SQLite {
			return shardedqueue.BalanceConfig{Interval: DefaultShardBalanceInterval}, nil
		}
		return shardedqueue.BalanceConfig{}, nil
	case "off", "0":
		return shardedqueue.BalanceConfig{}, nil
	default:
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return shardedqueue.BalanceConfig{}, fmt.Errorf("QUEUE_SHARD_BALANCE_INTERVAL=%q: want a duration >= 0 (e.g. 1s), 0 or off", v)
		}
		return shardedqueue.BalanceConfig{Interval: d}, nil
	}
}

// ValidateQueue reports every problem with the queue settings.
func (c Config) ValidateQueue(dispatchURL string) error {
	var errs []error
	if err := c.validateShards(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.ShardBalance(); err != nil {
		errs = append(errs, err)
	}
	switch c.QueueEngine {
	case SQLite:
		if c.QueueDB == "" {
			errs = append(errs, errors.New("QUEUE_DB is required with QUEUE_ENGINE=sqlite"))
		}
	case CloudTasks:
		if c.Project == "" || c.QueueLocation == "" {
			errs = append(errs, errors.New("GOOGLE_CLOUD_PROJECT and QUEUE_LOCATION are required with QUEUE_ENGINE=cloudtasks"))
		}
		if c.TasksServiceAccount == "" {
			errs = append(errs, errors.New("TASKS_SERVICE_ACCOUNT is required with QUEUE_ENGINE=cloudtasks: the dispatcher accepts only its tokens"))
		}
	default:
		errs = append(errs, fmt.Errorf("QUEUE_ENGINE must be %s or %s, got %q", SQLite, CloudTasks, c.QueueEngine))
	}
	if dispatchURL == "" {
		errs = append(errs, errors.New("DISPATCH_URL is required"))
	}
	return errors.Join(errs...)
}

// ValidateStatus reports every problem with the status settings.
func (c Config) ValidateStatus() error {
	var errs []error
	switch c.StatusEngine {
	case SQLite:
		if c.StatusDB == "" {
			errs = append(errs, errors.New("STATUS_DB is required with STATUS_ENGINE=sqlite"))
		}
	case Firestore:
		if c.FirestoreCollection == "" {
			errs = append(errs, errors.New("FIRESTORE_COLLECTION must not be empty"))
		}
		if c.StatusTTL < 0 {
			errs = append(errs, fmt.Errorf("STATUS_TTL must not be negative, got %v", c.StatusTTL))
		}
	default:
		errs = append(errs, fmt.Errorf("STATUS_ENGINE must be %s or %s, got %q", SQLite, Firestore, c.StatusEngine))
	}
	return errors.Join(errs...)
}

// Store is a status store that must be closed.
type Store interface {
	status.Store
	Close() error
}

// OpenStatus opens the configured status engine.
func OpenStatus(ctx context.Context, c Config) (Store, error) {
	if err := c.ValidateStatus(); err != nil {
		return nil, err
	}
	if c.StatusEngine == Firestore {
		return firestorestatus.New(ctx, firestorestatus.Options{
			Project: c.Project, Database: c.FirestoreDatabase, Collection: c.FirestoreCollection, TTL: c.StatusTTL,
		})
	}
	return sqlitestatus.Open(ctx, c.StatusDB)
}

// OpenExistingStatus is OpenStatus for a process that reads or repairs the
// store another process writes (relayctl): the SQLite file must exist, so
// a wrong path is reported, never created.
func OpenExistingStatus(ctx context.Context, c Config) (Store, error) {
	if c.StatusEngine == SQLite && c.StatusDB != "" {
		if _, err := os.Stat(c.StatusDB); err != nil {
			return nil, fmt.Errorf("no status store at %s: %w", c.StatusDB, err)
		}
	}
	return OpenStatus(ctx, c)
}

// Queue is a queue engine that must be closed: one engine queue, or with
// QueueShards > 1 a shardedqueue over the N engine queues, which routes
// each task to its shard and whose Controller, Inspector and StatsReader
// act on every shard (SetRate sets the total, the shards keeping their
// proportions of it: total/N each unless the dispatcher's balancer,
// QueueShardBalanceInterval, re-split it by backlog).
// Run is nil for engines that deliver by themselves (Cloud Tasks); the
// embedded engine's dispatch loops (one per shard) run in the process that
// opened it.
type Queue struct {
	queue.Queue
	// Controller slows, pauses and resumes the queue (both engines have
	// one): what the rate governor acts through.
	Controller queue.Controller
	// Inspector tells whether a task is in the queue (nil: the engine
	// cannot tell): what the reconciler repairs through.
	Inspector queue.Inspector
	// Stats reports the backlog (nil: the engine cannot); the Cloud Tasks
	// emulator's is an error wrapping cloudtasksqueue.ErrNoStats.
	Stats queue.StatsReader
	// Name is the queue's full name: on Cloud Tasks the resource name of
	// the base queue (shard 0, projects/P/locations/L/queues/QUEUE_NAME),
	// which the governor's lease is keyed by so that one governor leads
	// all of a region's shards; on the embedded engine shard 0's file.
	Name string
	// Shards is the sharded queue when QueueShards > 1 (nil: one engine
	// queue), for what only it tells, such as each shard's settings.
	Shards *shardedqueue.Queue
	Close  func() error
	Run    func(ctx context.Context) error
	// engine holds each engine queue with its configuration, for
	// EnsureQueues.
	engine []engineQueue
}

// engineQueue is one engine queue of a Queue and its configuration.
type engineQueue struct {
	q   queue.Queue
	cfg queue.Config
}

// EnsureQueues creates or updates every engine queue that can be (Cloud
// Tasks, in practice its emulator) with its own configuration, a shard's
// from shardedqueue.Configs: what Terraform does in production and the dev
// stack does on the emulator. The embedded engine needs nothing.
func (q Queue) EnsureQueues(ctx context.Context) error {
	var errs []error
	for _, e := range q.engine {
		if en, ok := e.q.(interface {
			EnsureQueue(context.Context, queue.Config) error
		}); ok {
			if err := en.EnsureQueue(ctx, e.cfg); err != nil {
				errs = append(errs, fmt.Errorf("ensure queue %s: %w", e.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// OpenQueue opens the configured queue engine, delivering to dispatchURL:
// with QueueShards N > 1, N engine queues configured by
// shardedqueue.Configs(qc, N) (Cloud Tasks: the queues
// queue.ShardName(qc.Name, i); embedded: the files QueueDBShard(i)) behind
// one shardedqueue.
func OpenQueue(ctx context.Context, c Config, qc queue.Config, dispatchURL string) (Queue, error) {
	if err := errors.Join(c.ValidateQueue(dispatchURL), qc.Validate()); err != nil {
		return Queue{}, err
	}
	if c.QueueShards == 1 {
		return openOne(ctx, c, qc, c.QueueDB, dispatchURL)
	}
	var ones []Queue
	for i, sc := range shardedqueue.Configs(qc, c.QueueShards) {
		q, err := openOne(ctx, c, sc, c.QueueDBShard(i), dispatchURL)
		if err != nil {
			return Queue{}, errors.Join(fmt.Errorf("queue shard %s: %w", sc.Name, err), closeAll(ones))
		}
		ones = append(ones, q)
	}
	bal, _ := c.ShardBalance() // validated above
	return shard(ones, shardedqueue.WithBalance(bal))
}

// openOne opens one engine queue configured by qc; path is its file on the
// embedded engine.
func openOne(ctx context.Context, c Config, qc queue.Config, path, dispatchURL string) (Queue, error) {
	if c.QueueEngine == CloudTasks {
		q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project:             c.Project,
			Location:            c.QueueLocation,
			Queue:               qc.Name,
			Target:              dispatchURL,
			ServiceAccountEmail: c.TasksServiceAccount,
			Audience:            c.DispatchAudience,
			DispatchDeadline:    qc.DispatchDeadline,
			Endpoint:            c.TasksEndpoint,
		})
		if err != nil {
			return Queue{}, err
		}
		return one(q, q.Name(), q.Close, nil, qc), nil
	}
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: qc, Target: dispatchURL, Token: c.QueueToken})
	if err != nil {
		return Queue{}, err
	}
	return one(q, path, q.Close, q.Run, qc), nil
}

// one is the Queue of a single engine queue q.
func one(q interface {
	queue.Queue
	queue.Controller
}, name string, closeFn func() error, run func(context.Context) error, cfg queue.Config) Queue {
	out := Queue{Queue: q, Controller: q, Name: name, Close: closeFn, Run: run, engine: []engineQueue{{q: q, cfg: cfg}}}
	out.Inspector, _ = q.(queue.Inspector)
	out.Stats, _ = q.(queue.StatsReader)
	return out
}

// shard is the Queue over ones, shard i being ones[i]; on error it closes
// them.
func shard(ones []Queue, opts ...shardedqueue.Option) (Queue, error) {
	shards := make([]shardedqueue.Shard, len(ones))
	var engine []engineQueue
	for i, o := range ones {
		shards[i] = shardedqueue.Shard{Name: o.engine[0].cfg.Name, Queue: o.Queue}
		engine = append(engine, o.engine...)
	}
	sq, err := shardedqueue.New(shards, opts...)
	if err != nil {
		return Queue{}, errors.Join(err, closeAll(ones))
	}
	out := Queue{Queue: sq, Controller: sq, Name: ones[0].Name, Shards: sq, engine: engine,
		Close: func() error { return closeAll(ones) }}
	if ones[0].Inspector != nil {
		out.Inspector = sq
	}
	if ones[0].Stats != nil {
		out.Stats = sq
	}
	if ones[0].Run != nil {
		out.Run = func(ctx context.Context) error {
			g, ctx := errgroup.WithContext(ctx)
			for _, o := range ones {
				g.Go(func() error { return o.Run(ctx) })
			}
			return g.Wait()
		}
	}
	return out, nil
}

// closeAll closes every queue of qs.
func closeAll(qs []Queue) error {
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.Close())
	}
	return errors.Join(errs...)
}

// Controller is a handle on a queue's dispatch settings that must be
// closed. With QueueShards > 1 it is the sharded queue's (Control sums the
// shards' rates, SetRate sets the total, keeping the shards' proportions)
// and Shards tells each shard's.
type Controller struct {
	queue.Controller
	// Stats reports the backlog, summed over the shards (nil: the engine
	// cannot; the Cloud Tasks emulator's is an error).
	Stats queue.StatsReader
	// Shards is the sharded queue when QueueShards > 1 (nil: one queue).
	Shards *shardedqueue.Queue
	Close  func() error
}

// OpenController opens the configured queue only to read and change its
// dispatch settings (rate, pause), from a process that does not own it:
// relayctl queue. queueName is the Cloud Tasks queue id (the base name:
// shard i is queue.ShardName(queueName, i)); the embedded engine has one
// queue per file and ignores it.
//
// The embedded queue's files must exist (a mistyped path is reported, not
// created). A change is a row in each file, which the process that runs the
// queue applies within a second (sqlitequeue polls it) or at its next
// start. Cloud Tasks needs GOOGLE_CLOUD_PROJECT and QUEUE_LOCATION, and no
// service account: nothing is enqueued.
func OpenController(ctx context.Context, c Config, queueName string) (Controller, error) {
	if err := c.validateShards(); err != nil {
		return Controller{}, err
	}
	switch c.QueueEngine {
	case SQLite:
		if c.QueueDB == "" {
			return Controller{}, errors.New("QUEUE_DB is required with QUEUE_ENGINE=sqlite")
		}
	case CloudTasks:
		if c.Project == "" || c.QueueLocation == "" || queueName == "" {
			return Controller{}, errors.New("GOOGLE_CLOUD_PROJECT, QUEUE_LOCATION and a queue name are required with QUEUE_ENGINE=cloudtasks")
		}
	default:
		return Controller{}, fmt.Errorf("QUEUE_ENGINE must be %s or %s, got %q", SQLite, CloudTasks, c.QueueEngine)
	}
	q, err := openHandles(ctx, c, queueName, func(ctx context.Context, i int, name string) (Queue, error) {
		if c.QueueEngine == SQLite {
			q, err := openExistingSQLite(ctx, c.QueueDBShard(i), name, controlOnlyTarget)
			if err != nil {
				return Queue{}, err
			}
			return one(q, c.QueueDBShard(i), q.Close, nil, placeholderConfig(name)), nil
		}
		q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project: c.Project, Location: c.QueueLocation, Queue: name,
			Target: controlOnlyTarget, DispatchDeadline: time.Minute, Endpoint: c.TasksEndpoint,
		})
		if err != nil {
			return Queue{}, err
		}
		return one(q, q.Name(), q.Close, nil, placeholderConfig(name)), nil
	})
	if err != nil {
		return Controller{}, err
	}
	return Controller{Controller: q.Controller, Stats: q.Stats, Shards: q.Shards, Close: q.Close}, nil
}

// OpenEnqueuer opens a queue another process runs only to enqueue into it
// (relayctl replay): each task goes to its shard, as OpenQueue's. The
// embedded queue's files must exist (a wrong path is reported, not
// created); the process that owns them delivers what is enqueued, with its
// own settings. On Cloud Tasks each task is delivered to dispatchURL with
// the OIDC token of TASKS_SERVICE_ACCOUNT. queueName is the queue's base
// name (the Cloud Tasks queue id of shard 0). The Queue's Run is nil.
func OpenEnqueuer(ctx context.Context, c Config, queueName, dispatchURL string) (Queue, error) {
	if err := c.validateShards(); err != nil {
		return Queue{}, err
	}
	switch c.QueueEngine {
	case SQLite:
		if c.QueueDB == "" {
			return Queue{}, errors.New("QUEUE_DB is required with QUEUE_ENGINE=sqlite")
		}
	case CloudTasks:
		if dispatchURL == "" {
			return Queue{}, errors.New("DISPATCH_URL is required with QUEUE_ENGINE=cloudtasks")
		}
	default:
		return Queue{}, fmt.Errorf("QUEUE_ENGINE must be %s or %s, got %q", SQLite, CloudTasks, c.QueueEngine)
	}
	return openHandles(ctx, c, queueName, func(ctx context.Context, i int, name string) (Queue, error) {
		if c.QueueEngine == SQLite {
			q, err := openExistingSQLite(ctx, c.QueueDBShard(i), name, enqueueOnlyTarget)
			if err != nil {
				return Queue{}, err
			}
			return one(q, c.QueueDBShard(i), q.Close, nil, placeholderConfig(name)), nil
		}
		q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project: c.Project, Location: c.QueueLocation, Queue: name,
			Target: dispatchURL, ServiceAccountEmail: c.TasksServiceAccount, Audience: c.DispatchAudience,
			DispatchDeadline: 30 * time.Second, Endpoint: c.TasksEndpoint,
		})
		if err != nil {
			return Queue{}, err
		}
		return one(q, q.Name(), q.Close, nil, placeholderConfig(name)), nil
	})
}

// openHandles opens, with open, the queue named base (one engine queue) or
// its c.QueueShards shards queue.ShardName(base, i) behind a shardedqueue.
func openHandles(ctx context.Context, c Config, base string, open func(ctx context.Context, i int, name string) (Queue, error)) (Queue, error) {
	if base == "" {
		base = defaultQueueName
	}
	if c.QueueShards == 1 {
		return open(ctx, 0, base)
	}
	var ones []Queue
	for i := range c.QueueShards {
		name := queue.ShardName(base, i)
		q, err := open(ctx, i, name)
		if err != nil {
			return Queue{}, errors.Join(fmt.Errorf("queue shard %s: %w", name, err), closeAll(ones))
		}
		ones = append(ones, q)
	}
	return shard(ones)
}

// openExistingSQLite opens the embedded queue in the file at path, which
// must exist (a wrong path is reported, never created), as a handle that
// never dispatches: its configuration is a placeholder.
func openExistingSQLite(ctx context.Context, path, name, target string) (*sqlitequeue.Queue, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no queue at %s: %w", path, err)
	}
	return sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Target: target, Config: placeholderConfig(name)})
}

// defaultQueueName is QUEUE_NAME's default, the name a handle's tasks are
// enqueued under when none is given.
const defaultQueueName = "events"

// placeholderConfig is the configuration of an embedded queue handle that
// never dispatches (OpenController, OpenEnqueuer): the settings are the
// owning process's; only the name, which tasks are enqueued under, counts.
func placeholderConfig(name string) queue.Config {
	if name == "" {
		name = defaultQueueName
	}
	return queue.Config{
		Name: name, MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: time.Minute,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: time.Second, MaxBackoff: time.Second},
	}
}

// The delivery URLs of handles that never deliver.
const (
	controlOnlyTarget = "http://control-only.invalid/"
	enqueueOnlyTarget = "http://enqueue-only.invalid/"
)
