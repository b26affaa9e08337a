package infra

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Rule is one named policy check over the Terraform.
type Rule struct {
	// Name is stable; findings carry it.
	Name string
	// Doc says what the rule asserts.
	Doc string
	// Check returns the violations in c.
	Check func(c *Config) []Finding
}

// TerraformRules are the policy rules of docs/deployment.md ("Policy
// checks"), in the order they are reported.
var TerraformRules = []Rule{
	{"references", "every reference resolves; module calls set exactly the child's variables", CheckReferences},
	{"no-public-principals", "no allUsers or allAuthenticatedUsers anywhere", checkNoPublicPrincipals},
	{"dispatcher-private", "the dispatcher is internal-only and invokable only by the Cloud Tasks token identity", checkDispatcherPrivate},
	{"invoker-check-on", "only targetmock (a dev test double) disables Cloud Run's invoker IAM check", checkInvokerCheckOn},
	{"ingest-warm", "ingest keeps at least one warm instance, enforced by validations down to the roots", checkIngestWarm},
	{"queue-rate-from-variables", "the queue's rate and concurrency come from the target-limit variables and are ignored after creation (ADR 0005)", checkQueueRate},
	{"variables-typed", "every variable has a type and a description", checkVariablesTyped},
	{"alerts-link-playbooks", "every alert policy notifies and its documentation links an existing docs/playbooks file", checkAlertsLinkPlaybooks},
	{"firestore-protected", "Firestore has point-in-time recovery, delete protection and survives destroy", checkFirestoreProtected},
	{"service-account-per-service", "every service and function runs as its own managed service account", checkServiceAccounts},
	{"release-owned-by-pipeline", "Terraform ignores the image, traffic and function source, which the pipeline owns", checkReleaseOwnership},
	{"apis-kept-on-destroy", "enabled APIs set disable_on_destroy = false", checkAPIs},
	{"project-iam-allowlist", "project-level grants use only roles without a narrower binding point", checkProjectIAM},
	{"providers-pinned", "every module pins Terraform and the provider to a bounded range", checkProvidersPinned},
	{"remote-state", "every environment root keeps its state in a gcs backend with its own prefix", checkRemoteState},
	{"no-latest-tag", "no image is referred to by the latest tag", checkNoLatest},
	{"queue-admin-resource-scoped", "cloudtasks.queueAdmin (the dispatcher's queue governor) is granted only on a queue, only to the dispatcher's own account", checkQueueAdminScoped},
	{"otel-collector-sidecar", "every Cloud Run service runs a pinned OpenTelemetry Collector sidecar that its application exports to and starts after, configured from a secret only its account reads (ADR 0009)", checkCollectorSidecar},
}

// CheckTerraform runs every rule of TerraformRules.
func CheckTerraform(c *Config) []Finding {
	var out []Finding
	for _, r := range TerraformRules {
		out = append(out, r.Check(c)...)
	}
	return out
}

// ProjectRoles are the only roles granted on the project, each with the
// reason no resource-level binding can replace it.
var ProjectRoles = map[string]string{
	"roles/logging.logWriter":               "logs are written to the project",
	"roles/monitoring.metricWriter":         "metrics are written to the project",
	"roles/cloudtrace.agent":                "traces are written to the project",
	"roles/telemetry.tracesWriter":          "OTLP traces are written to the project's Telemetry API",
	"roles/datastore.user":                  "Firestore grants access per project (one database, eventrelay's only)",
	"roles/datastore.viewer":                "Firestore grants access per project (the smoke test reads status)",
	"roles/artifactregistry.admin":          "terraform creates the repository",
	"roles/cloudbuild.builds.editor":        "terraform creates the triggers",
	"roles/cloudfunctions.admin":            "terraform creates the function",
	"roles/cloudscheduler.admin":            "terraform creates the scheduler job",
	"roles/cloudtasks.admin":                "terraform creates the queues",
	"roles/compute.loadBalancerAdmin":       "terraform creates the load balancer",
	"roles/datastore.owner":                 "terraform creates the database, indexes and TTL policy",
	"roles/iam.serviceAccountAdmin":         "terraform creates the service accounts",
	"roles/iam.serviceAccountUser":          "terraform deploys services that run as the runtime accounts",
	"roles/monitoring.editor":               "terraform creates the dashboard and alert policies",
	"roles/resourcemanager.projectIamAdmin": "terraform makes the grants in this list",
	"roles/run.admin":                       "terraform creates the services and their IAM bindings",
	"roles/secretmanager.admin":             "terraform creates the collector sidecars' configuration secrets and their secret-level IAM",
	"roles/serviceusage.serviceUsageAdmin":  "terraform enables the APIs",
	"roles/storage.admin":                   "terraform creates the sources bucket and reads/writes its state",
}

