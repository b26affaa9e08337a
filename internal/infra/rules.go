package infra

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// rule is one named policy check over the Terraform. Each is here because
// `terraform test` cannot say it: it is a lifecycle setting, which a plan
// does not show, or it quantifies over every module ("nothing anywhere"),
// which a test of named resources cannot.
type rule struct {
	name  string // stable; findings carry it
	doc   string // what it asserts
	check func(*config) []finding
}

// terraformRules are listed in docs/development.md ("Where each invariant
// is checked"), in the order they are reported.
var terraformRules = []rule{
	// Text rules over every module.
	{"no-public-principals", "no allUsers or allAuthenticatedUsers in any string of any module", checkNoPublicPrincipals},
	{"no-latest-tag", "no image is referred to by the latest tag", checkNoLatest},
	{"variables-typed", "every variable has a type and a description", checkVariablesTyped},
	{"providers-pinned", "every module pins Terraform and its providers to a bounded range", checkProvidersPinned},
	{"remote-state", "every environment root keeps its state in a gcs backend with its own prefix", checkRemoteState},
	{"no-authoritative-iam", "IAM is granted with *_iam_member only: an authoritative binding or policy would remove grants made elsewhere", checkNoAuthoritativeIAM},
	{"project-iam-in-one-place", "project-level grants are made only by google_project_iam_member.project in modules/eventrelay, whose roles eventrelay.tftest.hcl allow-lists", checkProjectIAMInOnePlace},
	{"resource-scoped-roles", "cloudtasks.queueAdmin is granted only on a queue and secretmanager.secretAccessor only on a secret, never through a local", checkResourceScopedRoles},
	{"cloud-run-in-service-module", "every Cloud Run service is a call of modules/service, whose tests cover its sidecar, configuration and identity", checkCloudRunInServiceModule},
	{"invoker-check-on", "no call of modules/service but targetmock's disables Cloud Run's invoker IAM check", checkInvokerCheckOn},
	{"service-account-per-service", "every Cloud Run service and function runs as its own google_service_account of this configuration", checkServiceAccounts},
	// Lifecycle settings, which no plan shows.
	{"queue-rate-ignored", "Terraform ignores later changes to a queue's rate and concurrency, which ops and the governor own (ADR 0005)", checkQueueRateIgnored},
	{"release-owned-by-pipeline", "Terraform ignores the application's image, the traffic and the function's source, which the pipeline owns, and never the collector's image", checkReleaseOwnership},
	{"prevent-destroy", "queues and the Firestore database keep lifecycle.prevent_destroy", checkPreventDestroy},
	{"moved-targets-exist", "every moved block moves to a resource that is declared (validate and a plan without state do not look)", checkMovedTargets},
}

func checkNoPublicPrincipals(c *config) []finding {
	return checkStrings(c, "no-public-principals", func(s string) string {
		for _, p := range []string{"allUsers", "allAuthenticatedUsers"} {
			if strings.Contains(s, p) {
				return p + " grants access to anyone"
			}
		}
		return ""
	})
}

func checkNoLatest(c *config) []finding {
	return checkStrings(c, "no-latest-tag", func(s string) string {
		if strings.HasSuffix(s, ":latest") && len(s) > len(":latest") {
			return "image tagged latest: " + s
		}
		return ""
	})
}

// checkStrings reports every string in every module (comments left out)
// for which bad returns a message.
func checkStrings(c *config, rule string, bad func(string) string) []finding {
	var out []finding
	for _, m := range c.sorted() {
		for _, file := range slices.Sorted(maps.Keys(m.src)) {
			for _, s := range stringLiterals(m.src[file], file) {
				if msg := bad(s.text); msg != "" {
					out = append(out, finding{rule, fmt.Sprintf("%s:%d", file, s.line), msg})
				}
			}
		}
	}
	return out
}

func checkVariablesTyped(c *config) []finding {
	var out []finding
	for _, m := range c.sorted() {
		for _, v := range m.find("variable") {
			if attrExpr(v.Body, "type") == nil {
				out = append(out, finding{"variables-typed", v.at(), v.addr() + " has no type"})
			}
			if d, ok := literal(attrExpr(v.Body, "description")); !ok || strings.TrimSpace(d) == "" {
				out = append(out, finding{"variables-typed", v.at(), v.addr() + " has no description"})
			}
		}
	}
	return out
}

