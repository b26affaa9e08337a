# One Cloud Run service of eventrelay (ingest, dispatcher, targetmock) with
# its OpenTelemetry Collector sidecar (ADR 0009).
#
# Every instance runs two containers that share localhost:
#   - the application (containers[0], named after the service), whose image
#     the pipeline owns; it exports spans and metrics with OTLP/gRPC to
#     OTEL_EXPORTER_OTLP_ENDPOINT = http://localhost:4317, without
#     credentials;
#   - "collector", the Google-built OpenTelemetry Collector, whose pinned
#     image Terraform owns. It reads collector.yaml from a Secret Manager
#     secret mounted as a file, authenticates as the service's account and
#     sends traces to the Telemetry API and metrics to Cloud Monitoring as
#     workload.googleapis.com/<name>.
# The application starts only after the collector's health check answers,
# so the first batch of telemetry has somewhere to go.

locals {
  # ingest and the dispatcher warm up behind /ready; other services
  # (targetmock) have only /health.
  startup_probe_path = coalesce(var.startup_probe_path, contains(["ingest", "dispatcher"], var.name) ? "/ready" : "/health")

  # The collector's configuration directory in its container, and the file
  # Terraform stores in the secret.
  collector_config_dir  = "/etc/otelcol-google"
  collector_config_file = "config.yaml"
}

# ---------------------------------------------------------------- collector configuration

# One secret per service and region: each holds the same collector.yaml, and
# only this service's account may read it. Regional replication: the secret
# is read when an instance starts, next to it.
resource "google_secret_manager_secret" "collector_config" {
  project   = var.project_id
  secret_id = "eventrelay-${var.name}-otelcol-${var.region}"
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "collector_config" {
  secret      = google_secret_manager_secret.collector_config.id
  secret_data = file("${path.module}/collector.yaml")

  # A changed collector.yaml becomes a new version and a new revision that
  # mounts it by number. The old version stays enabled, so rolling back to
  # an older revision still finds its configuration.
  deletion_policy = "ABANDON"
}

# Secret-level, for the service's own account only: nothing is granted on
# the project.
resource "google_secret_manager_secret_iam_member" "collector_reads_config" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.collector_config.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${var.service_account}"
}

# Cloud Run checks at deployment that the service's account can access every
# secret the revision uses, and fails the deployment if not
# (https://cloud.google.com/run/docs/configuring/services/secrets). IAM is
# eventually consistent: a new grant typically takes 2 minutes to be seen,
# potentially 7 or longer
# (https://cloud.google.com/iam/docs/access-change-propagation), so a
# revision created right after the grant can be refused; and a service
# whose first revision fails is left tainted, which deletion_protection
# then keeps Terraform from replacing. The grant has no dependency but the
# secret and the account, so it is made at the start of an apply; this
# wait, only when the grant is created or replaced (a new service or
# region), holds the service back until the grant has had Google's
# documented propagation time. It is a built-in terraform_data rather than
# the time provider's time_sleep so the configuration needs no other
# provider.
resource "terraform_data" "collector_grant_propagated" {
  triggers_replace = [google_secret_manager_secret_iam_member.collector_reads_config.id]

  provisioner "local-exec" {
    command = "sleep ${var.iam_propagation_wait_seconds}"
  }
}

# ---------------------------------------------------------------- service

