# The whole eventrelay system in one project: APIs, identities, the artifact
# registry, Firestore, one regional stack per region, the optional global load
# balancer, sourcemock, monitoring and the Cloud Build triggers.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # One regional stack by default; a second one when the HA option is on.
  regions = var.secondary_region == null ? [var.primary_region] : [var.primary_region, var.secondary_region]

  # ADR 0006: each region has its own queue and a share of the target's
  # limit, so the regions together never exceed it.
  region_count             = length(local.regions)
  regional_dispatch_rate   = var.target_rate_limit_per_second / local.region_count
  regional_max_concurrency = max(1, floor(var.target_max_concurrency / local.region_count))

  # Each region spreads its share over queue_shards queues, because one
  # Cloud Tasks queue dispatches at most 500 tasks/s ("The maximum allowed
  # value is 500",
  # https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits).
  queue_shards = coalesce(var.queue_shards, ceil(local.regional_dispatch_rate / 500))

  labels = {
    app = "eventrelay"
    env = var.environment
  }

  # The release's smoke test sends events all the way to the target only
  # when the target is targetmock; against a real target it sends nothing
  # that could reach it (ADR 0012, SMOKE_MODE).
  smoke_delivers = var.targetmock_enabled && var.target_url == null

  apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "cloudtrace.googleapis.com",
    "compute.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
    "telemetry.googleapis.com",
  ])
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project = var.project_id
  service = each.value

  # Destroying this configuration must never switch an API off under other
  # workloads in the project.
  disable_on_destroy         = false
  disable_dependent_services = false
}

# ---------------------------------------------------------------- registry and sources

resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.primary_region
  repository_id = "eventrelay"
  format        = "DOCKER"
  description   = "eventrelay service images, tagged with the commit SHA by Cloud Build."
  labels        = local.labels

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 30
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