func resources(c *Config, typ string) []struct {
	m *Module
	b *Block
} {
	var out []struct {
		m *Module
		b *Block
	}
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		for _, b := range m.Find("resource", typ) {
			out = append(out, struct {
				m *Module
				b *Block
			}{m, b})
		}
	}
	return out
}

func checkNoPublicPrincipals(c *Config) []Finding {
	var out []Finding
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		for file, src := range m.Src {
			for _, s := range stringLiterals(src, file) {
				for _, p := range []string{"allUsers", "allAuthenticatedUsers"} {
					if strings.Contains(s.Text, p) {
						out = append(out, Finding{"no-public-principals", fmt.Sprintf("%s:%d", file, s.Line), p + " grants access to anyone"})
					}
				}
			}
		}
	}
	return out
}

func checkDispatcherPrivate(c *Config) []Finding {
	const rule = "dispatcher-private"
	var out []Finding
	found := false
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		if in.name() != "dispatcher" {
			continue
		}
		found = true
		ingress := in.values(attrExpr(in.b.Body, "ingress"))
		if len(ingress) == 0 {
			out = append(out, Finding{rule, in.where(), in.String() + " sets no ingress (default: all traffic)"})
		}
		for _, t := range ingress {
			if v, _ := literal(t.expr); v != "INGRESS_TRAFFIC_INTERNAL_ONLY" && v != "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" {
				out = append(out, Finding{rule, in.where(), fmt.Sprintf("dispatcher ingress %s lets the internet reach it", t.text())})
			}
		}
		// IAM on the dispatcher: in its own module (naming the resource)
		// and in the module that calls it (naming the module call).
		inModule, inCaller := in.refs()
		scopes := []struct {
			m   *Module
			ref string
			own bool // bindings written next to the resource, valued through the call
		}{{in.m, inModule, true}}
		if in.call != nil {
			scopes = append(scopes, struct {
				m   *Module
				ref string
				own bool
			}{in.cm, inCaller, false})
		}
		for _, sc := range scopes {
			for _, typ := range []string{"google_cloud_run_v2_service_iam_binding", "google_cloud_run_v2_service_iam_policy"} {
				for _, b := range sc.m.Find("resource", typ) {
					if refersTo(b.Text(b.Body.Range()), sc.ref) {
						out = append(out, Finding{rule, b.Where(b.DefRange()), "authoritative IAM on the dispatcher; use a single iam_member for the token identity"})
					}
				}
			}
			for _, b := range sc.m.Find("resource", "google_cloud_run_v2_service_iam_member") {
				name, memberExpr := attrExpr(b.Body, "name"), attrExpr(b.Body, "member")
				if name == nil || memberExpr == nil || !refersTo(b.Text(name.Range()), sc.ref) {
					continue
				}
				roleExpr := attrExpr(b.Body, "role")
				if roleExpr == nil {
					continue
				}
				roles, members := []string{b.Text(roleExpr.Range())}, []string{b.Text(memberExpr.Range())}
				if sc.own {
					// The binding is instantiated by this call: value it so.
					roles, members = nil, nil
					for _, t := range in.values(roleExpr) {
						roles = append(roles, t.text())
					}
					for _, t := range in.values(memberExpr) {
						members = append(members, t.text())
					}
				}
				for _, role := range roles {
					if !strings.Contains(role, "roles/run.invoker") {
						continue
					}
					for _, member := range members {
						if !strings.Contains(member, "tasks_invoker") {
							out = append(out, Finding{rule, b.Where(b.DefRange()), "run.invoker on the dispatcher for " + member + ", not the Cloud Tasks token identity"})
						}
					}
				}
			}
		}
	}
	if !found {
		out = append(out, Finding{rule, "terraform", "no google_cloud_run_v2_service \"dispatcher\""})
	}
	return out
}

