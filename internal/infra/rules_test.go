package infra_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"eventrelay/internal/infra"
)

// fixture builds a Config from inline .tf files (paths under terraform/).
func fixture(t testing.TB, files map[string]string, playbooks ...string) *infra.Config {
	t.Helper()
	fsys := fstest.MapFS{}
	for p, src := range files {
		fsys["terraform/"+p] = &fstest.MapFile{Data: []byte(src)}
	}
	pb := fstest.MapFS{}
	for _, p := range playbooks {
		pb[p] = &fstest.MapFile{Data: []byte("# playbook\n")}
	}
	cfg, err := infra.LoadTerraform(fsys, "terraform", pb)
	if err != nil {
		t.Fatalf("LoadTerraform: %v", err)
	}
	return cfg
}

func rule(t testing.TB, name string) infra.Rule {
	t.Helper()
	for _, r := range infra.TerraformRules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %q", name)
	return infra.Rule{}
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

const goodQueue = `
variable "queue" {
  type        = object({ rate = number, conc = number })
  description = "q"
}
resource "google_cloud_tasks_queue" "q" {
  name     = "events"
  location = "europe-west1"
  rate_limits {
    max_dispatches_per_second = var.queue.rate
    max_concurrent_dispatches = var.queue.conc
  }
  retry_config {
    max_attempts = 10
  }
  stackdriver_logging_config {
    sampling_ratio = 1
  }
  lifecycle {
    ignore_changes = [rate_limits[0].max_dispatches_per_second, rate_limits[0].max_concurrent_dispatches]
  }
}
`

const queueCaller = `
variable "target_rate_limit_per_second" {
  type        = number
  description = "limit"
}
variable "target_max_concurrency" {
  type        = number
  description = "conc"
}
locals {
  half = var.target_rate_limit_per_second / 2
}
module "r" {
  source = "../region"
  queue = {
    rate = local.half
    conc = var.target_max_concurrency
  }
}
`

const dispatcher = `
variable "tasks_invoker" {
  type        = string
  description = "sa"
}
resource "google_cloud_run_v2_service" "dispatcher" {
  name    = "dispatcher"
  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  template {
    service_account = "x"
  }
}
resource "google_cloud_run_v2_service_iam_member" "tasks" {
  name   = google_cloud_run_v2_service.dispatcher.name
  role   = "roles/run.invoker"
  member = "serviceAccount:${var.tasks_invoker}"
}
`

const ingestModule = `
variable "scaling" {
  type        = object({ min_instances = number })
  description = "s"
  validation {
    condition     = var.scaling.min_instances >= 1
    error_message = "warm"
  }
}
resource "google_cloud_run_v2_service" "ingest" {
  name = "ingest"
  template {
    scaling {
      min_instance_count = var.scaling.min_instances
    }
  }
}
`

const alert = `
variable "playbook_base_url" {
  type        = string
  description = "base"
}
locals {
  playbook = { for a in ["dead-letters"] : a => "${var.playbook_base_url}/${a}.md" }
}
resource "google_monitoring_alert_policy" "dl" {
  notification_channels = []
  documentation {
    content = "see ${local.playbook["dead-letters"]}"
  }
}
`

const firestore = `
resource "google_firestore_database" "db" {
  name                              = "(default)"
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
  lifecycle {
    prevent_destroy = true
  }
}
`

const services = `
resource "google_service_account" "a" {
  account_id = "a"
}
resource "google_service_account" "b" {
  account_id = "b"
}
resource "google_cloud_run_v2_service" "one" {
  template {
    service_account = google_service_account.a.email
  }
}
resource "google_cloud_run_v2_service" "two" {
  template {
    service_account = google_service_account.b.email
  }
}
`

const release = `
resource "google_cloud_run_v2_service" "s" {
  template {
    containers {
      image = "x"
    }
  }
  lifecycle {
    ignore_changes = [template[0].containers[0].image, client, traffic]
  }
}
resource "google_cloudfunctions2_function" "f" {
  lifecycle {
    ignore_changes = [build_config[0].source]
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

const movedChild = `
resource "google_cloud_run_v2_service" "this" {
  name = "svc"
}
`

const movedParent = `
module "svc" {
  source = "../service"
}
moved {
  from = google_cloud_run_v2_service.svc
  to   = module.svc.google_cloud_run_v2_service.this
}
`

// genericService is a reusable service module: it cannot itself require a
// warm instance, because only some of its callers need one.
const genericService = `
variable "name" {
  type        = string
  description = "n"
}
variable "scaling" {
  type        = object({ min_instances = number })
  description = "s"
}
resource "google_cloud_run_v2_service" "this" {
  name = var.name
  template {
    scaling {
      min_instance_count = var.scaling.min_instances
    }
  }
}
`

const genericCaller = `
variable "ingest_scaling" {
  type        = object({ min_instances = number })
  description = "s"
  validation {
    condition     = var.ingest_scaling.min_instances >= 1
    error_message = "warm"
  }
}
module "ingest" {
  source  = "../service"
  name    = "ingest"
  scaling = var.ingest_scaling
}
module "dispatcher" {
  source  = "../service"
  name    = "dispatcher"
  scaling = { min_instances = 0 }
}
`

const governedQueue = `
variable "dispatcher_service_account" {
  type        = string
  description = "d"
}
variable "ingest_service_account" {
  type        = string
  description = "i"
}
resource "google_cloud_tasks_queue" "events" {
  name = "events"
}
resource "google_cloud_run_v2_service" "dispatcher" {
  name = "dispatcher"
  template {
    service_account = var.dispatcher_service_account
  }
}
resource "google_cloud_tasks_queue_iam_member" "governor" {
  name   = google_cloud_tasks_queue.events.name
  role   = "roles/cloudtasks.queueAdmin"
  member = "serviceAccount:${var.dispatcher_service_account}"
}
`

// TestRules shows each rule passing a conforming fixture and catching the
// violation it exists for.
func TestRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		rule    string
		files   map[string]string
		pb      []string
		wantMsg string // "" means no finding
	}{
		{name: "references ok", rule: "references", files: map[string]string{
			"modules/region/main.tf": goodQueue + "output \"id\" {\n  value = google_cloud_tasks_queue.q.id\n}\n",
			"modules/app/main.tf":    queueCaller + "output \"q\" {\n  value = module.r.id\n}\n",
		}},
		{name: "undeclared variable", rule: "references", files: map[string]string{
			"m/main.tf": "output \"x\" {\n  value = var.nope\n}\n",
		}, wantMsg: "var.nope is not declared"},
		{name: "undeclared local", rule: "references", files: map[string]string{
			"m/main.tf": "output \"x\" {\n  value = local.nope\n}\n",
		}, wantMsg: "local.nope is not declared"},
		{name: "undeclared resource", rule: "references", files: map[string]string{
			"m/main.tf": "output \"x\" {\n  value = google_foo.bar.id\n}\n",
		}, wantMsg: "resource google_foo.bar.id is not declared"},
		{name: "missing module output", rule: "references", files: map[string]string{
			"modules/region/main.tf": goodQueue,
			"modules/app/main.tf":    queueCaller + "output \"q\" {\n  value = module.r.nothing\n}\n",
		}, wantMsg: `has no output "nothing"`},
		{name: "unknown module argument", rule: "references", files: map[string]string{
			"modules/region/main.tf": goodQueue,
			"modules/app/main.tf":    strings.Replace(queueCaller, "source = \"../region\"", "source = \"../region\"\n  bogus  = 1", 1),
		}, wantMsg: `has no variable "bogus"`},
		{name: "required module variable missing", rule: "references", files: map[string]string{
			"modules/region/main.tf": goodQueue,
			"modules/app/main.tf":    "module \"r\" {\n  source = \"../region\"\n}\n",
		}, wantMsg: `required variable "queue"`},
		{name: "dynamic iterator in scope", rule: "references", files: map[string]string{
			"m/main.tf": "locals {\n  e = { A = \"1\" }\n}\nresource \"google_x\" \"y\" {\n  dynamic \"env\" {\n    for_each = local.e\n    content {\n      name = env.key\n    }\n  }\n}\n",
		}},

		{name: "moved into a module", rule: "references", files: map[string]string{
			"modules/service/main.tf": movedChild,
			"modules/region/main.tf":  movedParent,
		}},
		{name: "moved but still declared", rule: "references", files: map[string]string{
			"modules/service/main.tf": movedChild,
			"modules/region/main.tf":  movedParent + "resource \"google_cloud_run_v2_service\" \"svc\" {\n  name = \"svc\"\n}\n",
		}, wantMsg: "which is still declared"},
		{name: "moved to a resource the module lacks", rule: "references", files: map[string]string{
			"modules/service/main.tf": movedChild,
			"modules/region/main.tf":  strings.Replace(movedParent, ".google_cloud_run_v2_service.this", ".google_cloud_run_v2_service.that", 1),
		}, wantMsg: "declares no google_cloud_run_v2_service.that"},
		{name: "moved to an unknown module", rule: "references", files: map[string]string{
			"modules/service/main.tf": movedChild,
			"modules/region/main.tf":  strings.Replace(movedParent, "to   = module.svc.", "to   = module.other.", 1),
		}, wantMsg: "not a resource of a module call"},

		{name: "no public principals ok", rule: "no-public-principals", files: map[string]string{
			"m/main.tf": "# comments may say allUsers\nresource \"google_x\" \"y\" {\n  member = \"serviceAccount:a@b.iam.gserviceaccount.com\"\n}\n",
		}},
		{name: "allUsers binding", rule: "no-public-principals", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service_iam_member\" \"pub\" {\n  member = \"allUsers\"\n}\n",
		}, wantMsg: "allUsers"},
		{name: "allAuthenticatedUsers in a heredoc", rule: "no-public-principals", files: map[string]string{
			"m/main.tf": "locals {\n  x = <<-EOT\n    allAuthenticatedUsers\n  EOT\n}\n",
		}, wantMsg: "allAuthenticatedUsers"},

		{name: "dispatcher private ok", rule: "dispatcher-private", files: map[string]string{"m/main.tf": dispatcher}},
		{name: "dispatcher public ingress", rule: "dispatcher-private", files: map[string]string{
			"m/main.tf": strings.Replace(dispatcher, "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_ALL", 1),
		}, wantMsg: "lets the internet reach it"},
		{name: "dispatcher invoked by someone else", rule: "dispatcher-private", files: map[string]string{
			"m/main.tf": strings.Replace(dispatcher, "${var.tasks_invoker}", "source@x.iam.gserviceaccount.com", 1),
		}, wantMsg: "not the Cloud Tasks token identity"},
		{name: "no dispatcher", rule: "dispatcher-private", files: map[string]string{"m/main.tf": firestore}, wantMsg: "no google_cloud_run_v2_service"},

		{name: "invoker check off on ingest", rule: "invoker-check-on", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service\" \"ingest\" {\n  invoker_iam_disabled = true\n}\n",
		}, wantMsg: "disables the invoker IAM check"},
		{name: "invoker check off on targetmock", rule: "invoker-check-on", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service\" \"targetmock\" {\n  invoker_iam_disabled = true\n}\n",
		}},

		{name: "ingest warm ok", rule: "ingest-warm", files: map[string]string{
			"modules/svc/main.tf":      ingestModule,
			"environments/dev/main.tf": "module \"s\" {\n  source  = \"../../modules/svc\"\n  scaling = { min_instances = 2 }\n}\n",
		}},
		{name: "ingest cold literal", rule: "ingest-warm", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service\" \"ingest\" {\n  template {\n    scaling {\n      min_instance_count = 0\n    }\n  }\n}\n",
		}, wantMsg: "min instances 0 < 1"},
		{name: "ingest cold from a root", rule: "ingest-warm", files: map[string]string{
			"modules/svc/main.tf":      ingestModule,
			"environments/dev/main.tf": "module \"s\" {\n  source  = \"../../modules/svc\"\n  scaling = { min_instances = 0 }\n}\n",
		}, wantMsg: "min instances 0 < 1"},
		{name: "ingest variable without validation", rule: "ingest-warm", files: map[string]string{
			"m/main.tf": strings.Replace(ingestModule, "var.scaling.min_instances >= 1", "true", 1),
		}, wantMsg: "no validation requiring min instances"},
		{name: "ingest warm through its module call", rule: "ingest-warm", files: map[string]string{
			"modules/service/main.tf":  genericService,
			"modules/region/main.tf":   genericCaller,
			"environments/dev/main.tf": "module \"r\" {\n  source         = \"../../modules/region\"\n  ingest_scaling = { min_instances = 1 }\n}\n",
		}},
		{name: "ingest cold through its module call", rule: "ingest-warm", files: map[string]string{
			"modules/service/main.tf": genericService,
			"modules/region/main.tf":  strings.Replace(genericCaller, "scaling = var.ingest_scaling", "scaling = { min_instances = 0 }", 1),
		}, wantMsg: "min instances 0 < 1"},
		{name: "ingest cold from a root through its module call", rule: "ingest-warm", files: map[string]string{
			"modules/service/main.tf":  genericService,
			"modules/region/main.tf":   genericCaller,
			"environments/dev/main.tf": "module \"r\" {\n  source         = \"../../modules/region\"\n  ingest_scaling = { min_instances = 0 }\n}\n",
		}, wantMsg: "min instances 0 < 1"},
		{name: "ingest call's variable without validation", rule: "ingest-warm", files: map[string]string{
			"modules/service/main.tf": genericService,
			"modules/region/main.tf":  strings.Replace(genericCaller, "var.ingest_scaling.min_instances >= 1", "true", 1),
		}, wantMsg: "no validation requiring min instances"},
		{name: "ingest without min instances", rule: "ingest-warm", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service\" \"ingest\" {\n  template {}\n}\n",
		}, wantMsg: "sets no min_instance_count"},

		{name: "queue rate ok", rule: "queue-rate-from-variables", files: map[string]string{
			"modules/region/main.tf": goodQueue,
			"modules/app/main.tf":    queueCaller,
		}},
		{name: "queue rate literal", rule: "queue-rate-from-variables", files: map[string]string{
			"m/main.tf": strings.Replace(goodQueue, "var.queue.rate", "10", 1),
		}, wantMsg: "must come from a variable"},
		{name: "queue rate not ignored", rule: "queue-rate-from-variables", files: map[string]string{
			"m/main.tf": strings.Replace(goodQueue, "rate_limits[0].max_dispatches_per_second, ", "", 1),
		}, wantMsg: "lacks rate_limits[0].max_dispatches_per_second"},
		{name: "queue rate not from the target limit", rule: "queue-rate-from-variables", files: map[string]string{
			"modules/region/main.tf": goodQueue,
			"modules/app/main.tf":    strings.Replace(queueCaller, "rate = local.half", "rate = 5", 1),
		}, wantMsg: "does not come from var.target_rate_limit_per_second"},
		{name: "queue without retry config", rule: "queue-rate-from-variables", files: map[string]string{
			"m/main.tf": strings.Replace(goodQueue, "max_attempts = 10", "", 1),
		}, wantMsg: "explicit retry_config"},

		{name: "queue admin on the queue for the dispatcher", rule: "queue-admin-resource-scoped", files: map[string]string{"m/main.tf": governedQueue}},
		{name: "queue admin for ingest", rule: "queue-admin-resource-scoped", files: map[string]string{
			"m/main.tf": strings.Replace(governedQueue, "${var.dispatcher_service_account}\"\n}", "${var.ingest_service_account}\"\n}", 1),
		}, wantMsg: "someone other than the dispatcher"},
		{name: "queue admin on the project", rule: "queue-admin-resource-scoped", files: map[string]string{
			"m/main.tf": strings.Replace(governedQueue, "google_cloud_tasks_queue_iam_member\" \"governor\" {\n  name   = google_cloud_tasks_queue.events.name\n", "google_project_iam_member\" \"governor\" {\n", 1),
		}, wantMsg: "beyond one queue"},
		{name: "queue admin through a local", rule: "queue-admin-resource-scoped", files: map[string]string{
			"m/main.tf": governedQueue + "locals {\n  roles = [\"roles/cloudtasks.queueAdmin\"]\n}\n",
		}, wantMsg: "in a local"},
		{name: "dispatcher cannot govern", rule: "queue-admin-resource-scoped", files: map[string]string{
			"m/main.tf": strings.Replace(governedQueue, "roles/cloudtasks.queueAdmin", "roles/cloudtasks.viewer", 1),
		}, wantMsg: "cannot govern its queue"},

		{name: "variables typed ok", rule: "variables-typed", files: map[string]string{
			"m/main.tf": "variable \"x\" {\n  type        = string\n  description = \"x\"\n}\n",
		}},
		{name: "variable without type", rule: "variables-typed", files: map[string]string{
			"m/main.tf": "variable \"x\" {\n  description = \"x\"\n}\n",
		}, wantMsg: "var.x has no type"},
		{name: "variable without description", rule: "variables-typed", files: map[string]string{
			"m/main.tf": "variable \"x\" {\n  type = string\n}\n",
		}, wantMsg: "var.x has no description"},

		{name: "alert links playbook", rule: "alerts-link-playbooks", files: map[string]string{"m/main.tf": alert}, pb: []string{"dead-letters.md"}},
		{name: "alert playbook missing", rule: "alerts-link-playbooks", files: map[string]string{"m/main.tf": alert}, wantMsg: "does not exist"},
		{name: "alert without playbook link", rule: "alerts-link-playbooks", files: map[string]string{
			"m/main.tf": strings.Replace(alert, `${local.playbook["dead-letters"]}`, "the wiki", 1),
		}, pb: []string{"dead-letters.md"}, wantMsg: "links no playbook"},
		{name: "alert notifying nobody", rule: "alerts-link-playbooks", files: map[string]string{
			"m/main.tf": strings.Replace(alert, "notification_channels = []", "", 1),
		}, pb: []string{"dead-letters.md"}, wantMsg: "notifies nobody"},

		{name: "firestore protected", rule: "firestore-protected", files: map[string]string{"m/main.tf": firestore}},
		{name: "firestore without PITR", rule: "firestore-protected", files: map[string]string{
			"m/main.tf": strings.Replace(firestore, "POINT_IN_TIME_RECOVERY_ENABLED", "POINT_IN_TIME_RECOVERY_DISABLED", 1),
		}, wantMsg: "point_in_time_recovery_enablement"},
		{name: "firestore without delete protection", rule: "firestore-protected", files: map[string]string{
			"m/main.tf": strings.Replace(firestore, "DELETE_PROTECTION_ENABLED", "DELETE_PROTECTION_DISABLED", 1),
		}, wantMsg: "delete_protection_state"},

		{name: "own service accounts", rule: "service-account-per-service", files: map[string]string{"m/main.tf": services}},
		{name: "shared service account", rule: "service-account-per-service", files: map[string]string{
			"m/main.tf": strings.Replace(services, "google_service_account.b.email", "google_service_account.a.email", 1),
		}, wantMsg: "share the service account"},
		{name: "default compute account", rule: "service-account-per-service", files: map[string]string{
			"m/main.tf": "resource \"google_cloud_run_v2_service\" \"s\" {\n  template {}\n}\n",
		}, wantMsg: "default compute service account"},
		{name: "shared through module variables", rule: "service-account-per-service", files: map[string]string{
			"modules/svc/main.tf": "variable \"a\" {\n  type = string\n  description = \"a\"\n}\nvariable \"b\" {\n  type = string\n  description = \"b\"\n}\n" +
				"resource \"google_cloud_run_v2_service\" \"one\" {\n  template {\n    service_account = var.a\n  }\n}\n" +
				"resource \"google_cloud_run_v2_service\" \"two\" {\n  template {\n    service_account = var.b\n  }\n}\n",
			"modules/app/main.tf": "resource \"google_service_account\" \"x\" {\n  account_id = \"x\"\n}\nmodule \"s\" {\n  source = \"../svc\"\n  a = google_service_account.x.email\n  b = google_service_account.x.email\n}\n",
		}, wantMsg: "share the service account"},

		{name: "release owned by pipeline", rule: "release-owned-by-pipeline", files: map[string]string{"m/main.tf": release}},
		{name: "image managed by terraform", rule: "release-owned-by-pipeline", files: map[string]string{
			"m/main.tf": strings.Replace(release, "template[0].containers[0].image, ", "", 1),
		}, wantMsg: "lacks template[0].containers[0].image"},
		{name: "function source managed by terraform", rule: "release-owned-by-pipeline", files: map[string]string{
			"m/main.tf": strings.Replace(release, "build_config[0].source", "labels", 1),
		}, wantMsg: "lacks build_config[0].source"},

		{name: "apis kept", rule: "apis-kept-on-destroy", files: map[string]string{
			"m/main.tf": "resource \"google_project_service\" \"run\" {\n  service            = \"run.googleapis.com\"\n  disable_on_destroy = false\n}\n",
		}},
		{name: "api disabled on destroy", rule: "apis-kept-on-destroy", files: map[string]string{
			"m/main.tf": "resource \"google_project_service\" \"run\" {\n  service = \"run.googleapis.com\"\n}\n",
		}, wantMsg: "disable_on_destroy = false"},

		{name: "project iam allowed", rule: "project-iam-allowlist", files: map[string]string{
			"m/main.tf": "locals {\n  roles = [\"roles/logging.logWriter\"]\n}\nresource \"google_project_iam_member\" \"p\" {\n  for_each = toset(local.roles)\n  role     = each.value\n  member   = \"serviceAccount:a@b.iam.gserviceaccount.com\"\n}\n",
		}},
		{name: "project iam too broad", rule: "project-iam-allowlist", files: map[string]string{
			"m/main.tf": "resource \"google_project_iam_member\" \"p\" {\n  role   = \"roles/cloudtasks.enqueuer\"\n  member = \"serviceAccount:a@b.iam.gserviceaccount.com\"\n}\n",
		}, wantMsg: "grant it on the resource instead"},
		{name: "authoritative project iam", rule: "project-iam-allowlist", files: map[string]string{
			"m/main.tf": "resource \"google_project_iam_binding\" \"p\" {\n  role = \"roles/logging.logWriter\"\n}\n",
		}, wantMsg: "authoritative"},

		{name: "providers pinned", rule: "providers-pinned", files: map[string]string{"m/versions.tf": goodVersions}},
		{name: "provider unbounded", rule: "providers-pinned", files: map[string]string{
			"m/versions.tf": strings.Replace(goodVersions, "~> 7.30", ">= 6.0", 1),
		}, wantMsg: "not pinned"},
		{name: "no terraform block", rule: "providers-pinned", files: map[string]string{"m/main.tf": firestore}, wantMsg: "no terraform block"},

		{name: "remote state", rule: "remote-state", files: map[string]string{"environments/dev/versions.tf": envRoot}},
		{name: "local state", rule: "remote-state", files: map[string]string{"environments/dev/versions.tf": goodVersions}, wantMsg: "without a backend"},
		{name: "shared state prefix", rule: "remote-state", files: map[string]string{
			"environments/dev/versions.tf":  envRoot,
			"environments/prod/versions.tf": envRoot,
		}, wantMsg: "shared with"},

		{name: "no latest", rule: "no-latest-tag", files: map[string]string{
			"m/main.tf": "variable \"i\" {\n  type        = string\n  description = \"i\"\n  validation {\n    condition     = !endswith(var.i, \":latest\")\n    error_message = \"no\"\n  }\n}\n",
		}},
		{name: "latest image", rule: "no-latest-tag", files: map[string]string{
			"m/main.tf": "locals {\n  image = \"gcr.io/p/ingest:latest\"\n}\n",
		}, wantMsg: "tagged latest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			findings := rule(t, tc.rule).Check(fixture(t, tc.files, tc.pb...))
			if tc.wantMsg == "" {
				for _, f := range findings {
					t.Errorf("unexpected finding: %v", f)
				}
				return
			}
			for _, f := range findings {
				if f.Rule != tc.rule {
					t.Errorf("finding from rule %q, want %q: %v", f.Rule, tc.rule, f)
				}
				if strings.Contains(f.Msg, tc.wantMsg) {
					return
				}
			}
			t.Errorf("no finding containing %q; got %v", tc.wantMsg, findings)
		})
	}
}
