package devstack

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/engines"
)

// EngineConfig is the engines.Config of a local stack's engines, which
// devstack, relayctl and the fault harness open through internal/engines:
// engine EngineEmbedded is the SQLite files in dataDir, EngineGCP the Cloud
// Tasks queue and Firestore collection gcp names (in practice the
// emulators), with gcp.InvokerEmail as the tasks' identity. It is filled as
// the binaries fill theirs, with go-envconfig, so what is not set here
// takes its env tag's default.
func EngineConfig(engine, dataDir string, gcp GCPOptions) (engines.Config, error) {
	env := map[string]string{}
	set := func(key, value string) {
		if value != "" {
			env[key] = value
		}
	}
	switch engine {
	case EngineEmbedded:
		set("QUEUE_DB", filepath.Join(dataDir, QueueFile))
		set("STATUS_DB", filepath.Join(dataDir, StatusFile))
	case EngineGCP:
		set("GOOGLE_CLOUD_PROJECT", gcp.Project)
		set("QUEUE_LOCATION", gcp.Location)
		set("CLOUD_TASKS_EMULATOR_HOST", gcp.TasksEndpoint)
		set("TASKS_SERVICE_ACCOUNT", gcp.InvokerEmail)
		set("FIRESTORE_COLLECTION", gcp.Collection)
	}
	var c engines.Config
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		return engines.Config{}, fmt.Errorf("engine config: %w", err)
	}
	if err := c.SetPair(engine); err != nil {
		return engines.Config{}, err
	}
	return c, nil
}
