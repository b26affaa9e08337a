package sqlitequeue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

// TestWrite_keepsEnqueueFullySynced guards the durability promise: the
// dispatch loop's writes commit with synchronous=NORMAL on the one write
// connection, and must hand it back to Enqueue with FULL (2).
func TestWrite_keepsEnqueueFullySynced(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	q, err := New(context.Background(), Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	sync := func() int {
		t.Helper()
		var n int
		if err := q.wdb.QueryRowContext(ctx, `pragma synchronous`).Scan(&n); err != nil {
			t.Fatalf("pragma synchronous: %v", err)
		}
		return n
	}
	if got := sync(); got != 2 {
		t.Fatalf("synchronous = %d on a new queue, want 2 (FULL)", got)
	}
	var during int
	err = q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `pragma synchronous`).Scan(&during)
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if during != 1 {
		t.Errorf("synchronous = %d inside write, want 1 (NORMAL)", during)
	}
	if got := sync(); got != 2 {
		t.Errorf("synchronous = %d after write, want 2 (FULL)", got)
	}
}

// TestQueryPlans pins the plans the dispatch loop's speed depends on: goqite's
// receive must walk its priority index (finding the first ready task at
// once), not range-scan every ready row by timeout and sort them, and
// nextReady must read one entry of the ready index.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	q, err := New(context.Background(), Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	cases := []struct {
		name  string
		query string // goqite v0.4.0's receive subquery, and nextReady's
		args  []any
		want  string
	}{
		{
			name:  "goqite receive",
			query: `select id from goqite where queue = ? and ? >= timeout and received < ? order by priority desc, created limit 1`,
			args:  []any{"q", "2099-01-01T00:00:00.000Z", 5},
			want:  "SEARCH goqite USING INDEX goqite_queue_priority_created_idx (queue=?)",
		},
		{
			name:  "next ready",
			query: `select timeout from goqite indexed by sqlitequeue_goqite_ready_idx where queue = ? and priority < 0 order by timeout limit 1`,
			args:  []any{"q"},
			want:  "SEARCH goqite USING INDEX sqlitequeue_goqite_ready_idx (queue=?)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rows, err := q.rdb.Query(`explain query plan `+tc.query, tc.args...)
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatalf("scan: %v", err)
				}
				plan = append(plan, detail)
			}
			if len(plan) != 1 || plan[0] != tc.want {
				t.Errorf("plan = %q, want [%q] (no temp b-tree sort)", plan, tc.want)
			}
		})
	}
}

// TestCommit_batchSizes runs the writer's commit directly on batches of
// every kind of size: one, a few, the largest with prepared statements and
// beyond it (statements built for the batch), with repeated names inside a
// batch and names stored by an earlier batch. Each request must get its own
// answer (nil or ErrAlreadyExists), and every nil must be a stored task.
func TestCommit_batchSizes(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	q, err := New(context.Background(), Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	// The test calls commit itself, beside the idle writer goroutine: its
	// own statements, on the same single connection.
	stmts := make(batchStmts)
	t.Cleanup(stmts.close)
	stored := 0
	for k, n := range []int{1, 2, 3, maxPreparedBatch, maxPreparedBatch + 1, 3 * maxPreparedBatch, 2} {
		for round := range 2 { // the second round reuses the size's statements
			batch := make([]*request, n)
			for i := range batch {
				name := fmt.Sprintf("k%d-r%d-%d", k, round, i)
				if i == n-1 && n > 1 {
					name = fmt.Sprintf("k%d-r%d-0", k, round) // repeats the batch's first
				}
				batch[i] = &request{task: queue.Task{Name: name, Body: []byte("b")}, header: []byte("{}")}
			}
			results := q.commit(stmts, batch)
			if len(results) != n {
				t.Fatalf("batch of %d: %d results", n, len(results))
			}
			for i, err := range results {
				wantDup := i == n-1 && n > 1
				switch {
				case wantDup && !errors.Is(err, queue.ErrAlreadyExists):
					t.Errorf("batch of %d, request %d (a repeated name): %v, want ErrAlreadyExists", n, i, err)
				case !wantDup && err != nil:
					t.Errorf("batch of %d, request %d: %v, want nil", n, i, err)
				case !wantDup:
					stored++
				}
			}
			// A name an earlier batch stored is a duplicate in a later one.
			again := q.commit(stmts, []*request{{task: queue.Task{Name: batch[0].task.Name}, header: []byte("{}")}})
			if !errors.Is(again[0], queue.ErrAlreadyExists) {
				t.Errorf("batch of %d: %s again: %v, want ErrAlreadyExists", n, batch[0].task.Name, again[0])
			}
		}
	}
	var tasks, messages int
	if err := q.rdb.QueryRowContext(ctx, `select (select count(*) from sqlitequeue_tasks), (select count(*) from goqite)`).Scan(&tasks, &messages); err != nil {
		t.Fatal(err)
	}
	if tasks != stored || messages != stored {
		t.Errorf("%d task rows and %d messages stored, want %d of each", tasks, messages, stored)
	}
	if len(stmts) != 4 { // sizes 1, 2, 3 and maxPreparedBatch; larger ones are not kept
		t.Errorf("%d batch sizes kept prepared, want 4", len(stmts))
	}
}

// TestCheckpointer_boundsTheWAL: under a steady stream of Enqueues the
// background checkpoint always overlaps a write, so only the checkpoint
// between two writes lets the WAL restart. The WAL file must stay near
// walRestartFrames while far more than that is written through it.
func TestCheckpointer_boundsTheWAL(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	path := filepath.Join(t.TempDir(), "q.db")
	const restartFrames = 64 // 256 KiB
	q, err := New(context.Background(), Options{Path: path, Config: cfg, Target: "http://127.0.0.1:1/",
		checkpointInterval: 20 * time.Millisecond, walRestartFrames: restartFrames})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })

	// 8 writers until 16 MiB of bodies went through the WAL: 64 times the
	// restart length.
	body := []byte(strings.Repeat("x", 4096))
	const writers, total = 8, 16 << 20 / 4096
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if err := q.Enqueue(t.Context(), queue.Task{Name: fmt.Sprintf("wal-%d", i), Body: body}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatalf("stat the WAL: %v", err)
	}
	// The WAL may run past the restart length for one interval's writes
	// before the checkpoint between writes: allow 16 times it, still a
	// quarter of what was written.
	if limit := int64(16 * restartFrames * 4096); fi.Size() > limit {
		t.Errorf("WAL is %d bytes after 16 MiB of tasks, want <= %d: it did not restart", fi.Size(), limit)
	}
}

// TestCheckpointer_logsFailureOnce: a checkpoint that fails leaves the WAL
// growing, so it must show in the log, once, not at every tick.
func TestCheckpointer_logsFailureOnce(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Name: "q", MaxDispatchesPerSecond: 1, MaxBurstSize: 1, MaxConcurrentDispatches: 1, DispatchDeadline: 1e9,
		Retry: queue.RetryConfig{MaxAttempts: 1, MinBackoff: 1, MaxBackoff: 1}}
	var logs lockedBuffer
	ctx := logging.WithLogger(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)))
	q, err := New(ctx, Options{Path: filepath.Join(t.TempDir(), "q.db"), Config: cfg, Target: "http://127.0.0.1:1/",
		checkpointInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	_ = q.cdb.Close() // every checkpoint fails from now on
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "WAL checkpoint failed") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // ten more failing ticks
	if n := strings.Count(logs.String(), "WAL checkpoint failed"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, logs.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
