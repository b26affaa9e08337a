# sourcemock as a Cloud Function (gen 2), built from its Functions Framework
# entry point SendEvents (sourcemock/function). The Go build of Cloud
# Functions wants the function's package at the root of a module with a
# dotted path; the module here is `eventrelay`, so `make function-zip` wraps
# it in a two-line module (ADR 0007, docs/deployment.md).

resource "google_cloudfunctions2_function" "sourcemock" {
  project     = var.project_id
  name        = "sourcemock"
  location    = var.region
  description = "TEST DOUBLE of the source application: POST {count, rate} sends events to ingest."
  labels      = var.labels

  build_config {
    runtime           = var.runtime
    entry_point       = "SendEvents"
    service_account   = var.build_service_account
    docker_repository = var.docker_repository

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email = var.service_account
    available_memory      = "512M"
    available_cpu         = "1"
    # One run lasts at most MAX_DURATION (5m) and answers at its end.
    timeout_seconds                  = 540
    min_instance_count               = 0
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    # Cloud Scheduler in the same project counts as internal.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true

    # No static TOKEN: the function mints a Google-signed ID token for
    # TOKEN_AUDIENCE from the metadata server, as its own service account
    # (an ingest invoker and in ingest's AUTH_ALLOWED_EMAILS). The audience
    # is ingest's custom audience, not its URL: ingest checks exactly that
    # audience (AUTH_AUDIENCE), in every region and behind the load balancer.
    environment_variables = {
      INGEST_URL           = var.ingest_url
      TOKEN_AUDIENCE       = var.ingest_audience
      MAX_DURATION         = "5m"
      LOG_LEVEL            = var.log_level
      GOOGLE_CLOUD_PROJECT = var.project_id
    }
  }

  lifecycle {
    # Terraform owns the function; the pipeline owns its source releases.
    ignore_changes = [
      build_config[0].source,
    ]
  }
}

resource "google_cloudfunctions2_function_iam_member" "deployer_releases_sourcemock" {
  project        = var.project_id
  location       = google_cloudfunctions2_function.sourcemock.location
  cloud_function = google_cloudfunctions2_function.sourcemock.name
  role           = "roles/cloudfunctions.developer"
  member         = "serviceAccount:${var.deployer_service_account}"
}

# A gen 2 function is invoked through its Cloud Run service.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_sourcemock" {
  count = var.schedule == null ? 0 : 1

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.sourcemock.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.scheduler_service_account}"
}

resource "google_cloud_scheduler_job" "sourcemock" {
  count = var.schedule == null ? 0 : 1

  project          = var.project_id
  region           = var.region
  name             = "sourcemock"
  description      = "Drives sourcemock: one run of {count, rate} per schedule."
  schedule         = var.schedule.cron
  time_zone        = var.schedule.time_zone
  paused           = var.schedule.paused
  attempt_deadline = "600s"

  # The source never resends.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sourcemock.service_config[0].uri
    body        = base64encode(jsonencode({ count = var.schedule.count, rate = var.schedule.rate }))
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = var.scheduler_service_account
      audience              = google_cloudfunctions2_function.sourcemock.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes_sourcemock]
}
