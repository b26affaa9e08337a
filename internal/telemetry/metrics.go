package telemetry

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/trace"
)

// The metrics eventrelay exports. Terraform's dashboard and alerts read them
// as workload.googleapis.com/<name> (terraform/modules/monitoring/metrics.tf)
// and docs/observability.md describes each: renaming one breaks a chart or
// an alert silently. In Prometheus form dots become underscores, counters
// gain _total and second-valued instruments _seconds.
const (
	// MetricIngestRequests counts POST /events answers by AttrOutcome
	// (IngestOutcome*).
	MetricIngestRequests = "eventrelay.ingest.requests"
	// MetricIngestDuration is the time from request to answer, in seconds.
	MetricIngestDuration = "eventrelay.ingest.duration"
	// MetricEnqueueDuration is one Queue.Enqueue call, in seconds.
	MetricEnqueueDuration = "eventrelay.queue.enqueue.duration"
	// MetricDispatchAttempts counts deliveries the dispatcher handled, by
	// AttrOutcome (the status.Outcome of the attempt).
	MetricDispatchAttempts = "eventrelay.dispatch.attempts"
	// MetricTargetDuration is one receiveEvent call to the target, in seconds.
	MetricTargetDuration = "eventrelay.target.duration"
	// MetricDeliveryLag is received (ingest) → delivered (target), in seconds.
	MetricDeliveryLag = "eventrelay.delivery.lag"
	// MetricQueueBacklog is the number of unfinished tasks in one engine
	// queue, by AttrQueue.
	MetricQueueBacklog = "eventrelay.queue.backlog"
	// MetricQueueOldestAge is the age of the oldest unfinished task in one
	// engine queue, in seconds, by AttrQueue.
	MetricQueueOldestAge = "eventrelay.queue.oldest_age"
	// MetricIngestDuplicates counts events ingest accepted as duplicates (no
	// second task).
	MetricIngestDuplicates = "eventrelay.ingest.duplicates"
	// MetricQueueDispatchRate is the queue's live maximum dispatch rate, in
	// tasks per second, as the rate governor last read it.
	MetricQueueDispatchRate = "eventrelay.queue.dispatch_rate"
	// MetricQueueRateCeiling is the rate ops gave the queue, in tasks per
	// second: the governor never sets a rate above it.
	MetricQueueRateCeiling = "eventrelay.queue.rate_ceiling"
	// MetricQueuePaused is 1 while the queue is paused, else 0.
	MetricQueuePaused = "eventrelay.queue.paused"
	// MetricGovernorActions counts the rate governor's changes by AttrAction
	// (slow, raise, stand_down, and the circuit breaker's break_open,
	// break_half_open, break_close).
	MetricGovernorActions = "eventrelay.governor.actions"
	// MetricDispatchRequeues counts events the dispatcher re-enqueued on
	// their last allowed attempt, because the target rate limited it or the
	// status store failed.
	MetricDispatchRequeues = "eventrelay.dispatch.requeues"
	// MetricReconcileRecords counts the records the reconciler acted on
	// (or, in a dry run, would have), by AttrCause and AttrAction.
	MetricReconcileRecords = "eventrelay.reconcile.records"
)

// AttrCause is the attribute that says why the reconciler acted on a
// record (ReconcileCauseTaskMissing).
const AttrCause = "cause"

// Values of AttrCause and AttrAction on MetricReconcileRecords.
const (
	// ReconcileCauseTaskMissing: the record is not final and its task is
	// no longer in the queue.
	ReconcileCauseTaskMissing = "task_missing"
	// ReconcileActionRequeued: the event was enqueued under its next task
	// name.
	ReconcileActionRequeued = "requeued"
	// ReconcileActionDeadLettered: the record was dead-lettered, by policy.
	ReconcileActionDeadLettered = "dead_lettered"
	// ReconcileActionFound: a dry run found the record and changed nothing.
	ReconcileActionFound = "found"
)

// AttrQueue names the engine queue a backlog gauge (MetricQueueBacklog,
// MetricQueueOldestAge) describes: the queue's name, or with a sharded
// queue each shard's (queue.ShardName). A total is a sum of the backlogs
// and the largest oldest age across its values.
const AttrQueue = "queue"

// AttrAction is the attribute that splits MetricGovernorActions.
const AttrAction = "action"

// AttrOutcome is the attribute that splits the request and attempt counters.
const AttrOutcome = "outcome"

// Values of AttrOutcome on MetricIngestRequests.
const (
	IngestOutcomeAccepted        = "accepted"        // 202, new event
	IngestOutcomeDuplicate       = "duplicate"       // 202, id seen before
	IngestOutcomeRejected        = "rejected"        // other 4xx: bad method, type, size, JSON, event, path
	IngestOutcomeUnauthenticated = "unauthenticated" // 401 or 403
	IngestOutcomeUnavailable     = "unavailable"     // 5xx: queue or token keys unavailable
)

// Bucket boundaries, in seconds, of the histograms.
var (
	// LatencyBuckets suit calls that take milliseconds to seconds.
	LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// LagBuckets suit an event's wait in the backlog: up to a day.
	LagBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400}
)

// Option chooses the providers a component instruments itself with.
type Option func(*Providers)

// WithTracerProvider makes a component start its spans with tp (nil: the
// global one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(p *Providers) {
		if tp != nil {
			p.Tracer = tp
		}
	}
}

// WithMeterProvider makes a component record its metrics with mp (nil: the
// global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(p *Providers) {
		if mp != nil {
			p.Meter = mp
		}
	}
}

// Providers are the tracer and meter providers a component uses.
type Providers struct {
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// NewProviders applies opts over the global providers (those Setup installs).
func NewProviders(opts ...Option) Providers {
	p := Providers{Tracer: otel.GetTracerProvider(), Meter: otel.GetMeterProvider()}
	for _, o := range opts {
		o(&p)
	}
	return p
}

// NewPrometheus returns a meter provider for a process that serves its
// metrics itself (relayctl dev, tests) and the handler that serves them in
// the Prometheus text format. Each call has its own registry, so two stacks
// in one process never mix their numbers. More readers (a Pipeline's OTLP
// reader) get the same metrics; nil ones are skipped.
func NewPrometheus(serviceName string, readers ...sdkmetric.Reader) (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	res, err := Resource(serviceName)
	if err != nil {
		return nil, nil, err
	}
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exp), noExemplars}
	for _, r := range readers {
		if r != nil {
			opts = append(opts, sdkmetric.WithReader(r))
		}
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// noExemplars turns exemplars off. With them on (the SDK's default for
// sampled spans), every histogram measurement in a sampled trace also
// stores an exemplar: a quarter of the handler's telemetry cost in
// BenchmarkTelemetry, for a link from a chart to a trace that the logs and
// the status record already give.
var noExemplars = sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)