var boundedVersion = regexp.MustCompile(`^(~>\s*\d+\.\d+(\.\d+)?|=?\s*\d+\.\d+\.\d+|>=\s*\d+\.\d+(\.\d+)?\s*,\s*<\s*\d+(\.\d+)*)$`)

func checkProvidersPinned(c *config) []finding {
	const rule = "providers-pinned"
	var out []finding
	for _, m := range c.sorted() {
		tf := m.find("terraform")
		if len(tf) == 0 {
			out = append(out, finding{rule, m.dir, "no terraform block (required_version, required_providers)"})
			continue
		}
		if rv, _ := literal(attrExpr(tf[0].Body, "required_version")); !boundedVersion.MatchString(strings.TrimSpace(rv)) {
			out = append(out, finding{rule, tf[0].at(), fmt.Sprintf("required_version %q is not a bounded range", rv)})
		}
		rp := dig(tf[0].Body, "required_providers")
		if rp == nil || len(rp.Attributes) == 0 {
			out = append(out, finding{rule, tf[0].at(), "no required_providers"})
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(rp.Attributes)) {
			a := rp.Attributes[name]
			if v, _ := literal(objectItem(a.Expr, "version")); !boundedVersion.MatchString(strings.TrimSpace(v)) {
				out = append(out, finding{rule, tf[0].where(a.SrcRange), fmt.Sprintf("provider %s version %q is not pinned to a bounded range", name, v)})
			}
		}
	}
	return out
}

func checkRemoteState(c *config) []finding {
	const rule = "remote-state"
	var out []finding
	prefixes := map[string]string{} // prefix -> environment
	for _, m := range c.sorted() {
		if !strings.HasPrefix(m.dir, "environments/") {
			continue
		}
		var backend *hclsyntax.Block
		for _, tf := range m.find("terraform") {
			for _, b := range tf.Body.Blocks {
				if b.Type == "backend" {
					backend = b
				}
			}
		}
		if backend == nil || len(backend.Labels) == 0 || backend.Labels[0] != "gcs" {
			out = append(out, finding{rule, m.dir, `environment root without a backend "gcs" block`})
			continue
		}
		prefix, ok := literal(attrExpr(backend.Body, "prefix"))
		if !ok || prefix == "" {
			out = append(out, finding{rule, m.dir, "gcs backend without a literal prefix"})
			continue
		}
		if other, dup := prefixes[prefix]; dup {
			out = append(out, finding{rule, m.dir, "state prefix " + prefix + " shared with " + other})
		}
		prefixes[prefix] = m.dir
	}
	if len(prefixes) == 0 && len(out) == 0 {
		out = append(out, finding{rule, "terraform", "no environments/* roots"})
	}
	return out
}

func checkNoAuthoritativeIAM(c *config) []finding {
	var out []finding
	for _, m := range c.sorted() {
		for _, b := range m.find("resource") {
			if strings.HasSuffix(b.Labels[0], "_iam_binding") || strings.HasSuffix(b.Labels[0], "_iam_policy") {
				out = append(out, finding{"no-authoritative-iam", b.at(), b.addr() + " is authoritative and would remove grants made outside it; grant each member with an _iam_member"})
			}
		}
	}
	return out
}

func checkProjectIAMInOnePlace(c *config) []finding {
	var out []finding
	for _, m := range c.sorted() {
		for _, b := range m.find("resource", "google_project_iam_member") {
			if m.dir != "modules/eventrelay" || b.Labels[1] != "project" {
				out = append(out, finding{"project-iam-in-one-place", b.at(), b.addr() + " grants on the project outside modules/eventrelay's google_project_iam_member.project, whose roles its tests allow-list"})
			}
		}
	}
	return out
}

// scopedRoles are roles granted only on one resource, with the IAM member
// resource that grants them there.
var scopedRoles = map[string]string{
	// The dispatcher's governor changes its own queue's rate (ADR 0010).
	"roles/cloudtasks.queueAdmin": "google_cloud_tasks_queue_iam_member",
	// Each collector sidecar reads its own configuration (ADR 0009).
	"roles/secretmanager.secretAccessor": "google_secret_manager_secret_iam_member",
}

