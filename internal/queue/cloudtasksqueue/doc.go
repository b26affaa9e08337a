// Package cloudtasksqueue is the Cloud Tasks engine of the queue port: each
// Enqueue creates one named HTTP task (cloud.google.com/go/cloudtasks/apiv2)
// that Cloud Tasks POSTs to the dispatcher at the queue's rate, with an OIDC
// token, the task's trace headers and an explicit dispatch deadline. Cloud
// Tasks stores, rate-limits, retries and delivers; this package only
// enqueues, plus two admin helpers (EnsureQueue, Purge) for tests and the
// local stack, where no Terraform creates the queue. Enqueue sets a task's
// NotBefore as its schedule_time.
//
// Queue is also a queue.Controller: SetRate is UpdateQueue with the one
// field rate_limits.max_dispatches_per_second (0 < rate <= 500, else
// queue.ErrInvalidRate without a call), Pause and Resume are PauseQueue and
// ResumeQueue, and Control reads GetQueue (the rate, and state PAUSED).
// Cloud Tasks keeps no record of who changed a queue, so Control's By and
// At are empty; each change is logged with its by instead.
//
// Queue is also a queue.Inspector: TaskExists is one GetTask (BASIC view,
// a 5s deadline, no retry), NotFound meaning the task is gone.
//
// The same code talks to Google (Options.Endpoint "") and to the Cloud
// Tasks emulator (Options.Endpoint its host:port, over insecure gRPC without
// credentials). The emulator differs from Cloud Tasks in rates, bursts,
// retries, queue updates, pause and resume, statistics, task names and
// purge; where a difference would break the contract above, EnsureQueue,
// Purge, Pause, Resume, SetRate and Stats work around it or fail with a
// clear error. docs/lld/queue.md, "Emulator differences from production",
// is the one list of those differences and of what this package does about
// each.
//
// # Deduplication and errors
//
// The task id is the queue.TaskName of the event id, so a second Enqueue of
// an event returns queue.ErrAlreadyExists (ingest: an accepted duplicate)
// for as long as the server remembers the name (see the LLD section above).
// Unavailable, DeadlineExceeded, ResourceExhausted and Canceled, and a ctx
// that ended, wrap queue.ErrUnavailable (ingest: a fast 503). A dead
// endpoint fails at once with Unavailable: CreateTask is not retried and
// does not wait for the connection. Other codes (InvalidArgument, NotFound,
// PermissionDenied, FailedPrecondition) are wrapped as they are: they are
// configuration errors, not load.
package cloudtasksqueue