// refersTo reports whether text refers to ref (google_x.name or module.x)
// as a whole reference, not a longer name that starts with it.
func refersTo(text, ref string) bool {
	return regexp.MustCompile(regexp.QuoteMeta(ref) + `([.\[\s,)\]]|$)`).MatchString(text)
}

func checkInvokerCheckOn(c *Config) []Finding {
	var out []Finding
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		for _, t := range in.values(attrExpr(in.b.Body, "invoker_iam_disabled")) {
			// A value that is not the literal false may disable it.
			if v, ok := literalBool(t.expr); (!ok || v) && in.name() != "targetmock" {
				out = append(out, Finding{"invoker-check-on", in.where(), fmt.Sprintf("%s disables the invoker IAM check (invoker_iam_disabled = %s)", in, t.text())})
			}
		}
	}
	return out
}

var minInstancesRe = regexp.MustCompile(`min_instances\s*>=\s*1\b`)

func checkIngestWarm(c *Config) []Finding {
	const rule = "ingest-warm"
	var out []Finding
	found := false
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		if in.name() != "ingest" {
			continue
		}
		found = true
		expr := attrExpr(dig(in.b.Body, "template", "scaling"), "min_instance_count")
		if expr == nil {
			out = append(out, Finding{rule, in.where(), "ingest sets no min_instance_count (default 0: cold starts)"})
			continue
		}
		if in.call == nil {
			out = append(out, warmChain(c, in.m, in.b, expr, nil)...)
			continue
		}
		// A reusable module serves services that may scale to zero: follow
		// the value ingest's own call passes, from that call up.
		for _, t := range in.values(expr) {
			if t.expr == nil {
				out = append(out, Finding{rule, in.where(), "ingest min instances: " + t.missing})
				continue
			}
			out = append(out, warmChain(c, t.m, t.at, t.expr, t.path)...)
		}
	}
	if !found {
		out = append(out, Finding{rule, "terraform", "no google_cloud_run_v2_service \"ingest\""})
	}
	return out
}

// warmChain follows a min-instances expression up through variables and
// module calls: a literal must be >= 1, a variable must validate >= 1, and
// so must every value its callers pass. path is the attribute path still
// to apply to expr (min_instances of an object passed whole).
func warmChain(c *Config, m *Module, at *Block, expr hclsyntax.Expression, path []string) []Finding {
	const rule = "ingest-warm"
	if obj, ok := expr.(*hclsyntax.ObjectConsExpr); ok && len(path) > 0 {
		item := objectItem(obj, path[0])
		if item == nil {
			return []Finding{{rule, at.Where(expr.Range()), "object passed for ingest scaling has no " + path[0]}}
		}
		return warmChain(c, m, at, item, path[1:])
	}
	if n, ok := literalNumber(expr); ok && len(path) == 0 {
		if n < 1 {
			return []Finding{{rule, at.Where(expr.Range()), fmt.Sprintf("ingest min instances %v < 1", n)}}
		}
		return nil
	}
	vars := hclsyntax.Variables(expr)
	if len(vars) != 1 || vars[0].RootName() != "var" {
		return []Finding{{rule, at.Where(expr.Range()), "ingest min instances is neither a literal nor a variable: " + at.Text(expr.Range())}}
	}
	names := append(attrNames(vars[0]), path...)
	v := m.Find("variable", names[0])
	if len(v) == 0 {
		return nil // reported by references
	}
	var out []Finding
	validated := false
	for _, val := range nested(v[0].Body, "validation") {
		cond := v[0].Text(attr(val.Body, "condition").Expr.Range())
		if minInstancesRe.MatchString(cond) || (len(names) == 1 && regexp.MustCompile(`var\.`+names[0]+`\s*>=\s*1\b`).MatchString(cond)) {
			validated = true
		}
	}
	if !validated {
		out = append(out, Finding{rule, v[0].Where(v[0].DefRange()), fmt.Sprintf("%s: variable %s has no validation requiring min instances >= 1", m.Dir, names[0])})
	}
	for _, call := range callers(c, m) {
		if arg := attrExpr(call.b.Body, names[0]); arg != nil {
			out = append(out, warmChain(c, call.m, call.b, arg, names[1:])...)
		}
	}
	return out
}

