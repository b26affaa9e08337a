package infra_test

import (
	"os"
	"path/filepath"
	"testing"

	"eventrelay/internal/infra"
)

// repo is the repository root, from this package's directory.
const repo = "../.."

func loadRepo(t testing.TB) *infra.Config {
	t.Helper()
	cfg, err := infra.LoadTerraform(os.DirFS(repo), "terraform", os.DirFS(filepath.Join(repo, "docs", "playbooks")))
	if err != nil {
		t.Fatalf("LoadTerraform: %v", err)
	}
	return cfg
}

// TestRepositoryTerraform runs every policy rule on terraform/.
func TestRepositoryTerraform(t *testing.T) {
	t.Parallel()
	cfg := loadRepo(t)
	for _, want := range []string{"modules/eventrelay", "modules/region", "modules/firestore", "modules/monitoring", "environments/dev", "environments/prod"} {
		if cfg.Modules[want] == nil {
			t.Errorf("module %s not found", want)
		}
	}
	for _, r := range infra.TerraformRules {
		t.Run(r.Name, func(t *testing.T) {
			t.Parallel()
			for _, f := range r.Check(cfg) {
				t.Error(f)
			}
		})
	}
}
