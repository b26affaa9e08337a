package infra_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"eventrelay/internal/infra"
)

// attrText returns the source text of attribute name of body in b.
func attrText(b *infra.Block, body *hclsyntax.Body, name string) string {
	a := body.Attributes[name]
	if a == nil {
		return ""
	}
	return strings.TrimSpace(b.Text(a.Expr.Range()))
}

// TestSourcemockMintsIngestTokens: the deployed sourcemock function has no
// static token; it mints ID tokens for the very audience ingest checks.
func TestSourcemockMintsIngestTokens(t *testing.T) {
	t.Parallel()
	cfg := loadRepo(t)
	fns := cfg.Modules["modules/sourcemock"].Find("resource", "google_cloudfunctions2_function")
	if len(fns) != 1 {
		t.Fatalf("%d functions in modules/sourcemock, want 1", len(fns))
	}
	fn := fns[0]
	var env *hclsyntax.ObjectConsExpr
	for _, b := range fn.Body.Blocks {
		if b.Type == "service_config" {
			env, _ = b.Body.Attributes["environment_variables"].Expr.(*hclsyntax.ObjectConsExpr)
		}
	}
	if env == nil {
		t.Fatal("the function has no environment_variables object")
	}
	vars := map[string]string{}
	for _, item := range env.Items {
		if k, ok := item.KeyExpr.(*hclsyntax.ObjectConsKeyExpr); ok {
			vars[hcl.ExprAsKeyword(k.Wrapped)] = strings.TrimSpace(fn.Text(item.ValueExpr.Range()))
		}
	}
	if _, ok := vars["TOKEN"]; ok {
		t.Error("the function gets a static TOKEN; it must mint ID tokens (TOKEN_AUDIENCE)")
	}
	if got := vars["TOKEN_AUDIENCE"]; got != "var.ingest_audience" {
		t.Errorf("TOKEN_AUDIENCE = %q, want var.ingest_audience", got)
	}

	// The same variable feeds ingest's AUTH_AUDIENCE.
	root := cfg.Modules["modules/eventrelay"]
	for _, call := range []string{"sourcemock", "region"} {
		calls := root.Find("module", call)
		if len(calls) != 1 {
			t.Fatalf("modules/eventrelay calls module %s %d times", call, len(calls))
		}
		if got := attrText(calls[0], calls[0].Body, "ingest_audience"); got != "var.ingest_audience" {
			t.Errorf("module %s gets ingest_audience = %q, want var.ingest_audience", call, got)
		}
	}
	region := cfg.Modules["modules/region"]
	src := string(region.Src["modules/region/main.tf"])
	if !slices.ContainsFunc(strings.Split(src, "\n"), func(l string) bool {
		f := strings.Fields(l)
		return len(f) == 3 && f[0] == "AUTH_AUDIENCE" && f[2] == "var.ingest_audience"
	}) {
		t.Error("ingest's AUTH_AUDIENCE is not var.ingest_audience")
	}
}