// callers returns the module calls, anywhere in c, whose source is m.
func callers(c *Config, m *Module) []struct {
	m *Module
	b *Block
} {
	var out []struct {
		m *Module
		b *Block
	}
	for _, dir := range c.ModuleDirs() {
		p := c.Modules[dir]
		for _, call := range p.Find("module") {
			if c.child(p, call) == m {
				out = append(out, struct {
					m *Module
					b *Block
				}{p, call})
			}
		}
	}
	return out
}

func checkQueueRate(c *Config) []Finding {
	const rule = "queue-rate-from-variables"
	var out []Finding
	queues := resources(c, "google_cloud_tasks_queue")
	if len(queues) == 0 {
		return []Finding{{rule, "terraform", "no google_cloud_tasks_queue"}}
	}
	targetVar := map[string]string{
		"max_dispatches_per_second": "target_rate_limit_per_second",
		"max_concurrent_dispatches": "target_max_concurrency",
	}
	for _, q := range queues {
		rl := dig(q.b.Body, "rate_limits")
		ignore := ""
		if lc := dig(q.b.Body, "lifecycle"); lc != nil && attr(lc, "ignore_changes") != nil {
			ignore = q.b.Text(attr(lc, "ignore_changes").Expr.Range())
		}
		for _, field := range []string{"max_dispatches_per_second", "max_concurrent_dispatches"} {
			expr := attrExpr(rl, field)
			if expr == nil {
				out = append(out, Finding{rule, q.b.Where(q.b.DefRange()), q.b.Addr() + " does not set rate_limits." + field})
				continue
			}
			vars := hclsyntax.Variables(expr)
			if len(vars) != 1 || vars[0].RootName() != "var" {
				out = append(out, Finding{rule, q.b.Where(expr.Range()), field + " must come from a variable, not " + q.b.Text(expr.Range())})
				continue
			}
			if !strings.Contains(ignore, "rate_limits[0]."+field) {
				out = append(out, Finding{rule, q.b.Where(q.b.DefRange()), "lifecycle.ignore_changes lacks rate_limits[0]." + field + ": apply would undo the rate ops set (ADR 0005)"})
			}
			// The callers must feed it from the variable named after the
			// target's limit.
			names := attrNames(vars[0])
			for _, call := range callers(c, q.m) {
				arg := attrExpr(call.b.Body, names[0])
				if len(names) > 1 {
					arg = objectItem(arg, names[1])
				}
				if arg == nil || !reaches(call.m, arg, targetVar[field]) {
					out = append(out, Finding{rule, call.b.Where(call.b.DefRange()), fmt.Sprintf("%s of module %s does not come from var.%s", field, call.b.Labels[0], targetVar[field])})
				}
			}
		}
		if dig(q.b.Body, "retry_config") == nil || attr(dig(q.b.Body, "retry_config"), "max_attempts") == nil {
			out = append(out, Finding{rule, q.b.Where(q.b.DefRange()), q.b.Addr() + " needs an explicit retry_config with max_attempts (the dispatcher's dead-letter rule)"})
		}
		if dig(q.b.Body, "stackdriver_logging_config") == nil {
			out = append(out, Finding{rule, q.b.Where(q.b.DefRange()), q.b.Addr() + " sets no stackdriver_logging_config (task operations unlogged)"})
		}
	}
	return out
}

