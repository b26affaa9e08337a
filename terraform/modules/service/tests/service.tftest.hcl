# terraform test for one Cloud Run service with its OpenTelemetry Collector
# sidecar (ADR 0009), planned against the real google provider schema with
# a mocked provider. Run from this module's directory:
#   terraform init -backend=false && terraform test
#
# Every Cloud Run service of eventrelay is a call of this module
# (internal/infra, cloud-run-in-service-module), so what holds here holds
# for ingest, the dispatcher and targetmock. That Terraform leaves the
# application's image to the pipeline, and never the collector's, is a
# lifecycle setting a plan does not show: internal/infra checks it
# (release-owned-by-pipeline). Every run plans: an apply would sleep
# through the IAM propagation wait.

mock_provider "google" {
  # The secret version's number is known only after apply; the revision
  # mounts it by number, so give it one at plan.
  mock_resource "google_secret_manager_secret_version" {
    defaults = {
      version = "1"
    }
    override_during = plan
  }
}

variables {
  project_id                   = "eventrelay-test"
  region                       = "europe-west1"
  name                         = "ingest"
  description                  = "test"
  labels                       = { app = "eventrelay", env = "test" }
  deletion_protection          = false
  ingress                      = "INGRESS_TRAFFIC_ALL"
  service_account              = "eventrelay-ingest@eventrelay-test.iam.gserviceaccount.com"
  deployer_service_account     = "eventrelay-build@eventrelay-test.iam.gserviceaccount.com"
  image                        = "us-docker.pkg.dev/cloudrun/container/hello"
  request_timeout              = "10s"
  scaling                      = { min_instances = 1, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }
  cpu_idle                     = false
  env                          = { LOG_LEVEL = "info" }
  iam_propagation_wait_seconds = 0
  collector = {
    image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.143.0"
    cpu    = "1"
    memory = "512Mi"
  }
}

run "runs_as_its_own_account" {
  command = plan

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].service_account == var.service_account
    error_message = "the service must run as the account it is given, never the default compute account"
  }
  assert {
    condition     = output.invoker_iam_disabled == false
    error_message = "Cloud Run's invoker IAM check is on unless a caller turns it off (only targetmock may)"
  }
}

run "application_first_collector_second" {
  command = plan

  assert {
    condition     = length(google_cloud_run_v2_service.this.template[0].containers) == 2
    error_message = "a service runs its application and the collector, nothing else"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].name == var.name && google_cloud_run_v2_service.this.template[0].containers[0].image == var.image
    error_message = "the application must be containers[0]: the pipeline deploys its image there and ignore_changes names that position"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].ports[0].container_port == 8080
    error_message = "the application is the ingress container"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[1].name == "collector" && google_cloud_run_v2_service.this.template[0].containers[1].image == var.collector.image
    error_message = "containers[1] must be the collector sidecar, at the image Terraform pins"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[1].resources[0].limits == tomap({ cpu = var.collector.cpu, memory = var.collector.memory })
    error_message = "the collector needs its own CPU and memory limits"
  }
}

# The application starts after the collector answers its health check, and
# exports to it; the collector listens where collector.yaml says. Both
# sides are read here, so they cannot drift apart.
run "application_exports_to_the_sidecar" {
  command = plan

  assert {
    condition     = contains(google_cloud_run_v2_service.this.template[0].containers[0].depends_on, "collector")
    error_message = "the application must depend_on the collector container, so it starts after it"
  }
  assert {
    condition     = output.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://${yamldecode(file("${path.module}/collector.yaml")).receivers.otlp.protocols.grpc.endpoint}"
    error_message = "OTEL_EXPORTER_OTLP_ENDPOINT must be the collector's OTLP/gRPC receiver (collector.yaml)"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[1].startup_probe[0].http_get[0].port == tonumber(split(":", yamldecode(file("${path.module}/collector.yaml")).extensions.health_check.endpoint)[1])
    error_message = "the collector's startup probe must read the health_check port of collector.yaml"
  }
}

# The configuration: collector.yaml in a secret, mounted at a pinned
# version where the collector reads it, readable by this service's account
# alone through a secret-level grant.
run "configuration_from_its_own_secret" {
  command = plan

  assert {
    condition     = nonsensitive(google_secret_manager_secret_version.collector_config.secret_data) == file("${path.module}/collector.yaml")
    error_message = "the secret must hold collector.yaml"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].volumes[0].secret[0].secret == google_secret_manager_secret.collector_config.secret_id
    error_message = "the configuration volume must be this service's secret"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].volumes[0].secret[0].items[0].version == google_secret_manager_secret_version.collector_config.version
    error_message = "the configuration must be mounted at a pinned version (never latest), so a change rolls out, and back, with a revision"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[1].volume_mounts[0].name == google_cloud_run_v2_service.this.template[0].volumes[0].name
    error_message = "the collector must mount the configuration volume"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[1].args == tolist(["--config=${google_cloud_run_v2_service.this.template[0].containers[1].volume_mounts[0].mount_path}/${google_cloud_run_v2_service.this.template[0].volumes[0].secret[0].items[0].path}"])
    error_message = "the collector must read the mounted configuration file"
  }
  assert {
    condition     = google_secret_manager_secret_iam_member.collector_reads_config.secret_id == google_secret_manager_secret.collector_config.secret_id && google_secret_manager_secret_iam_member.collector_reads_config.role == "roles/secretmanager.secretAccessor" && google_secret_manager_secret_iam_member.collector_reads_config.member == "serviceAccount:${var.service_account}"
    error_message = "the service's own account, and only it, reads its configuration secret"
  }
}

# ingest and the dispatcher are routed traffic only after their warm-up:
# the startup probe asks /ready, which answers 503 until then, within a
# budget that covers a warm-up retried through a passing outage.
run "startup_probe_waits_for_the_warm_up" {
  command = plan

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].http_get[0].path == "/ready"
    error_message = "ingest's startup probe must ask /ready (serving.ReadyPath), which passes only after the warm-up"
  }
  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].period_seconds * google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].failure_threshold >= 60
    error_message = "the startup probe's budget (period x failure_threshold) must cover a warm-up retried for at least a minute"
  }
}

run "dispatcher_startup_probe_waits_for_the_warm_up" {
  command = plan

  variables {
    name = "dispatcher"
  }

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].http_get[0].path == "/ready"
    error_message = "the dispatcher's startup probe must ask /ready"
  }
}

run "targetmock_startup_probe_is_health" {
  command = plan

  variables {
    name = "targetmock"
  }

  assert {
    condition     = google_cloud_run_v2_service.this.template[0].containers[0].startup_probe[0].http_get[0].path == "/health"
    error_message = "a service without a warm-up (targetmock) has no /ready: its startup probe must stay on /health"
  }
}

run "startup_probe_path_must_be_a_path" {
  command = plan

  variables {
    startup_probe_path = "ready"
  }

  expect_failures = [var.startup_probe_path]
}
