package queue_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"eventrelay/internal/queue"
	"eventrelay/internal/telemetry"
)

// fakeStats is a queue.StatsReader with a settable answer.
type fakeStats struct {
	mu    sync.Mutex
	stats queue.Stats
	err   error
}

func (f *fakeStats) Stats(context.Context) (queue.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.err
}

func (f *fakeStats) set(s queue.Stats, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats, f.err = s, err
}

// gauges collects the queue gauges: name → value; absent when not observed.
func gauges(t *testing.T, r sdkmetric.Reader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = dp.Value
				}
			}
		}
	}
	return out
}

func TestObserveGauges(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	stats := &fakeStats{stats: queue.Stats{Backlog: 42, InFlight: 3, OldestAge: 90 * time.Second}}
	stop, err := queue.ObserveGauges(context.Background(), mp, stats)
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]float64{telemetry.MetricQueueBacklog: 42, telemetry.MetricQueueOldestAge: 90}
	if diff := cmp.Diff(want, gauges(t, reader)); diff != "" {
		t.Errorf("gauges (-want +got):\n%s", diff)
	}
	// Terraform declares the oldest-age descriptor for the backlog alert.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == telemetry.QueueOldestAge.Name {
				checked++
				if err := telemetry.QueueOldestAge.Check(m); err != nil {
					t.Error(err)
				}
			}
		}
	}
	if checked != 1 {
		t.Errorf("collected %d %s metrics, want 1", checked, telemetry.QueueOldestAge.Name)
	}
	stats.set(queue.Stats{}, errors.New("queue down"))
	if got := gauges(t, reader); len(got) != 0 {
		t.Errorf("gauges while Stats fails = %v, want none", got)
	}
	stats.set(queue.Stats{}, nil)
	want = map[string]float64{telemetry.MetricQueueBacklog: 0, telemetry.MetricQueueOldestAge: 0}
	if diff := cmp.Diff(want, gauges(t, reader)); diff != "" {
		t.Errorf("gauges of an empty queue (-want +got):\n%s", diff)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := gauges(t, reader); len(got) != 0 {
		t.Errorf("gauges after stop = %v, want none", got)
	}
}