// QueueAdminRole lets the dispatcher's governor change its queue's rate and
// pause and resume it (ADR 0010).
const QueueAdminRole = "roles/cloudtasks.queueAdmin"

func checkQueueAdminScoped(c *Config) []Finding {
	const rule = "queue-admin-resource-scoped"
	var out []Finding
	// Where the dispatcher is instantiated, and the account it runs as there.
	type site struct {
		m       *Module
		account string // source text of its service account, in m
	}
	var sites []site
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		if in.name() != "dispatcher" {
			continue
		}
		m, at, expr := in.m, in.b, attrExpr(dig(in.b.Body, "template"), "service_account")
		if in.call != nil && expr != nil {
			for _, t := range in.values(expr) {
				if t.expr != nil {
					m, at, expr = t.m, t.at, t.expr
				}
			}
		}
		if expr != nil {
			sites = append(sites, site{m, at.Text(expr.Range())})
		}
	}
	granted := false
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		for _, l := range m.Locals() {
			if strings.Contains(l.block.Text(l.attr.Expr.Range()), QueueAdminRole) {
				out = append(out, Finding{rule, l.block.Where(l.attr.Expr.Range()), QueueAdminRole + " in a local: grant it only in a google_cloud_tasks_queue_iam_member"})
			}
		}
		for _, b := range m.Find("resource") {
			if !strings.Contains(b.Text(b.Body.Range()), QueueAdminRole) {
				continue
			}
			if b.Labels[0] != "google_cloud_tasks_queue_iam_member" {
				out = append(out, Finding{rule, b.Where(b.DefRange()), fmt.Sprintf("%s grants %s beyond one queue (use google_cloud_tasks_queue_iam_member)", b.Addr(), QueueAdminRole)})
				continue
			}
			name, member := attrExpr(b.Body, "name"), attrExpr(b.Body, "member")
			if name == nil || !strings.Contains(b.Text(name.Range()), "google_cloud_tasks_queue.") {
				out = append(out, Finding{rule, b.Where(b.DefRange()), b.Addr() + " does not name a queue of this configuration"})
			}
			ok := false
			for _, s := range sites {
				if s.m == m && member != nil && strings.Contains(b.Text(member.Range()), s.account) {
					ok = true
				}
			}
			if !ok {
				out = append(out, Finding{rule, b.Where(b.DefRange()), fmt.Sprintf("%s grants %s to someone other than the dispatcher's account (in the module that deploys the dispatcher)", b.Addr(), QueueAdminRole)})
				continue
			}
			granted = true
		}
	}
	if len(sites) > 0 && !granted {
		out = append(out, Finding{rule, "terraform", "the dispatcher cannot govern its queue: no google_cloud_tasks_queue_iam_member grants it " + QueueAdminRole})
	}
	return out
}

func checkVariablesTyped(c *Config) []Finding {
	var out []Finding
	for _, dir := range c.ModuleDirs() {
		for _, v := range c.Modules[dir].Find("variable") {
			if attr(v.Body, "type") == nil {
				out = append(out, Finding{"variables-typed", v.Where(v.DefRange()), v.Addr() + " has no type"})
			}
			if d, ok := literal(attrExpr(v.Body, "description")); !ok || strings.TrimSpace(d) == "" {
				out = append(out, Finding{"variables-typed", v.Where(v.DefRange()), v.Addr() + " has no description"})
			}
		}
	}
	return out
}

var playbookRef = regexp.MustCompile(`local\.playbook\["([a-z0-9-]+)"\]`)

