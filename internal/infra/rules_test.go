package infra

import (
	"strings"
	"testing"
	"testing/fstest"
)

// fixture builds a config from inline .tf files (paths under terraform/).
func fixture(t testing.TB, files map[string]string) *config {
	t.Helper()
	fsys := fstest.MapFS{}
	for p, src := range files {
		fsys["terraform/"+p] = &fstest.MapFile{Data: []byte(src)}
	}
	c, err := loadTerraform(fsys, "terraform")
	if err != nil {
		t.Fatalf("loadTerraform: %v", err)
	}
	return c
}

func ruleNamed(t testing.TB, name string) rule {
	t.Helper()
	for _, r := range terraformRules {
		if r.name == name {
			return r
		}
	}
	t.Fatalf("no rule %q", name)
	return rule{}
}

// assertFindings: none when wantMsg is "", else one of rule's containing it.
func assertFindings(t testing.TB, findings []finding, rule, wantMsg string) {
	t.Helper()
	if wantMsg == "" {
		for _, f := range findings {
			t.Errorf("unexpected finding: %v", f)
		}
		return
	}
	for _, f := range findings {
		if f.rule != rule {
			t.Errorf("finding from rule %q, want %q: %v", f.rule, rule, f)
		}
		if strings.Contains(f.msg, wantMsg) {
			return
		}
	}
	t.Errorf("no finding containing %q; got %v", wantMsg, findings)
}

const goodVersions = `terraform {
  required_version = ">= 1.11.0, < 2.0.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.30"
    }
  }
}
`

const envRoot = `terraform {
  required_version = ">= 1.11.0, < 2.0.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.30"
    }
  }
  backend "gcs" {
    prefix = "eventrelay/dev"
  }
}
`

// serviceModule is modules/service reduced to what the rules read.
const serviceModule = `
variable "name" {
  type        = string
  description = "n"
}
variable "service_account" {
  type        = string
  description = "sa"
}
variable "invoker_iam_disabled" {
  type        = bool
  description = "d"
  default     = false
}
resource "google_cloud_run_v2_service" "this" {
  name                 = var.name
  invoker_iam_disabled = var.invoker_iam_disabled
  template {
    service_account = var.service_account
    containers {
      image = "app"
    }
    containers {
      image = "otelcol-google:0.143.0"
    }
  }
  lifecycle {
    ignore_changes = [template[0].containers[0].image, client, traffic]
  }
}
`

// regionModule calls modules/service twice with accounts from its caller,
// rootModule.
const regionModule = `
variable "ingest_service_account" {
  type        = string
  description = "i"
}
variable "dispatcher_service_account" {
  type        = string
  description = "d"
}
module "ingest" {
  source          = "../service"
  name            = "ingest"
  service_account = var.ingest_service_account
}
module "dispatcher" {
  source          = "../service"
  name            = "dispatcher"
  service_account = var.dispatcher_service_account
}
`

const rootModule = `
resource "google_service_account" "runtime" {
  for_each   = toset(["ingest", "dispatcher", "targetmock"])
  account_id = each.key
}
module "region" {
  source                     = "../region"
  ingest_service_account     = google_service_account.runtime["ingest"].email
  dispatcher_service_account = google_service_account.runtime["dispatcher"].email
}
module "targetmock" {
  source               = "../service"
  count                = 1
  name                 = "targetmock"
  service_account      = google_service_account.runtime["targetmock"].email
  invoker_iam_disabled = true
}
moved {
  from = google_cloud_run_v2_service.targetmock[0]
  to   = module.targetmock[0].google_cloud_run_v2_service.this
}
`

const queue = `
resource "google_cloud_tasks_queue" "events" {
  name = "events"
  rate_limits {
    max_dispatches_per_second = var.rate
    max_concurrent_dispatches = var.concurrency
  }
  lifecycle {
    ignore_changes = [
      rate_limits[0].max_dispatches_per_second,
      rate_limits[0].max_concurrent_dispatches,
    ]
    prevent_destroy = true
  }
}
`

const firestore = `
resource "google_firestore_database" "status" {
  name = "(default)"
  lifecycle {
    prevent_destroy = true
  }
}
`

