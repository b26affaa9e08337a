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
// The same code talks to Google (Options.Endpoint "") and to the Cloud
// Tasks emulator (github.com/aertje/cloud-tasks-emulator v1.2.0, reached at
// Options.Endpoint over insecure gRPC without credentials).
//
// # Deduplication and errors
//
// The task id is the queue.TaskName of the event id, so a second Enqueue of
// an event returns queue.ErrAlreadyExists (ingest: an accepted duplicate).
// Google remembers a name for about an hour after its task finished, or was
// deleted or purged (up to days in some cases); the emulator forever.
// Unavailable, DeadlineExceeded, ResourceExhausted and Canceled, and a ctx
// that ended, wrap queue.ErrUnavailable (ingest: a fast 503). A dead
// endpoint fails at once with Unavailable: CreateTask is not retried and
// does not wait for the connection. Other codes (InvalidArgument, NotFound,
// PermissionDenied, FailedPrecondition) are wrapped as they are: they are
// configuration errors, not load.
//
// # The emulator, observed (v1.2.0; the tests pin what is relied on)
//
// What it does like Cloud Tasks, and the conformance suite checks
// (queuetest.Capabilities): every task delivered with the X-CloudTasks-*
// headers, Content-Type, trace headers and body; AlreadyExists for a name
// seen before, even after delivery; rate limit; max concurrent dispatches;
// MaxAttempts.
//
// Where it differs, and what this package does about it:
//
//   - Rate: a max_dispatches_per_second below 1 divides by zero in its token
//     generator and kills the process. EnsureQueue refuses such a rate on
//     the emulator. Fractional rates are truncated (2.5/s dispatches 2/s).
//   - Burst: it obeys max_burst_size (output-only on Google, derived from
//     the rate there) and defaults it to 100. Its dispatcher holds one token
//     while it waits for a task and its generator one more while the bucket
//     is full, so it delivers up to max_burst_size+2 at once. EnsureQueue
//     sends max(MaxBurstSize-2, 1): the burst is then MaxBurstSize, and 3
//     for MaxBurstSize 1 or 2. Measured at 20/s: at most 24 deliveries in
//     any second with MaxBurstSize 5, 22 with MaxBurstSize 1.
//   - MaxAttempts -1 (unlimited on Google) means one attempt. EnsureQueue
//     sends math.MaxInt32 instead.
//   - MaxRetryDuration is ignored: it stops at MaxAttempts alone.
//   - Backoff: it never grows linearly after max_doublings (it stays at
//     min_backoff·2^max_doublings, capped), and a retry is scheduled from
//     the previous attempt's schedule time, not from its answer, so a slow
//     or timed-out attempt is retried at once.
//   - X-CloudTasks-TaskExecutionCount counts every earlier attempt,
//     5xx and timeouts included (Google counts only non-5xx answers).
//   - Retry-After is ignored, on 429 and 503 alike.
//   - Order: each task waits in its own goroutine and they race for the
//     dispatcher, so with one dispatch at a time tasks go in enqueue order
//     usually, but not under load (Google promises no order either).
//   - UpdateQueue is unimplemented and a deleted queue's id can never be
//     created again: a queue's configuration is fixed at creation.
//     EnsureQueue accepts an existing queue with the same configuration
//     and reports any other as an error; tests use a new queue id each.
//     SetRate's error there says UpdateQueue is unimplemented and wraps the
//     Unimplemented status.
//   - PauseQueue stops dispatching (its dispatcher and workers stop; tasks
//     are still accepted) and GetQueue then reports PAUSED. But the workers
//     stop by passing one cancel message along, and the last one leaves it
//     in a one-slot channel: after ResumeQueue (state RUNNING again) the new
//     workers meet it and stop at once, so the queue delivers a task or so
//     and then nothing; and a second PauseQueue, or DeleteQueue, blocks
//     forever on that full channel. Pause and Resume on a missing queue
//     dereference nil and kill the emulator: both check the queue first.
//   - Queue statistics do not exist (it serves v2 only, statistics are in
//     v2beta3): Stats returns an error wrapping ErrNoStats, never zeros.
//   - Task names are remembered forever, in every queue. PurgeQueue, with
//     the emulator started with -hard-reset-on-purge-queue, forgets them;
//     but it panics and kills the emulator when the queue does not exist
//     or when one of its tasks is due or in flight. Purge checks both first
//     and refuses.
//   - Its OIDC token (RS256, kid "cloudtasks-emulator-test", claims iss,
//     aud, sub, email, email_verified, iat, nbf, exp; aud is the Audience,
//     or the URL without one) is signed with a fixed, public key. Its JWKS
//     advertises "alg": "RSA256", which github.com/coreos/go-oidc ≥ 3.20
//     rejects unless the key set is normalised to RS256.
//   - The dispatch deadline may be any duration (Google: 15s to 30m; New
//     enforces that range only for Google). Deliveries carry
//     User-Agent: Google-Cloud-Tasks.
package cloudtasksqueue
