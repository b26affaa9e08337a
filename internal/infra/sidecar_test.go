package infra_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/infra"
)

// sidecar is a Cloud Run service written out directly, with everything the
// otel-collector-sidecar rule asks for.
const sidecar = `
variable "sa" {
  type        = string
  description = "sa"
}
resource "google_secret_manager_secret" "cfg" {
  secret_id = "cfg"
}
resource "google_secret_manager_secret_version" "cfg" {
  secret      = google_secret_manager_secret.cfg.id
  secret_data = "x"
}
resource "google_secret_manager_secret_iam_member" "cfg" {
  secret_id = google_secret_manager_secret.cfg.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${var.sa}"
}
resource "google_cloud_run_v2_service" "svc" {
  name = "svc"
  template {
    service_account = var.sa
    containers {
      name       = "svc"
      image      = "app"
      depends_on = ["collector"]
      ports {
        container_port = 8080
      }
      env {
        name  = "OTEL_EXPORTER_OTLP_ENDPOINT"
        value = "http://localhost:4317"
      }
    }
    containers {
      name  = "collector"
      image = "us-docker.pkg.dev/x/y/otelcol-google:0.143.0"
      resources {
        limits = {
          cpu    = "0.5"
          memory = "256Mi"
        }
      }
      volume_mounts {
        name       = "cfg"
        mount_path = "/etc/otelcol-google"
      }
      startup_probe {
        http_get {
          port = 13133
        }
      }
    }
    volumes {
      name = "cfg"
      secret {
        secret = google_secret_manager_secret.cfg.secret_id
        items {
          version = google_secret_manager_secret_version.cfg.version
          path    = "config.yaml"
        }
      }
    }
  }
  lifecycle {
    ignore_changes = [template[0].containers[0].image, traffic]
  }
}
`

// serviceModule is the same service as a reusable module, called by
// regionModule once per service, the image pinned at the top.
var serviceModule = strings.NewReplacer(
	`name = "svc"`, `name = var.name`,
	`name       = "svc"`, `name       = var.name`,
	`"us-docker.pkg.dev/x/y/otelcol-google:0.143.0"`, `var.collector.image`,
	`variable "sa" {`, `variable "name" {
  type        = string
  description = "n"
}
variable "ingress" {
  type        = string
  description = "i"
}
variable "invoker_iam_disabled" {
  type        = bool
  description = "d"
  default     = false
}
variable "collector" {
  type        = object({ image = string })
  description = "c"
}
variable "sa" {`,
	`  template {`, `  ingress              = var.ingress
  invoker_iam_disabled = var.invoker_iam_disabled
  template {`,
).Replace(sidecar) + `
output "name" {
  value = google_cloud_run_v2_service.svc.name
}
`

const regionModule = `
variable "collector" {
  type        = object({ image = string })
  description = "c"
  default = {
    image = "us-docker.pkg.dev/x/y/otelcol-google:0.143.0"
  }
}
resource "google_service_account" "i" {
  account_id = "i"
}
resource "google_service_account" "d" {
  account_id = "d"
}
resource "google_service_account" "tasks_invoker" {
  account_id = "t"
}
module "ingest" {
  source    = "../service"
  name      = "ingest"
  ingress   = "INGRESS_TRAFFIC_ALL"
  sa        = google_service_account.i.email
  collector = var.collector
}
module "dispatcher" {
  source    = "../service"
  name      = "dispatcher"
  ingress   = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  sa        = google_service_account.d.email
  collector = var.collector
}
resource "google_cloud_run_v2_service_iam_member" "tasks" {
  name   = module.dispatcher.name
  role   = "roles/run.invoker"
  member = "serviceAccount:${google_service_account.tasks_invoker.email}"
}
`