const function = `
resource "google_cloudfunctions2_function" "sourcemock" {
  service_config {
    service_account_email = google_service_account.sourcemock.email
  }
  lifecycle {
    ignore_changes = [build_config[0].source]
  }
}
resource "google_service_account" "sourcemock" {
  account_id = "sourcemock"
}
`

const scopedGrants = `
resource "google_cloud_tasks_queue_iam_member" "governor" {
  name   = google_cloud_tasks_queue.events.name
  role   = "roles/cloudtasks.queueAdmin"
  member = "serviceAccount:d@p.iam.gserviceaccount.com"
}
resource "google_secret_manager_secret_iam_member" "config" {
  secret_id = google_secret_manager_secret.config.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:d@p.iam.gserviceaccount.com"
}
`

// system is a small whole configuration every rule passes; cases break
// one thing in it.
var system = map[string]string{
	"modules/service/main.tf":    serviceModule,
	"modules/region/main.tf":     regionModule + queue + scopedGrants,
	"modules/eventrelay/main.tf": rootModule + function,
	"modules/firestore/main.tf":  firestore,
}

// TestRules shows each rule passing a conforming configuration and
// catching the violation it exists for.
func TestRules(t *testing.T) {
	t.Parallel()
	// with returns system with old replaced by new in file, or file added
	// when old is "".
	with := func(file, old, new string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for k, v := range system {
			out[k] = v
		}
		if old == "" {
			out[file] += new
			return out
		}
		if !strings.Contains(out[file], old) {
			t.Fatalf("fixture %s has no %q", file, old)
		}
		out[file] = strings.Replace(out[file], old, new, 1)
		return out
	}
	const (
		svc    = "modules/service/main.tf"
		region = "modules/region/main.tf"
		root   = "modules/eventrelay/main.tf"
	)
	cases := []struct {
		name    string
		rule    string
		files   map[string]string
		wantMsg string // "" means no finding
	}{
		{name: "public principal in a comment", rule: "no-public-principals",
			files: with(root, "", "# never allUsers\n")},
		{name: "allUsers binding", rule: "no-public-principals",
			files:   with(root, "", "resource \"google_cloud_run_v2_service_iam_member\" \"pub\" {\n  member = \"allUsers\"\n}\n"),
			wantMsg: "allUsers grants access to anyone"},
		{name: "allAuthenticatedUsers in a heredoc", rule: "no-public-principals",
			files:   with(root, "", "locals {\n  x = <<-EOT\n    allAuthenticatedUsers\n  EOT\n}\n"),
			wantMsg: "allAuthenticatedUsers"},

		{name: "latest in a validation", rule: "no-latest-tag",
			files: with(root, "", "variable \"i\" {\n  type        = string\n  description = \"i\"\n  validation {\n    condition     = !endswith(var.i, \":latest\")\n    error_message = \"no\"\n  }\n}\n")},
		{name: "latest image", rule: "no-latest-tag",
			files: with(svc, `"otelcol-google:0.143.0"`, `"otelcol-google:latest"`), wantMsg: "image tagged latest"},

		{name: "variables typed", rule: "variables-typed", files: system},
		{name: "variable without type", rule: "variables-typed",
			files: with(svc, "  type        = bool\n", ""), wantMsg: "var.invoker_iam_disabled has no type"},
		{name: "variable without description", rule: "variables-typed",
			files: with(region, "  description = \"i\"\n", ""), wantMsg: "var.ingest_service_account has no description"},

		{name: "providers pinned", rule: "providers-pinned", files: map[string]string{"m/versions.tf": goodVersions}},
		{name: "provider unbounded", rule: "providers-pinned",
			files: map[string]string{"m/versions.tf": strings.Replace(goodVersions, "~> 7.30", ">= 6.0", 1)}, wantMsg: "not pinned"},
		{name: "no terraform block", rule: "providers-pinned", files: map[string]string{"m/main.tf": firestore}, wantMsg: "no terraform block"},

		{name: "remote state", rule: "remote-state", files: map[string]string{"environments/dev/versions.tf": envRoot}},
		{name: "local state", rule: "remote-state", files: map[string]string{"environments/dev/versions.tf": goodVersions}, wantMsg: "without a backend"},
		{name: "shared state prefix", rule: "remote-state",
			files: map[string]string{"environments/dev/versions.tf": envRoot, "environments/prod/versions.tf": envRoot}, wantMsg: "shared with"},

		{name: "members only", rule: "no-authoritative-iam", files: system},
		{name: "authoritative project binding", rule: "no-authoritative-iam",
			files:   with(root, "", "resource \"google_project_iam_binding\" \"p\" {\n  role = \"roles/logging.logWriter\"\n}\n"),
			wantMsg: "google_project_iam_binding.p is authoritative"},
		{name: "authoritative policy on a service", rule: "no-authoritative-iam",
			files:   with(region, "", "resource \"google_cloud_run_v2_service_iam_policy\" \"d\" {\n  name = module.dispatcher.name\n}\n"),
			wantMsg: "google_cloud_run_v2_service_iam_policy.d is authoritative"},

		{name: "project grants in eventrelay", rule: "project-iam-in-one-place",
			files: with(root, "", "resource \"google_project_iam_member\" \"project\" {\n  role = \"roles/logging.logWriter\"\n}\n")},
		{name: "project grant in another module", rule: "project-iam-in-one-place",
			files:   with(region, "", "resource \"google_project_iam_member\" \"project\" {\n  role = \"roles/cloudtasks.enqueuer\"\n}\n"),
			wantMsg: "outside modules/eventrelay"},
		{name: "second project grant resource", rule: "project-iam-in-one-place",
			files:   with(root, "", "resource \"google_project_iam_member\" \"extra\" {\n  role = \"roles/cloudtasks.enqueuer\"\n}\n"),
			wantMsg: "google_project_iam_member.extra grants on the project"},

		{name: "roles on their resources", rule: "resource-scoped-roles", files: system},
		{name: "queue admin on the project", rule: "resource-scoped-roles",
			files:   with(root, "", "resource \"google_project_iam_member\" \"project\" {\n  role = \"roles/cloudtasks.queueAdmin\"\n}\n"),
			wantMsg: "grants roles/cloudtasks.queueAdmin beyond one resource"},
		{name: "secret accessor on the project", rule: "resource-scoped-roles",
			files:   with(root, "", "resource \"google_project_iam_member\" \"project\" {\n  role = \"roles/secretmanager.secretAccessor\"\n}\n"),
			wantMsg: "grants roles/secretmanager.secretAccessor beyond one resource"},
		{name: "queue admin through a local", rule: "resource-scoped-roles",
			files:   with(root, "", "locals {\n  roles = [\"roles/cloudtasks.queueAdmin\"]\n}\n"),
			wantMsg: "in local.roles"},

		{name: "services from the service module", rule: "cloud-run-in-service-module", files: system},
		{name: "service written out", rule: "cloud-run-in-service-module",
			files:   with(root, "", "resource \"google_cloud_run_v2_service\" \"extra\" {\n  name = \"extra\"\n}\n"),
			wantMsg: "google_cloud_run_v2_service.extra is not a call of modules/service"},

		{name: "only targetmock disables the invoker check", rule: "invoker-check-on", files: system},
		{name: "invoker check off on ingest", rule: "invoker-check-on",
			files:   with(region, "  name            = \"ingest\"\n", "  name            = \"ingest\"\n  invoker_iam_disabled = true\n"),
			wantMsg: "module.ingest (ingest) disables"},
		{name: "invoker check off by a variable", rule: "invoker-check-on",
			files:   with(region, "  name            = \"dispatcher\"\n", "  name            = \"dispatcher\"\n  invoker_iam_disabled = var.open\n"),
			wantMsg: "module.dispatcher (dispatcher) disables"},
		{name: "invoker check explicitly on", rule: "invoker-check-on",
			files: with(region, "  name            = \"dispatcher\"\n", "  name            = \"dispatcher\"\n  invoker_iam_disabled = false\n")},

		{name: "own accounts", rule: "service-account-per-service", files: system},
		{name: "accounts shared through the region", rule: "service-account-per-service",
			files:   with(root, `dispatcher_service_account = google_service_account.runtime["dispatcher"].email`, `dispatcher_service_account = google_service_account.runtime["ingest"].email`),
			wantMsg: "share the service account"},
		{name: "account from outside", rule: "service-account-per-service",
			files:   with(root, `service_account      = google_service_account.runtime["targetmock"].email`, `service_account      = "x@p.iam.gserviceaccount.com"`),
			wantMsg: "not an account this configuration creates"},
		{name: "function on the default account", rule: "service-account-per-service",
			files:   with(root, "    service_account_email = google_service_account.sourcemock.email\n", ""),
			wantMsg: "default compute service account"},

		{name: "queue rate ignored", rule: "queue-rate-ignored", files: system},
		{name: "queue rate applied", rule: "queue-rate-ignored",
			files: with(region, "      rate_limits[0].max_dispatches_per_second,\n", ""), wantMsg: "lacks rate_limits[0].max_dispatches_per_second"},
		{name: "no queue", rule: "queue-rate-ignored",
			files: with(region, queue, ""), wantMsg: "no google_cloud_tasks_queue"},

		{name: "release owned by the pipeline", rule: "release-owned-by-pipeline", files: system},
		{name: "image managed by terraform", rule: "release-owned-by-pipeline",
			files: with(svc, "template[0].containers[0].image, ", ""), wantMsg: "lacks template[0].containers[0].image"},
		{name: "traffic managed by terraform", rule: "release-owned-by-pipeline",
			files: with(svc, ", traffic]", "]"), wantMsg: "lacks traffic"},
		{name: "function source managed by terraform", rule: "release-owned-by-pipeline",
			files: with(root, "build_config[0].source", "labels"), wantMsg: "lacks build_config[0].source"},
		{name: "collector image ignored", rule: "release-owned-by-pipeline",
			files: with(svc, ", traffic]", ", traffic, template[0].containers[1].image]"), wantMsg: "covers the collector sidecar's image"},
		{name: "every container ignored", rule: "release-owned-by-pipeline",
			files: with(svc, ", traffic]", ", traffic, template[0].containers]"), wantMsg: "covers the collector sidecar's image"},
		{name: "everything ignored", rule: "release-owned-by-pipeline",
			files: with(svc, "[template[0].containers[0].image, client, traffic]", "all"), wantMsg: "covers the collector sidecar's image"},

		{name: "queue and database kept", rule: "prevent-destroy", files: system},
		{name: "database destroyable", rule: "prevent-destroy",
			files: with("modules/firestore/main.tf", "prevent_destroy = true", "prevent_destroy = false"), wantMsg: "google_firestore_database.status lacks lifecycle.prevent_destroy"},
		{name: "queue destroyable", rule: "prevent-destroy",
			files: with(region, "    prevent_destroy = true\n", ""), wantMsg: "google_cloud_tasks_queue.events lacks lifecycle.prevent_destroy"},
		{name: "no database", rule: "prevent-destroy",
			files: with("modules/firestore/main.tf", firestore, ""), wantMsg: "no google_firestore_database"},

		{name: "moved into a module instance", rule: "moved-targets-exist", files: system},
		{name: "moved to a resource the module lacks", rule: "moved-targets-exist",
			files: with(root, "module.targetmock[0].google_cloud_run_v2_service.this", "module.targetmock[0].google_cloud_run_v2_service.that"), wantMsg: "modules/service declares no google_cloud_run_v2_service.that"},
		{name: "moved into an unknown module", rule: "moved-targets-exist",
			files: with(root, "module.targetmock[0].", "module.other."), wantMsg: "calls no module other"},
		{name: "moved to an undeclared resource", rule: "moved-targets-exist",
			files: with(root, "module.targetmock[0].google_cloud_run_v2_service.this", "google_cloud_run_v2_service.mock"), wantMsg: "declares no google_cloud_run_v2_service.mock"},
		{name: "moved through nested modules", rule: "moved-targets-exist",
			files: with(root, "", "moved {\n  from = google_cloud_tasks_queue.events\n  to   = module.region.google_cloud_tasks_queue.events\n}\nmoved {\n  from = google_cloud_run_v2_service.ingest\n  to   = module.region.module.ingest.google_cloud_run_v2_service.this\n}\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertFindings(t, ruleNamed(t, tc.rule).check(fixture(t, tc.files)), tc.rule, tc.wantMsg)
		})
	}
}
