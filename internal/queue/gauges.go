package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"eventrelay/internal/logging"
	"eventrelay/internal/telemetry"
)

// statsTimeout bounds one Stats call made for a metrics collection.
const statsTimeout = 5 * time.Second

// ObserveGauges reports r's Stats as telemetry.MetricQueueBacklog and
// telemetry.MetricQueueOldestAge through mp (nil: the global provider),
// read at each collection. A failing Stats call reports nothing for that
// collection and is logged (with the logger of ctx) when it starts failing
// and when it recovers, not at every collection. Call stop to unregister.
func ObserveGauges(ctx context.Context, mp metric.MeterProvider, r StatsReader) (stop func() error, err error) {
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
		failed bool
	)
	reg, err := m.RegisterCallback(func(cctx context.Context, o metric.Observer) error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(cctx), statsTimeout)
		defer cancel()
		st, err := r.Stats(cctx)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if !failed {
				logger.Warn("queue stats unavailable; backlog gauges not reported until they are", "error", err.Error())
			}
			failed = true
			return nil // a missing point says it; an error would fail the whole collection
		}
		if failed {
			logger.Info("queue stats available again")
		}
		failed = false
		o.ObserveInt64(backlog, st.Backlog)
		o.ObserveFloat64(oldest, st.OldestAge.Seconds())
		return nil
	}, backlog, oldest)
	if err != nil {
		return nil, fmt.Errorf("queue gauges: %w", err)
	}
	return reg.Unregister, nil
}
