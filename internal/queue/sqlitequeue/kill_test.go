package sqlitequeue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
	"eventrelay/internal/testutil"
)

const (
	childEnv  = "SQLITEQUEUE_KILL9_CHILD" // the data file, in the child
	targetEnv = "SQLITEQUEUE_KILL9_TARGET"
)

// TestKill9 runs a real process that enqueues tasks (printing each accepted
// name) and dispatches them, kills it with SIGKILL mid-flight, and checks
// from a new queue on the same file that every accepted task is there and is
// delivered, including the ones that were in flight.
func TestKill9(t *testing.T) {
	if path := os.Getenv(childEnv); path != "" {
		kill9Child(path, os.Getenv(targetEnv))
		return
	}
	t.Parallel()

	var (
		mu        sync.Mutex
		delivered = map[string]int{}
		phase2    atomic.Bool
		held      atomic.Int64
	)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client's death.
		_, _ = io.Copy(io.Discard, r.Body)
		name := r.Header.Get(queue.HeaderTaskName)
		if !phase2.Load() {
			mu.Lock()
			n := len(delivered)
			mu.Unlock()
			if n >= 20 { // then hang: these are in flight at the kill
				held.Add(1)
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
		}
		mu.Lock()
		delivered[name]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	path := filepath.Join(t.TempDir(), "q.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
	cmd.Env = append(os.Environ(), childEnv+"="+path, targetEnv+"="+srv.URL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for line := range lines {
		if name, ok := strings.CutPrefix(line, "ok "); ok {
			acked = append(acked, name)
		}
		if len(acked) >= 300 && held.Load() >= 3 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	for line := range lines { // printed before the kill: acknowledged too
		if name, ok := strings.CutPrefix(line, "ok "); ok {
			acked = append(acked, name)
		}
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged %d tasks before dying, want >= 300", len(acked))
	}
	phase2.Store(true)

	cfg := config()
	cfg.DispatchDeadline = time.Hour // only a prompt redelivery passes
	r := start(t, path, sqlitequeue.Options{Config: cfg, Target: srv.URL})
	ctx := testContext(t)
	for _, n := range acked {
		if err := r.q.Enqueue(ctx, queue.Task{Name: n}); !errors.Is(err, queue.ErrAlreadyExists) {
			t.Fatalf("Enqueue(%s) after kill -9 = %v, want ErrAlreadyExists (the task was accepted before)", n, err)
		}
	}
	testutil.WaitFor(t, waitTimeout, "every accepted task delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range acked {
			if delivered[n] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range delivered {
		dups += c - 1
	}
	t.Logf("%d tasks accepted before kill -9, %d held in flight, all delivered, %d duplicate deliveries", len(acked), held.Load(), dups)
}

// kill9Child enqueues from 8 goroutines until killed, printing "ok NAME"
// after each accepted task, while Run delivers to target.
func kill9Child(path, target string) {
	ctx := logging.WithLogger(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg := config()
	cfg.MaxConcurrentDispatches = 3
	q, err := sqlitequeue.New(ctx, sqlitequeue.Options{Path: path, Config: cfg, Target: target})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go q.Run(ctx) //nolint:errcheck // killed, never returns
	var out sync.Mutex
	var n atomic.Int64
	for range 8 {
		go func() {
			for {
				name := fmt.Sprintf("task-%06d", n.Add(1))
				if err := q.Enqueue(ctx, queue.Task{Name: name, Body: []byte(`{}`)}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					continue
				}
				out.Lock()
				fmt.Fprintln(os.Stdout, "ok "+name)
				out.Unlock()
			}
		}()
	}
	select {}
}
