package relayctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/status"
)

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", stderr)
	var eng engineFlags
	eng.register(fs)
	eng.registerReplay(fs)
	st := fs.String("status", "", "replay every event in this status (failed or dead_lettered) instead of the IDs given")
	limit := fs.Int("limit", 100, "with --status: at most this many events, newest first")
	ids, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *st == "" && len(ids) == 0:
		return fmt.Errorf("%w: give event IDs or --status failed|dead_lettered", errUsage)
	case *st != "" && len(ids) > 0:
		return fmt.Errorf("%w: give event IDs or --status, not both", errUsage)
	case *st != "" && status.Status(*st) != status.Failed && status.Status(*st) != status.DeadLettered:
		return fmt.Errorf("%w: --status must be failed or dead_lettered, got %q", errUsage, *st)
	}

	store, err := eng.openStatus(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	q, err := eng.openQueue(ctx)
	if err != nil {
		return err
	}
	defer q.Close()

	if *st != "" {
		recs, err := store.List(ctx, status.Query{Status: status.Status(*st), Limit: *limit})
		if err != nil {
			return err
		}
		for _, r := range recs {
			ids = append(ids, r.EventID)
		}
		if len(ids) == 0 {
			fmt.Fprintf(stdout, "no %s events\n", *st)
			return nil
		}
	}
	var failed []error
	for _, id := range ids {
		task, err := replayOne(ctx, store, q, id, time.Now().UTC())
		if err != nil {
			failed = append(failed, err)
			fmt.Fprintf(stderr, "replay %s: %v\n", id, err)
			continue
		}
		fmt.Fprintf(stdout, "replayed %s as task %s\n", id, task)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d events not replayed", len(failed), len(ids))
	}
	return nil
}

// replayOne reopens the event's record and enqueues it under the replay's
// own task name. The status moves first, so the dispatcher never meets the
// replay task while the record is still terminal (it would skip it); if the
// enqueue then fails, running replay again re-enqueues the same task name,
// which the queue deduplicates.
func replayOne(ctx context.Context, store status.Store, q queue.Queue, id string, now time.Time) (string, error) {
	rec, err := store.Get(ctx, id)
	if err != nil {
		return "", err
	}
	switch {
	case rec.Status == status.Failed || rec.Status == status.DeadLettered:
		if rec, err = status.Replay(ctx, store, id, now); err != nil {
			return "", err
		}
	case rec.Status == status.Queued && rec.Replays() > 0:
		// A replay whose enqueue did not complete: enqueue it again.
	default:
		return "", fmt.Errorf("event is %s; only failed or dead_lettered events are replayed", rec.Status)
	}
	body, err := rec.Event.MarshalJSON()
	if err != nil {
		return "", err
	}
	task := queue.Task{Name: queue.ReplayTaskName(id, rec.Replays()), Body: body, Header: http.Header{}}
	if tp := traceparent(rec.TraceID); tp != "" {
		// The replay joins the event's original trace.
		task.Header.Set("traceparent", tp)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, task); err != nil && !errors.Is(err, queue.ErrAlreadyExists) {
		return "", fmt.Errorf("enqueue (the record is queued for replay; run replay again): %w", err)
	}
	return task.Name, nil
}

// traceparent builds a W3C traceparent in traceID with a fresh parent span.
func traceparent(traceID string) string {
	if len(traceID) != 32 {
		return ""
	}
	var span [8]byte
	_, _ = rand.Read(span[:])
	return "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-01"
}