func checkAlertsLinkPlaybooks(c *Config) []Finding {
	const rule = "alerts-link-playbooks"
	var out []Finding
	alerts := resources(c, "google_monitoring_alert_policy")
	if len(alerts) == 0 {
		return []Finding{{rule, "terraform", "no alert policies"}}
	}
	for _, a := range alerts {
		if attr(a.b.Body, "notification_channels") == nil {
			out = append(out, Finding{rule, a.b.Where(a.b.DefRange()), a.b.Addr() + " notifies nobody"})
		}
		content := attrExpr(dig(a.b.Body, "documentation"), "content")
		if content == nil {
			out = append(out, Finding{rule, a.b.Where(a.b.DefRange()), a.b.Addr() + " has no documentation content"})
			continue
		}
		refs := playbookRef.FindAllStringSubmatch(a.b.Text(content.Range()), -1)
		if len(refs) == 0 {
			out = append(out, Finding{rule, a.b.Where(content.Range()), a.b.Addr() + ` documentation links no playbook (local.playbook["<alert>"])`})
		}
		for _, ref := range refs {
			if !c.Playbooks[ref[1]+".md"] {
				out = append(out, Finding{rule, a.b.Where(content.Range()), fmt.Sprintf("%s links docs/playbooks/%s.md, which does not exist", a.b.Addr(), ref[1])})
			}
		}
		pb, ok := a.m.Locals()["playbook"]
		if !ok || !reaches(a.m, pb.attr.Expr, "playbook_base_url") {
			out = append(out, Finding{rule, a.b.Where(a.b.DefRange()), a.m.Dir + ": local.playbook must be built from var.playbook_base_url"})
		} else if !strings.Contains(pb.block.Text(pb.attr.Expr.Range()), ".md") {
			out = append(out, Finding{rule, pb.block.Where(pb.attr.Expr.Range()), "local.playbook must link <base>/<alert>.md"})
		}
	}
	return out
}

func checkFirestoreProtected(c *Config) []Finding {
	const rule = "firestore-protected"
	var out []Finding
	dbs := resources(c, "google_firestore_database")
	if len(dbs) == 0 {
		return []Finding{{rule, "terraform", "no google_firestore_database"}}
	}
	want := map[string]string{
		"point_in_time_recovery_enablement": "POINT_IN_TIME_RECOVERY_ENABLED",
		"delete_protection_state":           "DELETE_PROTECTION_ENABLED",
		"deletion_policy":                   "ABANDON",
		"type":                              "FIRESTORE_NATIVE",
	}
	for _, db := range dbs {
		for _, k := range sortedKeys(want) {
			if got, _ := literal(attrExpr(db.b.Body, k)); got != want[k] {
				out = append(out, Finding{rule, db.b.Where(db.b.DefRange()), fmt.Sprintf("%s %s = %q, want %q", db.b.Addr(), k, got, want[k])})
			}
		}
		if v, _ := literalBool(attrExpr(dig(db.b.Body, "lifecycle"), "prevent_destroy")); !v {
			out = append(out, Finding{rule, db.b.Where(db.b.DefRange()), db.b.Addr() + " lacks lifecycle.prevent_destroy"})
		}
	}
	return out
}

func checkServiceAccounts(c *Config) []Finding {
	const rule = "service-account-per-service"
	var out []Finding
	identity := map[string][]string{} // resolved identity -> services
	add := func(in instance, expr hclsyntax.Expression) {
		name := in.String()
		if expr == nil {
			out = append(out, Finding{rule, in.where(), name + " runs as the default compute service account"})
			return
		}
		var ids []string
		if in.call == nil {
			ids = resolveIdentity(c, in.m, in.b, expr)
		} else {
			// This call's account, then up through the modules above it.
			for _, t := range in.values(expr) {
				if t.expr == nil {
					ids = append(ids, in.cm.Dir+":"+t.missing)
					continue
				}
				ids = append(ids, resolveIdentity(c, t.m, t.at, t.expr)...)
			}
		}
		for _, id := range ids {
			if !strings.Contains(id, "google_service_account.") {
				out = append(out, Finding{rule, in.where(), name + " runs as " + id + ", not an account this configuration owns"})
			}
			identity[id] = append(identity[id], name)
		}
	}
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		add(in, attrExpr(dig(in.b.Body, "template"), "service_account"))
	}
	for _, r := range resources(c, "google_cloudfunctions2_function") {
		add(instance{m: r.m, b: r.b}, attrExpr(dig(r.b.Body, "service_config"), "service_account_email"))
	}
	for _, id := range sortedKeys(identity) {
		if len(identity[id]) > 1 {
			out = append(out, Finding{rule, "terraform", fmt.Sprintf("%s share the service account %s", strings.Join(identity[id], ", "), id)})
		}
	}
	return out
}