// TestServiceModuleRules shows the service rules reading a reusable module
// per call: each call's own values, followed up to the roots.
func TestServiceModuleRules(t *testing.T) {
	t.Parallel()
	good := map[string]string{"modules/service/main.tf": serviceModule, "modules/region/main.tf": regionModule}
	with := func(file, old, new string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for k, v := range good {
			out[k] = v
		}
		if !strings.Contains(out[file], old) {
			t.Fatalf("fixture %s has no %q", file, old)
		}
		out[file] = strings.Replace(out[file], old, new, 1)
		return out
	}
	cases := []struct {
		name    string
		rule    string
		files   map[string]string
		wantMsg string
	}{
		{name: "sidecar on every call", rule: "otel-collector-sidecar", files: good},
		{name: "dispatcher private through its call", rule: "dispatcher-private", files: good},
		{name: "own accounts per call", rule: "service-account-per-service", files: good},
		{name: "invoker check on for every call", rule: "invoker-check-on", files: good},
		{name: "module references resolve", rule: "references", files: good},

		{name: "collector image unpinned at the root", rule: "otel-collector-sidecar",
			files:   with("modules/region/main.tf", "otelcol-google:0.143.0", "otelcol-google:latest"),
			wantMsg: "is not pinned"},
		{name: "collector image a bare tag at the root", rule: "otel-collector-sidecar",
			files:   with("modules/region/main.tf", "otelcol-google:0.143.0", "otelcol-google:0.143"),
			wantMsg: "is not pinned"},
		{name: "dispatcher call made public", rule: "dispatcher-private",
			files:   with("modules/region/main.tf", `"INGRESS_TRAFFIC_INTERNAL_ONLY"`, `"INGRESS_TRAFFIC_ALL"`),
			wantMsg: "lets the internet reach it"},
		{name: "dispatcher invoked through the module by another account", rule: "dispatcher-private",
			files:   with("modules/region/main.tf", "google_service_account.tasks_invoker.email", "google_service_account.i.email"),
			wantMsg: "not the Cloud Tasks token identity"},
		{name: "invoker check off on the ingest call", rule: "invoker-check-on",
			files:   with("modules/region/main.tf", `  name      = "ingest"`, `  name      = "ingest"`+"\n  invoker_iam_disabled = true"),
			wantMsg: "disables the invoker IAM check"},
		{name: "two calls share an account", rule: "service-account-per-service",
			files:   with("modules/region/main.tf", "google_service_account.d.email", "google_service_account.i.email"),
			wantMsg: "share the service account"},
		{name: "call sets no collector", rule: "otel-collector-sidecar",
			files:   with("modules/region/main.tf", "  collector = var.collector\n}\nresource", "}\nresource"),
			wantMsg: "does not set collector"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fixture(t, tc.files)
			if diff := cmp.Diff([]string{"dispatcher", "ingest"}, cfg.CloudRunServices()); diff != "" {
				t.Fatalf("services (-want +got):\n%s", diff)
			}
			assertFindings(t, rule(t, tc.rule).Check(cfg), tc.rule, tc.wantMsg)
		})
	}
}

// assertFindings: none when wantMsg is "", else one of rule's containing it.
func assertFindings(t testing.TB, findings []infra.Finding, ruleName, wantMsg string) {
	t.Helper()
	if wantMsg == "" {
		for _, f := range findings {
			t.Errorf("unexpected finding: %v", f)
		}
		return
	}
	for _, f := range findings {
		if f.Rule != ruleName {
			t.Errorf("finding from rule %q, want %q: %v", f.Rule, ruleName, f)
		}
		if strings.Contains(f.Msg, wantMsg) {
			return
		}
	}
	t.Errorf("no finding containing %q; got %v", wantMsg, findings)
}

