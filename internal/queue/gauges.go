package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"eventrelay/internal/logging"
	"eventrelay/internal/telemetry"
)

// statsTimeout bounds one Stats call made for a metrics collection.
const statsTimeout = 5 * time.Second

// ObserveGauges reports r's Stats as telemetry.MetricQueueBacklog and
// telemetry.MetricQueueOldestAge through mp (nil: the global provider),
// read at each collection, one point per engine queue labelled with its
// name (telemetry.AttrQueue): name for a single queue, and each shard's
// own name when r is a ShardStatsReader (a sharded queue), so a dashboard
// shows which shard is behind and sums the backlogs (and takes the largest
// oldest age) itself. A queue whose Stats fail has no point for that
// collection, and is logged (with the logger of ctx) when it starts failing
// and when it recovers, not at every collection; the other shards are
// still reported. Call stop to unregister.
func ObserveGauges(ctx context.Context, mp metric.MeterProvider, name string, r StatsReader) (stop func() error, err error) {
	sr, sharded := r.(ShardStatsReader)
	if name == "" && !sharded {
		return nil, errors.New("queue gauges: the queue has no name to label its points with")
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("eventrelay/internal/queue")
	backlog, err1 := m.Int64ObservableGauge(telemetry.MetricQueueBacklog,
		metric.WithDescription("Tasks accepted by the queue and not finished (queued, waiting for a retry, in flight)."),
		metric.WithUnit("{task}"))
	oldest, err2 := m.Float64ObservableGauge(telemetry.QueueOldestAge.Name,
		metric.WithDescription(telemetry.QueueOldestAge.Description),
		metric.WithUnit(telemetry.QueueOldestAge.Unit))
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("queue gauges: %w", err)
	}
	logger := logging.FromContext(ctx)
	var (
		mu     sync.Mutex
		failed = map[string]bool{} // queues whose last Stats failed
	)
	reg, err := m.RegisterCallback(func(cctx context.Context, o metric.Observer) error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(cctx), statsTimeout)
		defer cancel()
		var stats []ShardStat
		if sharded {
			stats = sr.ShardStats(cctx)
		} else {
			st, err := r.Stats(cctx)
			stats = []ShardStat{{Name: name, Stats: st, Err: err}}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range stats {
			if s.Err != nil {
				if !failed[s.Name] {
					logger.Warn("queue stats unavailable; its backlog gauges are not reported until they are",
						"queue", s.Name, "error", s.Err.Error())
				}
				failed[s.Name] = true
				continue // a missing point says it; an error would fail the whole collection
			}
			if failed[s.Name] {
				logger.Info("queue stats available again", "queue", s.Name)
				delete(failed, s.Name)
			}
			attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String(telemetry.AttrQueue, s.Name)))
			o.ObserveInt64(backlog, s.Stats.Backlog, attrs)
			o.ObserveFloat64(oldest, s.Stats.OldestAge.Seconds(), attrs)
		}
		return nil
	}, backlog, oldest)
	if err != nil {
		return nil, fmt.Errorf("queue gauges: %w", err)
	}
	return reg.Unregister, nil
}