resource "google_cloud_run_v2_service" "this" {
  project              = var.project_id
  name                 = var.name
  location             = var.region
  description          = var.description
  ingress              = var.ingress
  custom_audiences     = var.custom_audiences
  invoker_iam_disabled = var.invoker_iam_disabled
  labels               = var.labels
  deletion_protection  = var.deletion_protection

  template {
    service_account                  = var.service_account
    timeout                          = var.request_timeout
    max_instance_request_concurrency = var.scaling.concurrency
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = var.labels

    scaling {
      min_instance_count = var.scaling.min_instances
      max_instance_count = var.scaling.max_instances
    }

    # The application. It must stay containers[0]: lifecycle.ignore_changes
    # below and the pipeline's deploy address its image by that position.
    containers {
      name       = var.name
      image      = var.image
      depends_on = ["collector"]

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.scaling.cpu
          memory = var.scaling.memory
        }
        cpu_idle          = var.cpu_idle
        startup_cpu_boost = true
      }

      # ADR 0009: OTLP/gRPC to the sidecar, no TLS, no credentials.
      env {
        name  = "OTEL_EXPORTER_OTLP_ENDPOINT"
        value = "http://localhost:4317"
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      # Cloud Run routes requests to an instance only once its startup probe
      # passes (https://cloud.google.com/run/docs/configuring/healthchecks).
      # ingest and the dispatcher answer /ready with 503 until their warm-up
      # (a call on each client: queue, status store, verifier keys) has
      # succeeded, so the first request on a new instance finds warm
      # clients. The budget, period x failure_threshold = 120 s, covers a
      # warm-up retried with backoff through a passing outage (each attempt
      # is cut off after 10 s); past it Cloud Run shuts the instance down and
      # starts another. /health stays the liveness check.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 1
        failure_threshold = 60

        http_get {
          path = local.startup_probe_path
        }
      }

      dynamic "liveness_probe" {
        for_each = var.liveness_probe ? ["/health"] : []
        content {
          period_seconds    = 30
          timeout_seconds   = 2
          failure_threshold = 3

          http_get {
            path = liveness_probe.value
          }
        }
      }
    }

    # The collector sidecar. Its limits come on top of the application's:
    # memory_limiter in collector.yaml refuses data at 65 % of its memory,
    # so a burst costs telemetry, never the instance. No liveness probe on
    # purpose: a stuck collector must not restart an instance that serves
    # requests (ADR 0009: telemetry is best effort).
    #
    # Its CPU is a whole vCPU (variables.tf validates 1, 2, 4, 6 or 8):
    # Cloud Run enforces, for less than 1 vCPU, maximum concurrency 1,
    # request-based billing and the first generation execution environment
    # (https://cloud.google.com/run/docs/configuring/services/cpu; the API
    # accepts concurrency 1 only below 1 vCPU:
    # https://github.com/hashicorp/terraform-provider-google/issues/13361).
    # These services run gen2 with concurrency > 1, and ingest and
    # targetmock with instance-based billing, so a fractional sidecar would
    # fail the deploy. Memory: at least 512 MiB, the second generation's
    # minimum (https://cloud.google.com/run/docs/configuring/services/memory-limits).
    # cpu_idle and startup_cpu_boost are the same on both containers: CPU is
    # allocated for the instance's lifetime or only during requests, a
    # setting of the instance, not of one container
    # (https://cloud.google.com/run/docs/configuring/billing-settings), and
    # the provider shows a diff on every plan when startup_cpu_boost differs
    # between containers
    # (https://github.com/hashicorp/terraform-provider-google/issues/20784).
    containers {
      name  = "collector"
      image = var.collector.image
      args  = ["--config=${local.collector_config_dir}/${local.collector_config_file}"]

      resources {
        limits = {
          cpu    = var.collector.cpu
          memory = var.collector.memory
        }
        cpu_idle          = var.cpu_idle
        startup_cpu_boost = true
      }

      volume_mounts {
        name       = "collector-config"
        mount_path = local.collector_config_dir
      }

      # The health_check extension of collector.yaml; the application
      # container waits for it (depends_on above).
      startup_probe {
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 30

        http_get {
          path = "/"
          port = 13133
        }
      }
    }

    volumes {
      name = "collector-config"
      secret {
        secret = google_secret_manager_secret.collector_config.secret_id
        items {
          # A pinned version, never "latest": a configuration change rolls
          # out as a revision, and rolls back with one.
          version = google_secret_manager_secret_version.collector_config.version
          path    = local.collector_config_file
        }
      }
    }
  }

  lifecycle {
    # Terraform owns the infrastructure, the collector included; the
    # pipeline owns the application's release: it deploys images with
    # --no-traffic --tag and shifts traffic itself.
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
      traffic,
    ]
  }

  # A revision whose account cannot read the mounted secret is refused at
  # deployment: wait for the grant to propagate (above).
  depends_on = [terraform_data.collector_grant_propagated]
}

resource "google_cloud_run_v2_service_iam_member" "deployer_releases" {
  project  = var.project_id
  location = google_cloud_run_v2_service.this.location
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.developer"
  member   = "serviceAccount:${var.deployer_service_account}"
}