func checkResourceScopedRoles(c *config) []finding {
	const rule = "resource-scoped-roles"
	var out []finding
	for _, m := range c.sorted() {
		locals := m.locals()
		for _, role := range slices.Sorted(maps.Keys(scopedRoles)) {
			for _, b := range m.find("resource") {
				if b.Labels[0] != scopedRoles[role] && strings.Contains(b.text(b.Body.Range()), role) {
					out = append(out, finding{rule, b.at(), fmt.Sprintf("%s grants %s beyond one resource (use %s)", b.addr(), role, scopedRoles[role])})
				}
			}
			for _, name := range slices.Sorted(maps.Keys(locals)) {
				l := locals[name]
				if strings.Contains(l.b.text(l.expr.Range()), role) {
					out = append(out, finding{rule, l.b.where(l.expr.Range()), fmt.Sprintf("%s in local.%s: grant it only in a %s", role, name, scopedRoles[role])})
				}
			}
		}
	}
	return out
}

func checkCloudRunInServiceModule(c *config) []finding {
	var out []finding
	for _, b := range c.resources("google_cloud_run_v2_service") {
		if !strings.HasPrefix(b.file, "modules/service/") {
			out = append(out, finding{"cloud-run-in-service-module", b.at(), b.addr() + " is not a call of modules/service: its sidecar, configuration and identity go untested"})
		}
	}
	return out
}

func checkInvokerCheckOn(c *config) []finding {
	svc := c.modules["modules/service"]
	if svc == nil {
		return nil
	}
	var out []finding
	for _, cl := range c.calls(svc) {
		expr := attrExpr(cl.b.Body, "invoker_iam_disabled")
		if v, ok := literal(expr); expr == nil || (ok && v == "false") {
			continue
		}
		if name, _ := literal(attrExpr(cl.b.Body, "name")); name != "targetmock" {
			out = append(out, finding{"invoker-check-on", cl.b.where(expr.Range()), fmt.Sprintf("%s (%s) disables Cloud Run's invoker IAM check: only targetmock, the dev test double, may", cl.b.addr(), name)})
		}
	}
	return out
}