// TestCollectorSidecarRule shows otel-collector-sidecar passing a service
// with a proper sidecar and catching each way to get it wrong.
func TestCollectorSidecarRule(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		old, new string
		extra    string
		wantMsg  string
	}{
		{name: "conforming"},
		{name: "no sidecar", old: `"us-docker.pkg.dev/x/y/otelcol-google:0.143.0"`, new: `"us-docker.pkg.dev/x/y/proxy:1.0.0"`, wantMsg: "no OpenTelemetry Collector sidecar"},
		{name: "latest image", old: "otelcol-google:0.143.0", new: "otelcol-google:latest", wantMsg: "is not pinned"},
		{name: "untagged image", old: "otelcol-google:0.143.0", new: "otelcol-google", wantMsg: "is not pinned"},
		{name: "digest image", old: "otelcol-google:0.143.0", new: "otelcol-google@sha256:" + strings.Repeat("a", 64)},
		{name: "collector image ignored", old: "[template[0].containers[0].image, traffic]", new: "[template[0].containers[0].image, template[0].containers[1].image, traffic]", wantMsg: "covers the collector's image"},
		{name: "all containers ignored", old: "[template[0].containers[0].image, traffic]", new: "[template[0].containers, traffic]", wantMsg: "covers the collector's image"},
		{name: "collector first", old: `image      = "app"`, new: `image      = "otelcol-google:0.1.0"`, wantMsg: "is containers[0]"},
		{name: "no endpoint", old: `"OTEL_EXPORTER_OTLP_ENDPOINT"`, new: `"OTEL_SERVICE_NAME"`, wantMsg: "sets no OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "endpoint elsewhere", old: `"http://localhost:4317"`, new: `"https://telemetry.googleapis.com"`, wantMsg: "want \"http://localhost:4317\""},
		{name: "no dependency", old: `depends_on = ["collector"]`, new: `depends_on = []`, wantMsg: "does not depend_on the collector"},
		{name: "no startup probe", old: "startup_probe {\n        http_get {\n          port = 13133\n        }\n      }", new: "", wantMsg: "no startup probe"},
		{name: "probe on another port", old: "port = 13133", new: "port = 8888", wantMsg: "health_check port 13133"},
		{name: "no limits", old: "cpu    = \"0.5\"\n", new: "", wantMsg: "no cpu and memory limits"},
		{name: "latest configuration", old: "version = google_secret_manager_secret_version.cfg.version", new: `version = "latest"`, wantMsg: "version latest"},
		{name: "configuration not mounted", old: "volume_mounts {\n        name       = \"cfg\"\n        mount_path = \"/etc/otelcol-google\"\n      }", new: "", wantMsg: "mounts no configuration volume"},
		{name: "secret read by another account", old: `member    = "serviceAccount:${var.sa}"`, new: `member    = "serviceAccount:other@p.iam.gserviceaccount.com"`, wantMsg: "no google_secret_manager_secret_iam_member grants"},
		{name: "secret readable through the project", extra: "resource \"google_project_iam_member\" \"p\" {\n  role   = \"roles/secretmanager.secretAccessor\"\n  member = \"serviceAccount:${var.sa}\"\n}\n", wantMsg: "beyond one secret"},
		{name: "authoritative secret IAM", extra: "resource \"google_secret_manager_secret_iam_binding\" \"b\" {\n  secret_id = google_secret_manager_secret.cfg.secret_id\n  role      = \"roles/secretmanager.secretAccessor\"\n  members   = []\n}\n", wantMsg: "is authoritative on a secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := sidecar
			if tc.old != "" {
				if !strings.Contains(src, tc.old) {
					t.Fatalf("fixture has no %q", tc.old)
				}
				src = strings.Replace(src, tc.old, tc.new, 1)
			}
			cfg := fixture(t, map[string]string{"m/main.tf": src + tc.extra})
			assertFindings(t, rule(t, "otel-collector-sidecar").Check(cfg), "otel-collector-sidecar", tc.wantMsg)
		})
	}
}

