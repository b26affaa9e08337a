package telemetry

import "github.com/sethvargo/go-envconfig"

// The service names (service.name) of eventrelay's processes: what each
// binary calls itself when OTEL_SERVICE_NAME is unset. Spans and metrics
// are told apart by them, in GCP and on relayctl dev's ops page alike.
const (
	ServiceIngest      = "ingest"
	ServiceDispatcher  = "dispatcher"
	ServiceTargetmock  = "targetmock"
	ServiceRelayctlDev = "relayctl-dev"
)

// serviceNameVar is the variable Config.ServiceName is read from.
const serviceNameVar = "OTEL_SERVICE_NAME"

// WithServiceName is env, with OTEL_SERVICE_NAME defaulting to service
// when env leaves it unset or empty. Each main reads its configuration,
// Config included, through it with its own Service constant: the one place
// a binary names itself.
func WithServiceName(env envconfig.Lookuper, service string) envconfig.Lookuper {
	return serviceNameLookuper{env: env, service: service}
}

type serviceNameLookuper struct {
	env     envconfig.Lookuper
	service string
}

func (l serviceNameLookuper) Lookup(key string) (string, bool) {
	v, ok := l.env.Lookup(key)
	if key == serviceNameVar && v == "" {
		return l.service, true
	}
	return v, ok
}
