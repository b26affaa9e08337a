package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"eventrelay/internal/logging"
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

// fakeShards is a sharded queue's StatsReader and ShardStatsReader with
// settable answers per shard.
type fakeShards struct {
	mu     sync.Mutex
	shards []queue.ShardStat
}

func (f *fakeShards) Stats(context.Context) (queue.Stats, error) {
	return queue.Stats{}, errors.New("fakeShards: the gauges must read ShardStats")
}

func (f *fakeShards) ShardStats(context.Context) []queue.ShardStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queue.ShardStat(nil), f.shards...)
}

func (f *fakeShards) set(i int, s queue.Stats, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shards[i].Stats, f.shards[i].Err = s, err
}

// points is what one collection of the queue gauges holds: metric name →
// value of telemetry.AttrQueue → value.
type points map[string]map[string]float64

// collect collects the queue gauges. A metric without points is absent; a
// point without the queue attribute is under "".
func collect(t *testing.T, r sdkmetric.Reader) points {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := points{}
	add := func(m string, q string, v float64) {
		if out[m] == nil {
			out[m] = map[string]float64{}
		}
		if _, dup := out[m][q]; dup {
			t.Errorf("%s: two points for queue %q", m, q)
		}
		out[m][q] = v
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					q, _ := dp.Attributes.Value(telemetry.AttrQueue)
					add(m.Name, q.AsString(), float64(dp.Value))
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					q, _ := dp.Attributes.Value(telemetry.AttrQueue)
					add(m.Name, q.AsString(), dp.Value)
				}
			}
		}
	}
	return out
}

// logLines decodes the JSON log lines in buf as level, message, queue.
func logLines(t *testing.T, buf *bytes.Buffer) [][3]string {
	t.Helper()
	var out [][3]string
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	for dec.More() {
		var l struct {
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Queue    string `json:"queue"`
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		out = append(out, [3]string{l.Severity, l.Message, l.Queue})
	}
	return out
}

func newReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return reader, mp
}

func TestObserveGauges(t *testing.T) {
	t.Parallel()
	reader, mp := newReader(t)
	stats := &fakeStats{stats: queue.Stats{Backlog: 42, InFlight: 3, OldestAge: 90 * time.Second}}
	stop, err := queue.ObserveGauges(context.Background(), mp, "events", stats)
	if err != nil {
		t.Fatal(err)
	}

	want := points{
		telemetry.MetricQueueBacklog:   {"events": 42},
		telemetry.MetricQueueOldestAge: {"events": 90},
	}
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
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
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("gauges while Stats fails = %v, want none", got)
	}
	stats.set(queue.Stats{}, nil)
	want = points{
		telemetry.MetricQueueBacklog:   {"events": 0},
		telemetry.MetricQueueOldestAge: {"events": 0},
	}
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Errorf("gauges of an empty queue (-want +got):\n%s", diff)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader); len(got) != 0 {
		t.Errorf("gauges after stop = %v, want none", got)
	}
}

// A sharded queue reports each shard under its own name; a shard that
// cannot answer has no point while the others are still reported, and is
// logged once when it starts failing and once when it recovers.
func TestObserveGaugesShards(t *testing.T) {
	t.Parallel()
	reader, mp := newReader(t)
	var logs bytes.Buffer
	ctx := logging.WithLogger(context.Background(), logging.New(&logs, logging.Options{Level: "info"}))
	shards := &fakeShards{shards: []queue.ShardStat{
		{Name: "events", Stats: queue.Stats{Backlog: 10, OldestAge: 5 * time.Second}},
		{Name: "events-1", Stats: queue.Stats{Backlog: 700, InFlight: 4, OldestAge: 300 * time.Second}},
		{Name: "events-2"},
	}}
	// The name is the base queue's; the shards name themselves.
	stop, err := queue.ObserveGauges(ctx, mp, "ignored", shards)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })

	want := points{
		telemetry.MetricQueueBacklog:   {"events": 10, "events-1": 700, "events-2": 0},
		telemetry.MetricQueueOldestAge: {"events": 5, "events-1": 300, "events-2": 0},
	}
	if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
		t.Errorf("gauges (-want +got):\n%s", diff)
	}

	shards.set(1, queue.Stats{}, errors.New("shard down"))
	want = points{
		telemetry.MetricQueueBacklog:   {"events": 10, "events-2": 0},
		telemetry.MetricQueueOldestAge: {"events": 5, "events-2": 0},
	}
	for range 3 {
		if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
			t.Errorf("gauges while events-1 fails (-want +got):\n%s", diff)
		}
	}
	shards.set(1, queue.Stats{Backlog: 650, OldestAge: 280 * time.Second}, nil)
	want = points{
		telemetry.MetricQueueBacklog:   {"events": 10, "events-1": 650, "events-2": 0},
		telemetry.MetricQueueOldestAge: {"events": 5, "events-1": 280, "events-2": 0},
	}
	for range 2 {
		if diff := cmp.Diff(want, collect(t, reader)); diff != "" {
			t.Errorf("gauges after events-1 recovered (-want +got):\n%s", diff)
		}
	}

	wantLogs := [][3]string{
		{"WARNING", "queue stats unavailable; its backlog gauges are not reported until they are", "events-1"},
		{"INFO", "queue stats available again", "events-1"},
	}
	if diff := cmp.Diff(wantLogs, logLines(t, &logs)); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
}

func TestObserveGaugesNeedsAName(t *testing.T) {
	t.Parallel()
	_, mp := newReader(t)
	if _, err := queue.ObserveGauges(context.Background(), mp, "", &fakeStats{}); err == nil {
		t.Error("ObserveGauges of an unnamed single queue: no error")
	}
}
