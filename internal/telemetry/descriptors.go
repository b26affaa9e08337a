package telemetry

import (
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Descriptor is one exported metric as Cloud Monitoring stores it after the
// collector's googlecloud exporter wrote it: the instrument's name,
// description and unit, the metric kind and value type the exporter maps
// the instrument to, and the point attributes that become metric labels.
//
// Terraform declares a google_monitoring_metric_descriptor for each metric
// an alert reads (terraform/modules/monitoring/descriptors.tf), because an
// alert policy on a metric type nothing has written yet is refused with 404
// (ADR 0011). The exporter creates or updates the same descriptor when it
// first writes the metric, and Cloud Monitoring never removes labels, so
// both must say the same thing: internal/infra checks the Terraform against
// these values, and the instrumented packages' tests check their
// instruments against them.
type Descriptor struct {
	// Name is the instrument's name; the metric type is
	// workload.googleapis.com/<Name>.
	Name string
	// Description and Unit are the instrument's.
	Description string
	Unit        string
	// Kind is CUMULATIVE (a monotonic counter or a histogram) or GAUGE.
	Kind string
	// ValueType is INT64, DOUBLE or DISTRIBUTION.
	ValueType string
	// Attributes are the point attributes, which become metric labels.
	Attributes []string
}

// The metrics that alerts read.
var (
	// DispatchAttempts describes MetricDispatchAttempts.
	DispatchAttempts = Descriptor{
		Name:        MetricDispatchAttempts,
		Description: "Deliveries the dispatcher handled, by the attempt's outcome.",
		Unit:        "{attempt}",
		Kind:        "CUMULATIVE",
		ValueType:   "INT64",
		Attributes:  []string{AttrOutcome},
	}
	// QueueOldestAge describes MetricQueueOldestAge.
	QueueOldestAge = Descriptor{
		Name:        MetricQueueOldestAge,
		Description: "Age of the oldest unfinished task in the queue.",
		Unit:        "s",
		Kind:        "GAUGE",
		ValueType:   "DOUBLE",
		Attributes:  []string{AttrQueue},
	}
	// ReconcileRecords describes MetricReconcileRecords.
	ReconcileRecords = Descriptor{
		Name:        MetricReconcileRecords,
		Description: "Records whose task was gone from the queue while they were not final, by cause and by what the reconciler did.",
		Unit:        "{record}",
		Kind:        "CUMULATIVE",
		ValueType:   "INT64",
		Attributes:  []string{AttrAction, AttrCause},
	}
)

// Declared lists the descriptors Terraform declares, by Name.
func Declared() []Descriptor {
	return []Descriptor{DispatchAttempts, QueueOldestAge, ReconcileRecords}
}

// Check reports how m, as an SDK reader collected it, differs from d: the
// name, description, unit, the kind and value type the googlecloud
// exporter maps its data to, and its points' attribute keys.
func (d Descriptor) Check(m metricdata.Metrics) error {
	var kind, valueType string
	var attrs []string
	addAttrs := func(keys []string) {
		for _, k := range keys {
			if !slices.Contains(attrs, k) {
				attrs = append(attrs, k)
			}
		}
	}
	switch data := m.Data.(type) {
	case metricdata.Sum[int64]:
		kind, valueType = sumKind(data.IsMonotonic), "INT64"
		for _, dp := range data.DataPoints {
			addAttrs(attrKeys(dp.Attributes.ToSlice()))
		}
	case metricdata.Sum[float64]:
		kind, valueType = sumKind(data.IsMonotonic), "DOUBLE"
		for _, dp := range data.DataPoints {
			addAttrs(attrKeys(dp.Attributes.ToSlice()))
		}
	case metricdata.Gauge[int64]:
		kind, valueType = "GAUGE", "INT64"
		for _, dp := range data.DataPoints {
			addAttrs(attrKeys(dp.Attributes.ToSlice()))
		}
	case metricdata.Gauge[float64]:
		kind, valueType = "GAUGE", "DOUBLE"
		for _, dp := range data.DataPoints {
			addAttrs(attrKeys(dp.Attributes.ToSlice()))
		}
	case metricdata.Histogram[float64]:
		kind, valueType = "CUMULATIVE", "DISTRIBUTION"
		for _, dp := range data.DataPoints {
			addAttrs(attrKeys(dp.Attributes.ToSlice()))
		}
	default:
		return fmt.Errorf("%s: unsupported data %T", m.Name, m.Data)
	}
	slices.Sort(attrs)
	want := slices.Sorted(slices.Values(d.Attributes))
	if attrs == nil {
		attrs = []string{}
	}
	if want == nil {
		want = []string{}
	}
	got := Descriptor{Name: m.Name, Description: m.Description, Unit: m.Unit, Kind: kind, ValueType: valueType, Attributes: attrs}
	wantD := d
	wantD.Attributes = want
	if fmt.Sprint(got) != fmt.Sprint(wantD) {
		return fmt.Errorf("metric %s is\n\t%+v\nbut its descriptor says\n\t%+v", m.Name, got, wantD)
	}
	return nil
}

// sumKind is the exporter's kind for a sum: a non-monotonic sum is a GAUGE.
func sumKind(monotonic bool) string {
	if monotonic {
		return "CUMULATIVE"
	}
	return "GAUGE"
}

func attrKeys(kvs []attribute.KeyValue) []string {
	keys := make([]string, len(kvs))
	for i, kv := range kvs {
		keys[i] = string(kv.Key)
	}
	return keys
}
