package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryCollectorConfig checks the sidecar's collector.yaml.
func TestRepositoryCollectorConfig(t *testing.T) {
	t.Parallel()
	const file = "terraform/modules/service/collector.yaml"
	src, err := os.ReadFile(filepath.Join(repo, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkCollectorConfig(src, file) {
		t.Error(f)
	}
}

const collectorYAML = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: localhost:4317
processors:
  memory_limiter:
    limit_percentage: 65
  resourcedetection:
    detectors: [gcp]
  batch: {}
exporters:
  googlecloud: {}
  otlphttp:
    endpoint: https://telemetry.googleapis.com
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, resourcedetection, batch]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, resourcedetection, batch]
      exporters: [googlecloud]
`

// TestCheckCollectorConfig shows the configuration check passing a good
// configuration and catching each way to get it wrong.
func TestCheckCollectorConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, old, new, wantMsg string
	}{
		{name: "conforming"},
		{name: "not YAML", old: "receivers:", new: "receivers: [", wantMsg: "parse"},
		{name: "health check not enabled", old: "extensions: [health_check]", new: "extensions: []", wantMsg: "does not enable health_check"},
		{name: "no metrics pipeline", old: "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter, resourcedetection, batch]\n      exporters: [googlecloud]\n", new: "", wantMsg: "no metrics pipeline"},
		{name: "batch first", old: "processors: [memory_limiter, resourcedetection, batch]\n      exporters: [otlphttp]", new: "processors: [batch, memory_limiter, resourcedetection]\n      exporters: [otlphttp]", wantMsg: "memory_limiter must be the first"},
		{name: "no resource detection", old: "processors: [memory_limiter, resourcedetection, batch]\n      exporters: [googlecloud]", new: "processors: [memory_limiter, batch]\n      exporters: [googlecloud]", wantMsg: "resourcedetection"},
		{name: "undefined exporter", old: "exporters: [otlphttp]", new: "exporters: [otlp/jaeger]", wantMsg: "exporter otlp/jaeger, which is not defined"},
		{name: "metrics to Managed Prometheus", old: "exporters: [googlecloud]", new: "exporters: [googlemanagedprometheus]", wantMsg: "does not export with googlecloud"},
		{name: "metrics under another prefix", old: "googlecloud: {}", new: "googlecloud:\n    metric:\n      prefix: custom.googleapis.com", wantMsg: "not workload.googleapis.com"},
		{name: "debug exporter", old: "exporters: [otlphttp]", new: "exporters: [otlphttp, debug]", wantMsg: "written to the logs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := collectorYAML
			if tc.old != "" {
				if !strings.Contains(src, tc.old) {
					t.Fatalf("fixture has no %q", tc.old)
				}
				src = strings.Replace(src, tc.old, tc.new, 1)
			}
			assertFindings(t, checkCollectorConfig([]byte(src), "collector.yaml"), "collector-config", tc.wantMsg)
		})
	}
}
