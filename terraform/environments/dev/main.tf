# dev: one region, the mocks on both sides, a small target limit, no approval.

module "eventrelay" {
  source = "../../modules/eventrelay"

  project_id          = var.project_id
  environment         = "dev"
  primary_region      = var.primary_region
  firestore_location  = var.primary_region
  deletion_protection = false

  # The stand-in target and its limit (make run uses the same numbers).
  target_rate_limit_per_second = 10
  target_max_concurrency       = 20
  queue_shards                 = var.queue_shards
  targetmock_enabled           = true
  targetmock_rate_limit = {
    rate  = 10
    burst = 1
    mode  = "http"
  }

  # A short retry budget so dead-lettering is quick to rehearse.
  queue_retry = {
    max_attempts               = 10
    min_backoff_seconds        = 1
    max_backoff_seconds        = 60
    max_doublings              = 16
    max_retry_duration_seconds = 0
  }
  queue_log_sampling_ratio = 1

  source_service_accounts = var.source_service_accounts

  ingest_scaling = {
    min_instances = 1
    max_instances = 5
    concurrency   = 80
    cpu           = "1"
    memory        = "512Mi"
  }

  sourcemock_enabled = true
  sourcemock_schedule = {
    cron      = "*/15 * * * *"
    time_zone = "Etc/UTC"
    count     = 600
    rate      = 20
    paused    = true
  }

  log_level             = "debug"
  trace_sample_ratio    = 1
  notification_channels = var.notification_channels
  playbook_base_url     = "https://github.com/${coalesce(var.github_owner, "OWNER")}/${var.github_repo}/blob/main/docs/playbooks"

  cicd = var.github_owner == null ? null : {
    github_owner     = var.github_owner
    github_repo      = var.github_repo
    deploy_branch    = "^main$"
    require_approval = false
  }
}