# The sourcemock function's images, built by Cloud Functions (gen 2) with
# eventrelay-fn-builder. Separate from `images` because its tags must be
# mutable: every build of the function pushes its buildpack cache image
# under the same tag, `latest` (<function>/cache:latest,
# https://github.com/firebase/firebase-tools/issues/5935), and a repository
# with immutable tags refuses a push with a tag another image already has,
# latest included
# (https://cloud.google.com/artifact-registry/docs/repositories/update-repo-settings).
# The function's docker_repository must be in its project and region
# (https://cloud.google.com/functions/docs/reference/rest/v2/projects.locations.functions#buildconfig).
# Nothing here is a release artefact: the pipeline rebuilds the function
# from its source zip, so a few recent versions are enough.
resource "google_artifact_registry_repository" "function_images" {
  project       = var.project_id
  location      = var.primary_region
  repository_id = "eventrelay-functions"
  format        = "DOCKER"
  description   = "Images Cloud Functions builds for sourcemock (mutable tags: each build moves its cache tag)."
  labels        = local.labels

  docker_config {
    immutable_tags = false
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"

    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"

    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

# Function source zips (sourcemock) uploaded by the pipeline, one per
# commit; a rollback redeploys an older one. Versioned, so an overwrite or a
# deletion by mistake can be undone (trivy GCP-0078,
# https://cloud.google.com/storage/docs/object-versioning). With versioning
# the 30-day rule below makes a zip noncurrent instead of removing it; the
# second rule removes noncurrent versions 7 days later
# (https://cloud.google.com/storage/docs/lifecycle, daysSinceNoncurrentTime).
resource "google_storage_bucket" "sources" {
  project                     = var.project_id
  name                        = "${var.project_id}-eventrelay-sources"
  location                    = var.primary_region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- Firestore

module "firestore" {
  source = "../firestore"

  project_id = var.project_id
  location   = var.firestore_location

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- regional stacks

module "region" {
  source   = "../region"
  for_each = toset(local.regions)

  project_id          = var.project_id
  region              = each.value
  labels              = local.labels
  image               = var.initial_image
  deletion_protection = var.deletion_protection

  queue = {
    name                       = var.queue_name
    shards                     = local.queue_shards
    max_dispatches_per_second  = local.regional_dispatch_rate
    max_concurrent_dispatches  = local.regional_max_concurrency
    max_attempts               = var.queue_retry.max_attempts
    min_backoff_seconds        = var.queue_retry.min_backoff_seconds
    max_backoff_seconds        = var.queue_retry.max_backoff_seconds
    max_doublings              = var.queue_retry.max_doublings
    max_retry_duration_seconds = var.queue_retry.max_retry_duration_seconds
    dispatch_deadline_seconds  = var.queue_dispatch_deadline_seconds
    log_sampling_ratio         = var.queue_log_sampling_ratio
  }

  ingest_service_account        = google_service_account.runtime["ingest"].email
  dispatcher_service_account    = google_service_account.runtime["dispatcher"].email
  tasks_invoker_service_account = google_service_account.tasks_invoker.email
  deployer_service_account      = google_service_account.build.email
  project_number                = data.google_project.this.number

  # Keys are known at plan time; the emails of new accounts are not.
  ingest_invokers = merge(
    { for e in var.source_service_accounts : e => "serviceAccount:${e}" },
    { smoke = "serviceAccount:${google_service_account.smoke.email}" },
    { for k, sa in google_service_account.runtime : k => "serviceAccount:${sa.email}" if k == "sourcemock" && var.sourcemock_enabled },
  )
  ingest_audience     = var.ingest_audience
  dispatcher_audience = var.dispatcher_audience
  ingest_scaling      = var.ingest_scaling
  dispatcher_scaling  = var.dispatcher_scaling

  firestore_database     = module.firestore.database_name
  target_url             = local.target_url
  target_timeout_seconds = var.target_timeout_seconds
  brand                  = var.brand
  governor_enabled       = var.governor_enabled

  log_level          = var.log_level
  trace_sample_ratio = var.trace_sample_ratio
  extra_env          = var.extra_env
  otel_collector     = var.otel_collector

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- HA: global load balancer

module "ingest_lb" {
  source = "../ingest_lb"
  count  = var.secondary_region == null ? 0 : 1

  project_id = var.project_id
  domain     = var.ingest_domain
  labels     = local.labels
  # A region's ingest joins the load balancer only once it runs a real
  # release: a new region starts on initial_image, which answers 2xx to
  # anything, and an event acked there would be lost.
  backends = {
    for r in local.regions : r => module.region[r].ingest_service_name
    if r == var.primary_region || var.secondary_region_serving
  }

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- sourcemock

module "sourcemock" {
  source = "../sourcemock"
  count  = var.sourcemock_enabled ? 1 : 0

  project_id                = var.project_id
  region                    = var.primary_region
  labels                    = local.labels
  source_bucket             = google_storage_bucket.sources.name
  source_object             = var.sourcemock_source_object
  runtime                   = var.sourcemock_runtime
  service_account           = google_service_account.runtime["sourcemock"].email
  build_service_account     = google_service_account.function_builder.id
  docker_repository         = google_artifact_registry_repository.function_images.id
  ingest_url                = var.secondary_region == null ? module.region[var.primary_region].ingest_uri : "https://${var.ingest_domain}"
  ingest_audience           = var.ingest_audience
  schedule                  = var.sourcemock_schedule
  scheduler_service_account = google_service_account.scheduler.email
  deployer_service_account  = google_service_account.build.email
  log_level                 = var.log_level

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- monitoring

module "monitoring" {
  source = "../monitoring"

  project_id            = var.project_id
  environment           = var.environment
  queue_name            = var.queue_name
  regions               = local.regions
  ingest_service        = "ingest"
  dispatcher_service    = "dispatcher"
  target_rate_per_sec   = var.target_rate_limit_per_second
  thresholds            = var.alert_thresholds
  notification_channels = var.notification_channels
  playbook_base_url     = var.playbook_base_url

  depends_on = [google_project_service.apis]
}

# ---------------------------------------------------------------- CI/CD

module "cicd" {
  source = "../cicd"
  count  = var.cicd == null ? 0 : 1

  project_id         = var.project_id
  environment        = var.environment
  github_owner       = var.cicd.github_owner
  github_repo        = var.cicd.github_repo
  deploy_branch      = var.cicd.deploy_branch
  require_approval   = var.cicd.require_approval
  service_account    = google_service_account.build.id
  pr_service_account = google_service_account.ci.id

  substitutions = {
    _ENV                = var.environment
    _REGION             = var.primary_region
    _REGIONS            = join(",", local.regions)
    _REPOSITORY         = "${var.primary_region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
    _SOURCES_BUCKET     = google_storage_bucket.sources.name
    _TF_SA              = google_service_account.terraform.email
    _SMOKE_SA           = google_service_account.smoke.email
    _SMOKE_MODE         = local.smoke_delivers ? "delivery" : "no-target"
    _INGEST_AUDIENCE    = var.ingest_audience
    _FIRESTORE_DATABASE = module.firestore.database_name
    _TARGETMOCK         = var.targetmock_enabled ? "true" : "false"
    _SOURCEMOCK         = var.sourcemock_enabled ? "true" : "false"
    _SOURCEMOCK_RUNTIME = var.sourcemock_runtime
    _TF_STATE_BUCKET    = "${var.project_id}-tfstate"
  }

  depends_on = [google_project_service.apis]
}
