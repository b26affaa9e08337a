# targetmock: the stand-in for the rate-limited GraphQL target (dev only).
#
# It runs as exactly one instance, because its token bucket lives in memory:
# two instances would accept twice its limit. The dispatcher calls it like a
# third-party API, without a Google ID token, so Cloud Run's invoker check
# is disabled on this one service (no allUsers binding is made; policy tests
# allow invoker_iam_disabled nowhere else). It holds no data worth
# protecting; docs/deployment.md lists it as a known exposure of dev.

locals {
  target_url = var.target_url != null ? var.target_url : (
    var.targetmock_enabled ? "${google_cloud_run_v2_service.targetmock[0].uri}/graphql" : null
  )
}

resource "google_cloud_run_v2_service" "targetmock" {
  count = var.targetmock_enabled ? 1 : 0

  project             = var.project_id
  name                = "targetmock"
  location            = var.primary_region
  description         = "TEST DOUBLE of the rate-limited GraphQL target. Not for production."
  ingress             = "INGRESS_TRAFFIC_ALL"
  labels              = local.labels
  deletion_protection = false

  invoker_iam_disabled = true

  template {
    service_account                  = google_service_account.runtime["targetmock"].email
    timeout                          = "30s"
    max_instance_request_concurrency = 200
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = local.labels

    scaling {
      min_instance_count = 1
      max_instance_count = 1
    }

    containers {
      name  = "targetmock"
      image = var.initial_image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      env {
        name  = "PORT"
        value = "8080"
      }
      env {
        name  = "TARGET_RATE"
        value = tostring(var.targetmock_rate_limit.rate)
      }
      env {
        name  = "TARGET_BURST"
        value = tostring(var.targetmock_rate_limit.burst)
      }
      env {
        name  = "TARGET_RATE_LIMIT_MODE"
        value = var.targetmock_rate_limit.mode
      }
      env {
        name  = "LOG_LEVEL"
        value = var.log_level
      }
      env {
        name  = "GOOGLE_CLOUD_PROJECT"
        value = var.project_id
      }
      env {
        name  = "OTEL_SERVICE_NAME"
        value = "targetmock"
      }
      env {
        name  = "TRACE_SAMPLE_RATIO"
        value = tostring(var.trace_sample_ratio)
      }

      startup_probe {
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 30

        http_get {
          path = "/health"
        }
      }
    }
  }

  lifecycle {
    # Terraform owns the infrastructure; the pipeline owns the release.
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
      traffic,
    ]
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "build_deploys_targetmock" {
  count = var.targetmock_enabled ? 1 : 0

  project  = var.project_id
  location = google_cloud_run_v2_service.targetmock[0].location
  name     = google_cloud_run_v2_service.targetmock[0].name
  role     = "roles/run.developer"
  member   = "serviceAccount:${google_service_account.build.email}"
}
