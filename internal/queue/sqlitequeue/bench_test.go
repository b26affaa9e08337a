package sqlitequeue_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/sqlitequeue"
)

// benchQueue is a Queue that only enqueues (no Run), on a file in a temp dir.
func benchQueue(b *testing.B) *sqlitequeue.Queue {
	b.Helper()
	q, err := sqlitequeue.New(context.Background(), sqlitequeue.Options{
		Path:   filepath.Join(b.TempDir(), "q.db"),
		Config: config(),
		Target: "http://127.0.0.1:1/",
	})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

var benchBody = []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"test event","body":"test body","timestamp":"2024-05-01T12:00:00Z","brand":"testBrand"}`)

func benchTask(i int64) queue.Task {
	return queue.Task{
		Name:   queue.TaskName(fmt.Sprint(i)),
		Body:   benchBody,
		Header: map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}
}

// BenchmarkEnqueue is one caller at a time: every Enqueue waits for its own
// commit and fsync, so ns/op is the unloaded latency.
func BenchmarkEnqueue(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		if err := q.Enqueue(ctx, benchTask(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueParallel has 16 callers per CPU, as a busy ingest has:
// their Enqueues share transactions, so ns/op is the inverse throughput.
func BenchmarkEnqueueParallel(b *testing.B) {
	q := benchQueue(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Enqueue(ctx, benchTask(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEnqueueAt1000PerSecond is ingest's load: an open-loop 1,000
// Enqueues/s, each in its own goroutine as each HTTP request is. It reports
// the latency percentiles (ms) the ingest target (p99 <= 25 ms) is about,
// with the queue idle and while Run delivers 500 tasks/s to a local target
// (its lease and outcome writes share the write connection).
// Run it long: go test -bench EnqueueAt1000 -benchtime 30000x.
func BenchmarkEnqueueAt1000PerSecond(b *testing.B) {
	b.Run("idle", func(b *testing.B) { benchAt(b, benchQueue(b)) })
	b.Run("dispatching", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		b.Cleanup(srv.Close)
		cfg := config()
		cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = 100, 10, 50
		r := start(b, filepath.Join(b.TempDir(), "q.db"), sqlitequeue.Options{Config: cfg, Target: srv.URL})
		benchAt(b, r.q)
	})
}

func benchAt(b *testing.B, q *sqlitequeue.Queue) {
	const rate = 1000
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Int64
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := q.Enqueue(ctx, benchTask(int64(i))); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Errorf("%d of %d Enqueues failed", f, b.N)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(0.999), "p99.9-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}
