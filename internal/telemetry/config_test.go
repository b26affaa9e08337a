package telemetry_test

import (
	"testing"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/telemetry"
)

func TestWithServiceName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "unset", env: nil, want: telemetry.ServiceIngest},
		{name: "empty", env: map[string]string{"OTEL_SERVICE_NAME": ""}, want: telemetry.ServiceIngest},
		{name: "set", env: map[string]string{"OTEL_SERVICE_NAME": "ingest-canary"}, want: "ingest-canary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c struct{ Telemetry telemetry.Config }
			env := telemetry.WithServiceName(envconfig.MapLookuper(tc.env), telemetry.ServiceIngest)
			if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: env}); err != nil {
				t.Fatal(err)
			}
			if c.Telemetry.ServiceName != tc.want {
				t.Errorf("ServiceName = %q, want %q", c.Telemetry.ServiceName, tc.want)
			}
		})
	}
	env := telemetry.WithServiceName(envconfig.MapLookuper(map[string]string{"TRACE_SAMPLE_RATIO": "0.5"}), telemetry.ServiceIngest)
	if v, ok := env.Lookup("TRACE_SAMPLE_RATIO"); v != "0.5" || !ok {
		t.Errorf("other variables: Lookup(TRACE_SAMPLE_RATIO) = %q, %v, want 0.5, true", v, ok)
	}
	if v, ok := env.Lookup("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" || ok {
		t.Errorf("other variables: Lookup of an unset one = %q, %v, want unset", v, ok)
	}
}
