package infra

import (
	"strings"
	"testing"
)

// TestIngestAudienceWiring: sourcemock mints its ID tokens for the very
// audience ingest checks. The modules' tests assert each side against its
// ingest_audience variable (sourcemock.tftest.hcl, region.tftest.hcl);
// that modules/eventrelay gives both calls the same value needs outputs
// neither module has, so it is read here.
func TestIngestAudienceWiring(t *testing.T) {
	t.Parallel()
	root := loadRepo(t).modules["modules/eventrelay"]
	for _, name := range []string{"sourcemock", "region"} {
		calls := root.find("module", name)
		if len(calls) != 1 {
			t.Fatalf("modules/eventrelay calls module %s %d times", name, len(calls))
		}
		arg := attrExpr(calls[0].Body, "ingest_audience")
		if arg == nil {
			t.Errorf("module %s gets no ingest_audience", name)
			continue
		}
		if got := strings.TrimSpace(calls[0].text(arg.Range())); got != "var.ingest_audience" {
			t.Errorf("module %s gets ingest_audience = %s, want var.ingest_audience", name, got)
		}
	}
}
