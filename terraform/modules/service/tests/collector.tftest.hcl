# terraform test for the Cloud Run service module's collector sidecar and
# the rules Cloud Run applies at deploy time that a plan alone would not
# catch, planned with a mocked provider against the real schema. Run from
# this module's directory: terraform init -backend=false && terraform test

mock_provider "google" {}

variables {
  project_id               = "eventrelay-test"
  region                   = "europe-west1"
  name                     = "dispatcher"
  description              = "test"
  labels                   = { app = "eventrelay" }
  deletion_protection      = false
  ingress                  = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  service_account          = "eventrelay-dispatcher@eventrelay-test.iam.gserviceaccount.com"
  deployer_service_account = "eventrelay-build@eventrelay-test.iam.gserviceaccount.com"
  image                    = "us-docker.pkg.dev/cloudrun/container/hello:1.0.0"
  request_timeout          = "60s"
  scaling                  = { min_instances = 1, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }
  cpu_idle                 = false
  env                      = { LOG_LEVEL = "info" }
  collector = {
    image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.143.0"
    cpu    = "1"
    memory = "512Mi"
  }
}

run "two_containers_one_cpu_allocation" {
  command = plan

  assert {
    condition     = toset(keys(output.cpu_idle)) == toset(["dispatcher", "collector"])
    error_message = "the service runs its application and the collector sidecar"
  }
  assert {
    condition     = length(distinct(values(output.cpu_idle))) == 1 && output.cpu_idle["dispatcher"] == var.cpu_idle
    error_message = "CPU allocation is a setting of the instance: every container must have the service's cpu_idle"
  }
  assert {
    condition     = output.env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"
    error_message = "the application exports to the sidecar on localhost"
  }
}

# Cloud Run accepts less than 1 vCPU only with concurrency 1, request-based
# billing and the first generation (https://cloud.google.com/run/docs/configuring/services/cpu).
run "fractional_collector_cpu_is_refused" {
  command = plan

  variables {
    collector = {
      image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.143.0"
      cpu    = "0.5"
      memory = "256Mi"
    }
  }

  expect_failures = [var.collector]
}

run "instance_cpu_above_eight_is_refused" {
  command = plan

  variables {
    scaling = { min_instances = 1, max_instances = 5, concurrency = 80, cpu = "8", memory = "4Gi" }
  }

  expect_failures = [var.collector]
}

run "collector_image_is_pinned" {
  command = plan

  variables {
    collector = {
      image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:latest"
      cpu    = "1"
      memory = "512Mi"
    }
  }

  expect_failures = [var.collector]
}

run "app_env_cannot_redirect_telemetry" {
  command = plan

  variables {
    env = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://elsewhere:4317" }
  }

  expect_failures = [var.env]
}