func checkServiceAccounts(c *config) []finding {
	const rule = "service-account-per-service"
	var out []finding
	users := map[string][]string{} // account -> services running as it
	runsAs := func(m *module, b *block, account hclsyntax.Expression) {
		service := m.dir + ":" + b.addr()
		if account == nil {
			out = append(out, finding{rule, b.at(), service + " runs as the default compute service account"})
			return
		}
		for _, id := range c.origins(m, b, account) {
			if !strings.Contains(id, "google_service_account.") {
				out = append(out, finding{rule, b.at(), service + " runs as " + id + ", not an account this configuration creates"})
			}
			users[id] = append(users[id], service)
		}
	}
	if svc := c.modules["modules/service"]; svc != nil {
		for _, cl := range c.calls(svc) {
			runsAs(cl.m, cl.b, attrExpr(cl.b.Body, "service_account"))
		}
	}
	for _, m := range c.sorted() {
		for _, f := range m.find("resource", "google_cloudfunctions2_function") {
			runsAs(m, f, attrExpr(dig(f.Body, "service_config"), "service_account_email"))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(users)) {
		if len(users[id]) > 1 {
			out = append(out, finding{rule, "terraform", fmt.Sprintf("%s share the service account %s", strings.Join(users[id], ", "), id)})
		}
	}
	return out
}

// origins follows expr, written in block b of module m, up through module
// variables to the expressions that set it, each as "module-dir:source"
// (modules/eventrelay:google_service_account.runtime["ingest"].email).
func (c *config) origins(m *module, b *block, expr hclsyntax.Expression) []string {
	name := varName(expr)
	if name == "" {
		return []string{m.dir + ":" + b.text(expr.Range())}
	}
	var out []string
	for _, cl := range c.calls(m) {
		if arg := attrExpr(cl.b.Body, name); arg != nil {
			out = append(out, c.origins(cl.m, cl.b, arg)...)
		}
	}
	if len(out) == 0 {
		return []string{m.dir + ":var." + name}
	}
	return out
}

// lifecycle returns the ignore_changes paths of resource b, without
// spaces ("all" for the keyword), and whether it sets prevent_destroy.
func lifecycle(b *block) (ignored []string, preventDestroy bool) {
	lc := dig(b.Body, "lifecycle")
	compact := func(e hclsyntax.Expression) string { return strings.Join(strings.Fields(b.text(e.Range())), "") }
	switch e := attrExpr(lc, "ignore_changes").(type) {
	case nil:
	case *hclsyntax.TupleConsExpr:
		for _, p := range e.Exprs {
			ignored = append(ignored, compact(p))
		}
	default:
		ignored = append(ignored, compact(e))
	}
	v, _ := literal(attrExpr(lc, "prevent_destroy"))
	return ignored, v == "true"
}

// checkIgnored reports each resource of type typ whose ignore_changes
// lacks one of paths, and none of the type at all.
func checkIgnored(c *config, rule, typ, why string, paths ...string) []finding {
	var out []finding
	rs := c.resources(typ)
	if len(rs) == 0 {
		out = append(out, finding{rule, "terraform", "no " + typ})
	}
	for _, r := range rs {
		ignored, _ := lifecycle(r)
		for _, p := range paths {
			if !slices.Contains(ignored, p) {
				out = append(out, finding{rule, r.at(), fmt.Sprintf("%s: lifecycle.ignore_changes lacks %s (%s)", r.addr(), p, why)})
			}
		}
	}
	return out
}

func checkQueueRateIgnored(c *config) []finding {
	return checkIgnored(c, "queue-rate-ignored", "google_cloud_tasks_queue", "apply would undo the rate ops and the governor set, ADR 0005",
		"rate_limits[0].max_dispatches_per_second", "rate_limits[0].max_concurrent_dispatches")
}

// otherContainer matches ignore paths that cover a container other than
// containers[0], the application: the collector sidecar is Terraform's.
var otherContainer = regexp.MustCompile(`^(all|template|template\[0\]|template\[0\]\.containers|template\[0\]\.containers\[([1-9][0-9]*)\].*)$`)

func checkReleaseOwnership(c *config) []finding {
	const rule = "release-owned-by-pipeline"
	out := checkIgnored(c, rule, "google_cloud_run_v2_service", "the pipeline deploys it", "template[0].containers[0].image", "traffic")
	out = append(out, checkIgnored(c, rule, "google_cloudfunctions2_function", "the pipeline deploys it", "build_config[0].source")...)
	for _, r := range c.resources("google_cloud_run_v2_service") {
		ignored, _ := lifecycle(r)
		for _, p := range ignored {
			if otherContainer.MatchString(p) {
				out = append(out, finding{rule, r.at(), fmt.Sprintf("%s: lifecycle.ignore_changes %s covers the collector sidecar's image, which Terraform owns", r.addr(), p)})
			}
		}
	}
	return out
}

func checkPreventDestroy(c *config) []finding {
	const rule = "prevent-destroy"
	var out []finding
	for typ, why := range map[string]string{
		"google_cloud_tasks_queue":  "deleting a queue loses its tasks and blocks its name for days",
		"google_firestore_database": "the status records are what support answers from",
	} {
		rs := c.resources(typ)
		if len(rs) == 0 {
			out = append(out, finding{rule, "terraform", "no " + typ})
		}
		for _, r := range rs {
			if _, ok := lifecycle(r); !ok {
				out = append(out, finding{rule, r.at(), r.addr() + " lacks lifecycle.prevent_destroy: " + why})
			}
		}
	}
	slices.SortFunc(out, func(a, b finding) int { return strings.Compare(a.where, b.where) })
	return out
}

func checkMovedTargets(c *config) []finding {
	var out []finding
	for _, m := range c.sorted() {
		for _, b := range m.find("moved") {
			to := attrExpr(b.Body, "to")
			if to == nil || len(hclsyntax.Variables(to)) != 1 {
				continue // terraform validate reports it
			}
			t := hclsyntax.Variables(to)[0]
			if msg := c.declares(m, append([]string{t.RootName()}, attrNames(t)...)); msg != "" {
				out = append(out, finding{"moved-targets-exist", b.where(to.Range()), "moved to " + b.text(to.Range()) + ": " + msg})
			}
		}
	}
	return out
}

// declares explains why module m does not declare the resource at addr
// (module.a.module.b.google_x.y, split at the dots), or returns "".
func (c *config) declares(m *module, addr []string) string {
	for len(addr) >= 2 && addr[0] == "module" {
		calls := m.find("module", addr[1])
		if len(calls) == 0 {
			return fmt.Sprintf("%s calls no module %s", m.dir, addr[1])
		}
		if m = c.child(m, calls[0]); m == nil {
			return "module " + addr[1] + " is not in this tree"
		}
		addr = addr[2:]
	}
	if len(addr) != 2 || len(m.find("resource", addr[0], addr[1])) == 0 {
		return fmt.Sprintf("%s declares no %s", m.dir, strings.Join(addr, "."))
	}
	return ""
}