// resolveIdentity follows var.X up through module calls to the
// expressions that set it.
func resolveIdentity(c *Config, m *Module, at *Block, expr hclsyntax.Expression) []string {
	vars := hclsyntax.Variables(expr)
	if len(vars) != 1 || vars[0].RootName() != "var" || len(attrNames(vars[0])) != 1 {
		return []string{m.Dir + ":" + at.Text(expr.Range())}
	}
	name := attrNames(vars[0])[0]
	var out []string
	for _, call := range callers(c, m) {
		if arg := attrExpr(call.b.Body, name); arg != nil {
			out = append(out, resolveIdentity(c, call.m, call.b, arg)...)
		}
	}
	if len(out) == 0 {
		return []string{m.Dir + ":var." + name}
	}
	return out
}

func checkReleaseOwnership(c *Config) []Finding {
	const rule = "release-owned-by-pipeline"
	var out []Finding
	want := map[string][]string{
		"google_cloud_run_v2_service":     {"template[0].containers[0].image", "traffic"},
		"google_cloudfunctions2_function": {"build_config[0].source"},
	}
	for _, typ := range sortedKeys(want) {
		for _, r := range resources(c, typ) {
			ignore := ""
			if lc := dig(r.b.Body, "lifecycle"); lc != nil && attr(lc, "ignore_changes") != nil {
				ignore = r.b.Text(attr(lc, "ignore_changes").Expr.Range())
			}
			for _, w := range want[typ] {
				if !regexp.MustCompile(`(^|[\s\[,])` + regexp.QuoteMeta(w) + `\s*(,|\]|$)`).MatchString(ignore) {
					out = append(out, Finding{rule, r.b.Where(r.b.DefRange()), fmt.Sprintf("%s: lifecycle.ignore_changes lacks %s (the pipeline owns it)", r.b.Addr(), w)})
				}
			}
		}
	}
	return out
}

func checkAPIs(c *Config) []Finding {
	var out []Finding
	for _, r := range resources(c, "google_project_service") {
		if v, ok := literalBool(attrExpr(r.b.Body, "disable_on_destroy")); !ok || v {
			out = append(out, Finding{"apis-kept-on-destroy", r.b.Where(r.b.DefRange()), r.b.Addr() + " must set disable_on_destroy = false"})
		}
	}
	return out
}

var roleLiteral = regexp.MustCompile(`"(roles/[A-Za-z0-9_.]+)"`)

func checkProjectIAM(c *Config) []Finding {
	const rule = "project-iam-allowlist"
	var out []Finding
	for _, typ := range []string{"google_project_iam_binding", "google_project_iam_policy"} {
		for _, r := range resources(c, typ) {
			out = append(out, Finding{rule, r.b.Where(r.b.DefRange()), typ + " is authoritative and would remove grants made outside Terraform"})
		}
	}
	for _, r := range resources(c, "google_project_iam_member") {
		var roles []string
		locals := r.m.Locals()
		seen := map[string]bool{}
		var collect func(text string, e hclsyntax.Expression)
		collect = func(text string, e hclsyntax.Expression) {
			for _, m := range roleLiteral.FindAllStringSubmatch(text, -1) {
				roles = append(roles, m[1])
			}
			for _, t := range hclsyntax.Variables(e) {
				if t.RootName() != "local" || len(attrNames(t)) == 0 || seen[attrNames(t)[0]] {
					continue
				}
				seen[attrNames(t)[0]] = true
				if l, ok := locals[attrNames(t)[0]]; ok {
					collect(l.block.Text(l.attr.Expr.Range()), l.attr.Expr)
				}
			}
		}
		for _, a := range []string{"role", "for_each"} {
			if e := attrExpr(r.b.Body, a); e != nil {
				collect(r.b.Text(e.Range()), e)
			}
		}
		if len(roles) == 0 {
			out = append(out, Finding{rule, r.b.Where(r.b.DefRange()), r.b.Addr() + ": cannot tell which roles it grants"})
		}
		for _, role := range roles {
			if _, ok := ProjectRoles[role]; !ok {
				out = append(out, Finding{rule, r.b.Where(r.b.DefRange()), fmt.Sprintf("%s grants %s on the project; grant it on the resource instead", r.b.Addr(), role)})
			}
		}
	}
	return out
}

