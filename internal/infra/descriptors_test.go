package infra

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"eventrelay/internal/telemetry"
)

// exporterLabels are the labels the collector's googlecloud exporter adds to
// every workload metric with its default settings: the meter's scope
// (metric.instrumentation_library_labels) and the resource's service.name
// (metric.service_resource_labels; the services set no service.namespace
// or service.instance.id).
var exporterLabels = []string{"instrumentation_source", "instrumentation_version", "service_name"}

// TestMetricDescriptorsMatchTheExporter checks each metric descriptor the
// monitoring module declares against what the googlecloud exporter will
// write for the same metric (telemetry.Declared, which the instrumented
// packages' tests check against their instruments). A descriptor that
// differs would be updated by the exporter behind Terraform's back, and a
// label difference would make Terraform replace it: terraform test cannot
// see the Go side, so this check lives here.
func TestMetricDescriptorsMatchTheExporter(t *testing.T) {
	t.Parallel()
	mon := loadRepo(t).modules["modules/monitoring"]
	if mon == nil {
		t.Fatal("modules/monitoring not found")
	}

	// The exporter's label defaults must be in force.
	var col struct {
		Exporters struct {
			GoogleCloud struct {
				Metric map[string]any `yaml:"metric"`
			} `yaml:"googlecloud"`
		} `yaml:"exporters"`
	}
	src, err := os.ReadFile(filepath.Join(repo, "terraform", "modules", "service", "collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(src, &col); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instrumentation_library_labels", "service_resource_labels", "resource_filters"} {
		if v, ok := col.Exporters.GoogleCloud.Metric[k]; ok {
			t.Errorf("collector.yaml sets exporters.googlecloud.metric.%s = %v: the descriptors assume the default labels %v", k, v, exporterLabels)
		}
	}

	got := map[string]telemetry.Descriptor{}
	for _, b := range mon.find("resource", "google_monitoring_metric_descriptor") {
		attr := func(name string) string { return literalAttr(t, b.addr(), b.Body, name) }
		d := telemetry.Descriptor{
			Name:        attr("display_name"),
			Description: attr("description"),
			Unit:        attr("unit"),
			Kind:        attr("metric_kind"),
			ValueType:   attr("value_type"),
		}
		typ := attr("type")
		if want := "workload.googleapis.com/" + d.Name; typ != want {
			t.Errorf("%s: type = %q, want %q (the exporter's prefix and the display name)", b.addr(), typ, want)
		}
		if p := attr("deletion_policy"); p != "ABANDON" {
			t.Errorf("%s: deletion_policy = %q, want ABANDON: a replaced or destroyed descriptor takes the metric's history with it", b.addr(), p)
		}
		var labels []string
		for _, lb := range b.Body.Blocks {
			if lb.Type != "labels" {
				continue
			}
			labels = append(labels, literalAttr(t, b.addr(), lb.Body, "key"))
			if v := literalAttr(t, b.addr(), lb.Body, "value_type"); v != "STRING" {
				t.Errorf("%s: label value_type %q, want STRING (the exporter writes every label as a string)", b.addr(), v)
			}
		}
		slices.Sort(labels)
		d.Attributes = labels
		got[d.Name] = d
	}

	want := map[string]telemetry.Descriptor{}
	for _, d := range telemetry.Declared() {
		d.Attributes = slices.Sorted(slices.Values(append(slices.Clone(d.Attributes), exporterLabels...)))
		want[d.Name] = d
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric descriptors in modules/monitoring differ from what the exporter writes (-exporter +terraform):\n%s", diff)
	}
}

func literalAttr(t *testing.T, where string, body *hclsyntax.Body, name string) string {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Errorf("%s: %s not set", where, name)
		return ""
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
		t.Errorf("%s: %s must be a literal string (the exporter's values are literals)", where, name)
		return ""
	}
	return v.AsString()
}
