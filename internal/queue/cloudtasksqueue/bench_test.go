package cloudtasksqueue_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/testutil"
)

// benchQueue is an emulator queue delivering to a local target that
// answers 200 at once, fast enough (500/s) to keep up with the enqueues.
func benchQueue(b *testing.B) *cloudtasksqueue.Queue {
	b.Helper()
	host := testutil.Emulator(b, testutil.CloudTasksEmulatorEnv)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(srv.Close)
	cfg := queuetest.Config()
	cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = 500, 50, 50
	return ensured(b, options(host, queueID(b), srv.URL), cfg)
}

var benchBody = []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"test event","body":"test body","timestamp":"2024-05-01T12:00:00Z","brand":"testBrand"}`)

func benchTask(i int64) queue.Task {
	return queue.Task{
		Name:   queue.TaskName(fmt.Sprint(i)),
		Body:   benchBody,
		Header: http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	}
}

// BenchmarkEnqueue is one caller at a time: ns/op is the unloaded latency
// of one CreateTask on the emulator.
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
// ns/op is the inverse throughput.
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

// BenchmarkEnqueueAt200PerSecond is the load on the emulator
// engine: an open-loop 200 Enqueues/s, each in its own goroutine as each
// ingest request is, while the emulator delivers them. It reports the
// latency percentiles (ms). Run it long:
// go test -bench EnqueueAt200 -benchtime 4000x.
func BenchmarkEnqueueAt200PerSecond(b *testing.B) {
	const rate = 200
	q := benchQueue(b)
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Int64
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			t0 := time.Now()
			if err := q.Enqueue(ctx, benchTask(int64(i))); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(t0)
		})
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
