package infra

import (
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// repo is the repository root, from this package's directory.
const repo = "../.."

func loadRepo(t testing.TB) *config {
	t.Helper()
	c, err := loadTerraform(os.DirFS(repo), "terraform")
	if err != nil {
		t.Fatalf("loadTerraform: %v", err)
	}
	return c
}

// TestRepositoryTerraform runs every rule on terraform/.
func TestRepositoryTerraform(t *testing.T) {
	t.Parallel()
	c := loadRepo(t)
	for _, want := range []string{"modules/eventrelay", "modules/region", "modules/service", "modules/firestore", "modules/monitoring", "environments/dev", "environments/prod"} {
		if c.modules[want] == nil {
			t.Errorf("module %s not found", want)
		}
	}
	// The rules that follow module calls saw every Cloud Run service.
	var services []string
	for _, cl := range c.calls(c.modules["modules/service"]) {
		services = append(services, cl.b.Labels[0])
	}
	slices.Sort(services)
	if diff := cmp.Diff([]string{"dispatcher", "ingest", "targetmock"}, services); diff != "" {
		t.Errorf("calls of modules/service (-want +got):\n%s", diff)
	}
	for _, r := range terraformRules {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			for _, f := range r.check(c) {
				t.Error(f)
			}
		})
	}
}