// TestRepositoryServices: the rules saw every Cloud Run service, each
// through its own call of modules/service.
func TestRepositoryServices(t *testing.T) {
	t.Parallel()
	cfg := loadRepo(t)
	if diff := cmp.Diff([]string{"dispatcher", "ingest", "targetmock"}, cfg.CloudRunServices()); diff != "" {
		t.Errorf("Cloud Run services (-want +got):\n%s", diff)
	}
	svc := cfg.Modules["modules/service"]
	if svc == nil {
		t.Fatal("no modules/service")
	}
	if src := string(svc.Src["modules/service/main.tf"]); !strings.Contains(src, `file("${path.module}/collector.yaml")`) {
		t.Error("modules/service does not store collector.yaml in the configuration secret")
	}
}

// TestRepositoryCollectorConfig checks the sidecar's collector.yaml.
func TestRepositoryCollectorConfig(t *testing.T) {
	t.Parallel()
	const file = "terraform/modules/service/collector.yaml"
	src, err := os.ReadFile(filepath.Join(repo, file))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range infra.CheckCollectorConfig(src, file) {
		t.Error(f)
	}
}

const collectorYAML = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: localhost:4317
processors:
  memory_limiter:
    limit_percentage: 65
  resourcedetection:
    detectors: [gcp]
  batch: {}
exporters:
  googlecloud: {}
  otlphttp:
    endpoint: https://telemetry.googleapis.com
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, resourcedetection, batch]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, resourcedetection, batch]
      exporters: [googlecloud]
`

// TestCheckCollectorConfig shows the configuration check passing a good
// configuration and catching each mismatch with the Terraform.
func TestCheckCollectorConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, old, new, wantMsg string
	}{
		{name: "conforming"},
		{name: "not YAML", old: "receivers:", new: "receivers: [", wantMsg: "parse"},
		{name: "receiver on another port", old: "localhost:4317", new: "localhost:4318", wantMsg: "receivers.otlp.protocols.grpc.endpoint"},
		{name: "health check on another port", old: "0.0.0.0:13133", new: "0.0.0.0:13134", wantMsg: "want port 13133"},
		{name: "health check not enabled", old: "extensions: [health_check]", new: "extensions: []", wantMsg: "does not enable health_check"},
		{name: "no metrics pipeline", old: "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter, resourcedetection, batch]\n      exporters: [googlecloud]\n", new: "", wantMsg: "no metrics pipeline"},
		{name: "batch first", old: "processors: [memory_limiter, resourcedetection, batch]\n      exporters: [otlphttp]", new: "processors: [batch, memory_limiter, resourcedetection]\n      exporters: [otlphttp]", wantMsg: "memory_limiter must be the first"},
		{name: "no resource detection", old: "processors: [memory_limiter, resourcedetection, batch]\n      exporters: [googlecloud]", new: "processors: [memory_limiter, batch]\n      exporters: [googlecloud]", wantMsg: "resourcedetection"},
		{name: "undefined exporter", old: "exporters: [otlphttp]", new: "exporters: [otlp/jaeger]", wantMsg: "exporter otlp/jaeger, which is not defined"},
		{name: "metrics to Managed Prometheus", old: "exporters: [googlecloud]", new: "exporters: [googlemanagedprometheus]", wantMsg: "does not export with googlecloud"},
		{name: "metrics under another prefix", old: "googlecloud: {}", new: "googlecloud:\n    metric:\n      prefix: custom.googleapis.com", wantMsg: "not workload.googleapis.com"},
		{name: "debug exporter", old: "exporters: [otlphttp]", new: "exporters: [otlphttp, debug]", wantMsg: "written to the logs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := collectorYAML
			if tc.old != "" {
				if !strings.Contains(src, tc.old) {
					t.Fatalf("fixture has no %q", tc.old)
				}
				src = strings.Replace(src, tc.old, tc.new, 1)
			}
			assertFindings(t, infra.CheckCollectorConfig([]byte(src), "collector.yaml"), "collector-config", tc.wantMsg)
		})
	}
}
