# prod: the real target and source, Firestore multi-region, deletion
# protection, approval before every deploying build, the HA option ready.

module "eventrelay" {
  source = "../../modules/eventrelay"

  project_id       = var.project_id
  environment      = "prod"
  primary_region   = var.primary_region
  secondary_region = var.secondary_region
  # true only after the pipeline released into secondary_region
  # (docs/deployment.md, "Adding a region").
  secondary_region_serving = var.secondary_region_serving
  ingest_domain            = var.ingest_domain
  firestore_location       = var.firestore_location
  deletion_protection      = true

  target_url                   = var.target_url
  target_rate_limit_per_second = var.target_rate_limit_per_second
  target_max_concurrency       = var.target_max_concurrency
  queue_shards                 = var.queue_shards
  targetmock_enabled           = false

  queue_retry = {
    max_attempts               = 100
    min_backoff_seconds        = 1
    max_backoff_seconds        = 300
    max_doublings              = 16
    max_retry_duration_seconds = 0
  }
  queue_log_sampling_ratio = 0.1

  source_service_accounts = var.source_service_accounts

  ingest_scaling = {
    min_instances = 2
    max_instances = 50
    concurrency   = 80
    cpu           = "1"
    memory        = "512Mi"
  }
  dispatcher_scaling = {
    min_instances = 1
    max_instances = 20
    concurrency   = 80
    cpu           = "1"
    memory        = "512Mi"
  }

  sourcemock_enabled = false

  log_level             = "info"
  trace_sample_ratio    = 0.1
  notification_channels = var.notification_channels
  playbook_base_url     = "https://github.com/${var.github_owner}/${var.github_repo}/blob/main/docs/playbooks"

  cicd = {
    github_owner     = var.github_owner
    github_repo      = var.github_repo
    deploy_branch    = "^main$"
    require_approval = true
  }
}