var boundedVersion = regexp.MustCompile(`^(~>\s*\d+\.\d+(\.\d+)?|=?\s*\d+\.\d+\.\d+|>=\s*\d+\.\d+(\.\d+)?\s*,\s*<\s*\d+(\.\d+)*)$`)

func checkProvidersPinned(c *Config) []Finding {
	const rule = "providers-pinned"
	var out []Finding
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		tf := m.Find("terraform")
		if len(tf) == 0 {
			out = append(out, Finding{rule, dir, "no terraform block (required_version, required_providers)"})
			continue
		}
		rv, _ := literal(attrExpr(tf[0].Body, "required_version"))
		if !boundedVersion.MatchString(strings.TrimSpace(rv)) {
			out = append(out, Finding{rule, tf[0].Where(tf[0].DefRange()), fmt.Sprintf("required_version %q is not a bounded range", rv)})
		}
		rp := dig(tf[0].Body, "required_providers")
		if rp == nil || len(rp.Attributes) == 0 {
			out = append(out, Finding{rule, tf[0].Where(tf[0].DefRange()), "no required_providers"})
			continue
		}
		for name, a := range rp.Attributes {
			v, _ := literal(objectItem(a.Expr, "version"))
			if !boundedVersion.MatchString(strings.TrimSpace(v)) {
				out = append(out, Finding{rule, tf[0].Where(a.SrcRange), fmt.Sprintf("provider %s version %q is not pinned to a bounded range", name, v)})
			}
		}
	}
	return out
}

func checkRemoteState(c *Config) []Finding {
	const rule = "remote-state"
	var out []Finding
	prefixes := map[string]string{}
	for _, dir := range c.ModuleDirs() {
		if !strings.HasPrefix(dir, "environments/") {
			continue
		}
		m := c.Modules[dir]
		var backend *hclsyntax.Block
		for _, tf := range m.Find("terraform") {
			for _, b := range nested(tf.Body, "backend") {
				backend = b
			}
		}
		if backend == nil || len(backend.Labels) == 0 || backend.Labels[0] != "gcs" {
			out = append(out, Finding{rule, dir, "environment root without a backend \"gcs\" block"})
			continue
		}
		prefix, ok := literal(attrExpr(backend.Body, "prefix"))
		if !ok || prefix == "" {
			out = append(out, Finding{rule, dir, "gcs backend without a literal prefix"})
			continue
		}
		if other, dup := prefixes[prefix]; dup {
			out = append(out, Finding{rule, dir, "state prefix " + prefix + " shared with " + other})
		}
		prefixes[prefix] = dir
	}
	if len(prefixes) == 0 && len(out) == 0 {
		out = append(out, Finding{rule, "terraform", "no environments/* roots"})
	}
	return out
}

func checkNoLatest(c *Config) []Finding {
	var out []Finding
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		for file, src := range m.Src {
			for _, s := range stringLiterals(src, file) {
				if strings.HasSuffix(s.Text, ":latest") && len(s.Text) > len(":latest") {
					out = append(out, Finding{"no-latest-tag", fmt.Sprintf("%s:%d", file, s.Line), "image tagged latest: " + s.Text})
				}
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
