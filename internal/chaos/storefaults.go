package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the driver the embedded engines use

	"eventrelay/internal/devstack"
	"eventrelay/internal/queue"
	"eventrelay/internal/sourcemock"
	"eventrelay/internal/status"
)

// storeFaultLength is how long the status store or the queue stays down,
// slow or locked: the 10 s in full runs.
func storeFaultLength(env scenarioEnv) time.Duration {
	if env.Scale == full {
		return 10 * time.Second
	}
	return 3 * time.Second
}

// statusFault takes the status store down (every read and write fails at
// once) or makes it slow (every read and write waits delay first) for a
// while, from 1 s into a burst. Ingest's status write is best-effort, so
// ingest keeps answering 202; the dispatcher answers 503 and the queue
// retries, and a delivery whose outcome could not be recorded is retried
// into a duplicate call with no second side effect.
//
// With maxAttempts > 0 the queue's retry budget is cut to that many
// attempts, so the outage outlasts it: the dispatcher must then carry each
// event on in a new task rather than let the queue drop it (ADR 0008).
func statusFault(name string, mode faultMode, delay time.Duration, maxAttempts int) func(ctx context.Context, env scenarioEnv) (report, error) {
	return func(ctx context.Context, env scenarioEnv) (report, error) {
		s := burstSizes(env)
		length := storeFaultLength(env)
		f := &fault{}
		injects := fmt.Sprintf("every status read and write fails for %v, from 1 s into the burst", length)
		if mode == faultSlow {
			injects = fmt.Sprintf("every status read and write takes %v longer for %v, from 1 s into the burst", delay, length)
		}
		var retry queue.RetryConfig
		if maxAttempts > 0 {
			retry = queue.RetryConfig{MaxAttempts: maxAttempts, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxDoublings: 3}
			injects += fmt.Sprintf(", with a budget of %d attempts per task", maxAttempts)
		}
		rep, err := onStack(ctx, env, stackPlan{
			name:    name,
			injects: injects,
			opts: devstack.Options{
				TargetRate: s.limit,
				Retry:      retry,
				WrapStatus: func(st status.Store) status.Store { return faultyStatus{Store: st, f: f} },
			},
			load: burstLoad(s),
			inject: func(ctx context.Context, _ *devstack.Stack, r *run) error {
				return switchFault(ctx, r, f, mode, delay, time.Second, length, "status store")
			},
			window: drainWindow(s, length),
		})
		rep.InjectedFaults = f.hits.Load()
		return rep, err
	}
}

// queueDown makes the queue unavailable to ingest for a while, first
// failing every enqueue at once, then hanging every enqueue for as long:
// ingest must answer 503 within its deadline in both halves, never hang and
// never answer 202 for an event it did not enqueue.
func queueDown(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	length := storeFaultLength(env)
	f := &fault{}
	rep, err := onStack(ctx, env, stackPlan{
		name:    "queue-down",
		injects: fmt.Sprintf("every enqueue fails for %v, then hangs for %v, from 1 s into the burst", length, length),
		opts: devstack.Options{
			TargetRate: s.limit,
			WrapQueue:  func(q queue.Queue) queue.Queue { return faultyQueue{Queue: q, f: f} },
		},
		// The load spans both halves of the fault and a second either side.
		load: sourcemock.Config{Rate: s.rate / 2, Duration: 2*length + 2*time.Second, Concurrency: 64, Deadline: sourcemock.DefaultDeadline},
		inject: func(ctx context.Context, _ *devstack.Stack, r *run) error {
			if err := switchFault(ctx, r, f, faultFail, 0, time.Second, length, "queue"); err != nil {
				return err
			}
			return switchFault(ctx, r, f, faultHang, 0, 0, length, "queue")
		},
		window: drainWindow(s, 2*length),
	})
	rep.InjectedFaults = f.hits.Load()
	return rep, err
}

// switchFault waits after, switches f to mode for length, then off,
// noting both moments.
func switchFault(ctx context.Context, r *run, f *fault, mode faultMode, delay, after, length time.Duration, what string) error {
	if !sleep(ctx, after) {
		return ctx.Err()
	}
	if mode == faultSlow {
		r.note("%s slow (+%v per call)", what, delay)
	} else {
		r.note("%s %s", what, map[faultMode]string{faultFail: "down (fails at once)", faultHang: "hung (never answers)"}[mode])
	}
	f.set(mode, delay)
	ok := sleep(ctx, length)
	f.set(faultOff, 0)
	r.note("%s back (%d calls touched so far)", what, f.hits.Load())
	if !ok {
		return ctx.Err()
	}
	return nil
}

// dbLocked holds a write lock on the embedded queue's database for a while,
// as an operator's stray sqlite3 session would (BEGIN IMMEDIATE): ingest's
// enqueue meets the lock and answers 503 at its deadline, the dispatching
// loop waits or retries, and nothing is corrupted. Every database file passes
// integrity_check once the stack has stopped.
func dbLocked(ctx context.Context, env scenarioEnv) (report, error) {
	s := burstSizes(env)
	length := storeFaultLength(env)
	rep, err := onStack(ctx, env, stackPlan{
		name:    "db-locked",
		injects: fmt.Sprintf("a second connection holds BEGIN IMMEDIATE on queue.db for %v, from 1 s into the burst", length),
		opts:    devstack.Options{TargetRate: s.limit},
		load:    burstLoad(s),
		inject: func(ctx context.Context, _ *devstack.Stack, r *run) error {
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
			return holdWriteLock(ctx, r, filepath.Join(env.DataDir, devstack.QueueFile), length)
		},
		window: drainWindow(s, length),
	})
	if err != nil {
		return rep, err
	}
	return rep, checkIntegrity(ctx, env.DataDir)
}

// holdWriteLock takes SQLite's write lock on path for length.
func holdWriteLock(ctx context.Context, r *run, path string, length time.Duration) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	r.note("queue.db write-locked by a second connection")
	ok := sleep(ctx, length)
	_, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	r.note("queue.db lock released")
	if !ok {
		return ctx.Err()
	}
	if rbErr != nil {
		return fmt.Errorf("release the lock on %s: %w", path, rbErr)
	}
	return nil
}

// checkIntegrity runs PRAGMA integrity_check on every database of a
// stopped embedded stack.
func checkIntegrity(ctx context.Context, dir string) error {
	var errs []error
	for _, name := range []string{devstack.QueueFile, devstack.StatusFile, devstack.TargetFile} {
		if err := integrity(ctx, filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func integrity(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw")
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity_check %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check %s: %s", path, res)
	}
	return nil
}
