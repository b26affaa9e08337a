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
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
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

	// Embedded engines: the SQLite files.
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

// ValidateQueue reports every problem with the queue settings.
func (c Config) ValidateQueue(dispatchURL string) error {
	var errs []error
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

// Queue is a queue engine that must be closed. Run is nil for engines that
// deliver by themselves (Cloud Tasks); the embedded engine's dispatch loop
// runs in the process that opened it.
type Queue struct {
	queue.Queue
	// Controller slows, pauses and resumes the queue (both engines have
	// one): what the rate governor acts through.
	Controller queue.Controller
	Close      func() error
	Run        func(ctx context.Context) error
}

// OpenQueue opens the configured queue engine, delivering to dispatchURL.
func OpenQueue(ctx context.Context, c Config, qc queue.Config, dispatchURL string) (Queue, error) {
	if err := errors.Join(c.ValidateQueue(dispatchURL), qc.Validate()); err != nil {
		return Queue{}, err
	}
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
		return Queue{Queue: q, Controller: q, Close: q.Close}, nil
	}
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: c.QueueDB, Config: qc, Target: dispatchURL, Token: c.QueueToken})
	if err != nil {
		return Queue{}, err
	}
	return Queue{Queue: q, Controller: q, Close: q.Close, Run: q.Run}, nil
}

// Controller is a handle on a queue's dispatch settings that must be
// closed.
type Controller struct {
	queue.Controller
	Close func() error
}

// OpenController opens the configured queue only to read and change its
// dispatch settings (rate, pause), from a process that does not own it:
// relayctl queue. queueName is the Cloud Tasks queue id; the embedded
// engine has one queue per file and ignores it.
//
// The embedded queue's file must exist (a mistyped path is reported, not
// created). A change is a row in the file, which the process that runs the
// queue applies within a second (sqlitequeue polls it) or at its next
// start. Cloud Tasks needs GOOGLE_CLOUD_PROJECT and QUEUE_LOCATION, and no
// service account: nothing is enqueued.
func OpenController(ctx context.Context, c Config, queueName string) (Controller, error) {
	switch c.QueueEngine {
	case SQLite:
		if c.QueueDB == "" {
			return Controller{}, errors.New("QUEUE_DB is required with QUEUE_ENGINE=sqlite")
		}
		q, err := openExistingSQLite(ctx, c.QueueDB, queueName, controlOnlyTarget)
		if err != nil {
			return Controller{}, err
		}
		return Controller{Controller: q, Close: q.Close}, nil
	case CloudTasks:
		if c.Project == "" || c.QueueLocation == "" || queueName == "" {
			return Controller{}, errors.New("GOOGLE_CLOUD_PROJECT, QUEUE_LOCATION and a queue name are required with QUEUE_ENGINE=cloudtasks")
		}
		q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project: c.Project, Location: c.QueueLocation, Queue: queueName,
			Target: controlOnlyTarget, DispatchDeadline: time.Minute, Endpoint: c.TasksEndpoint,
		})
		if err != nil {
			return Controller{}, err
		}
		return Controller{Controller: q, Close: q.Close}, nil
	default:
		return Controller{}, fmt.Errorf("QUEUE_ENGINE must be %s or %s, got %q", SQLite, CloudTasks, c.QueueEngine)
	}
}

// OpenEnqueuer opens a queue another process runs only to enqueue into it
// (relayctl replay). The embedded queue's file must exist (a wrong path is
// reported, not created); the process that owns it delivers what is
// enqueued, with its own settings. On Cloud Tasks each task is delivered
// to dispatchURL with the OIDC token of TASKS_SERVICE_ACCOUNT. queueName is
// the queue's name (the Cloud Tasks queue id). The Queue's Run is nil.
func OpenEnqueuer(ctx context.Context, c Config, queueName, dispatchURL string) (Queue, error) {
	switch c.QueueEngine {
	case SQLite:
		if c.QueueDB == "" {
			return Queue{}, errors.New("QUEUE_DB is required with QUEUE_ENGINE=sqlite")
		}
		q, err := openExistingSQLite(ctx, c.QueueDB, queueName, enqueueOnlyTarget)
		if err != nil {
			return Queue{}, err
		}
		return Queue{Queue: q, Controller: q, Close: q.Close}, nil
	case CloudTasks:
		if dispatchURL == "" {
			return Queue{}, errors.New("DISPATCH_URL is required with QUEUE_ENGINE=cloudtasks")
		}
		q, err := cloudtasksqueue.New(ctx, cloudtasksqueue.Options{
			Project: c.Project, Location: c.QueueLocation, Queue: queueName,
			Target: dispatchURL, ServiceAccountEmail: c.TasksServiceAccount, Audience: c.DispatchAudience,
			DispatchDeadline: 30 * time.Second, Endpoint: c.TasksEndpoint,
		})
		if err != nil {
			return Queue{}, err
		}
		return Queue{Queue: q, Controller: q, Close: q.Close}, nil
	default:
		return Queue{}, fmt.Errorf("QUEUE_ENGINE must be %s or %s, got %q", SQLite, CloudTasks, c.QueueEngine)
	}
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

// placeholderConfig is the configuration of an embedded queue handle that
// never dispatches (OpenController, OpenEnqueuer): the settings are the
// owning process's; only the name, which tasks are enqueued under, counts.
func placeholderConfig(name string) queue.Config {
	if name == "" {
		name = "events"
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
