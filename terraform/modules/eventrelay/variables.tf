# Inputs of the whole eventrelay system in one Google Cloud project.
# environments/dev and environments/prod set them; docs/deployment.md explains
# each group.

# ---------------------------------------------------------------- project

variable "project_id" {
  type        = string
  description = "Google Cloud project that holds the whole system (one project per environment)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid project ID (6-30 lowercase letters, digits or hyphens)."
  }
}

variable "environment" {
  type        = string
  description = "Environment name, used in labels, display names and alert titles."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "primary_region" {
  type        = string
  description = "Region of the primary stack (queue, ingest, dispatcher, targetmock, sourcemock, registry, build)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.primary_region))
    error_message = "primary_region must be a Google Cloud region such as europe-west1."
  }
}

variable "secondary_region" {
  type        = string
  description = "HA option: a second region with its own queue, ingest and dispatcher behind a global external Application Load Balancer (ADR 0006). null keeps one regional, multi-zone stack."
  default     = null

  validation {
    condition     = var.secondary_region == null || can(regex("^[a-z]+-[a-z]+[0-9]$", var.secondary_region))
    error_message = "secondary_region must be null or a Google Cloud region such as europe-west4."
  }
}

variable "secondary_region_serving" {
  type        = bool
  description = "HA option: put the secondary region's ingest behind the load balancer. Leave false until the pipeline has released into the secondary region: until then its ingest runs initial_image, which would answer 2xx to events it cannot relay (docs/deployment.md, \"Adding a region\")."
  default     = false
}

variable "ingest_domain" {
  type        = string
  description = "HA option: DNS name the source calls when secondary_region is set; the load balancer gets a Google-managed certificate for it. Ignored without secondary_region."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Terraform-side deletion protection of the Cloud Run services (prod: true). Firestore delete protection is always on."
  default     = true
}

# ---------------------------------------------------------------- images

variable "initial_image" {
  type        = string
  description = "Image every Cloud Run service starts with on the first apply. The pipeline owns the image afterwards (lifecycle.ignore_changes), so this only matters once."
  default     = "us-docker.pkg.dev/cloudrun/container/hello"

  validation {
    condition     = !endswith(var.initial_image, ":latest")
    error_message = "initial_image must not be tagged latest."
  }
}

# ---------------------------------------------------------------- target and queue

variable "target_rate_limit_per_second" {
  type        = number
  description = "The target's rate limit in calls per second: the INITIAL max_dispatches_per_second of the Cloud Tasks queues, split across regions when secondary_region is set, then equally across each region's queue_shards. Ops own the live values afterwards (ADR 0005)."

  validation {
    condition     = var.target_rate_limit_per_second > 0
    error_message = "target_rate_limit_per_second must be positive."
  }
}

variable "queue_shards" {
  type        = number
  description = "Cloud Tasks queues per region that share the region's part of the target's limit equally. One queue dispatches at most 500 tasks/s, so null (the default) takes ceil(region's part / 500). Shard 0 is queue_name, shard i queue_name-<i> (QUEUE_SHARDS). Raising it adds queues; lowering it is refused, because the queues have prevent_destroy (docs/deployment.md, \"Queue shards\")."
  default     = null

  validation {
    condition     = var.queue_shards == null || try(var.queue_shards >= 1 && floor(var.queue_shards) == var.queue_shards, false)
    error_message = "queue_shards must be null or a whole number, at least 1."
  }

  # One Cloud Tasks queue dispatches at most 500 tasks/s
  # (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits).
  validation {
    condition     = var.queue_shards == null || try(var.target_rate_limit_per_second / (var.secondary_region == null ? 1 : 2) / var.queue_shards <= 500, true)
    error_message = "queue_shards is too few: each queue would dispatch above 500/s, Cloud Tasks' maximum per queue. Leave it null to compute it."
  }
}

variable "target_max_concurrency" {
  type        = number
  description = "Calls the target may have in flight at once: the INITIAL max_concurrent_dispatches of the queue (split across regions). Ops own the live value afterwards (ADR 0005)."

  validation {
    condition     = var.target_max_concurrency >= 1 && var.target_max_concurrency <= 5000
    error_message = "target_max_concurrency must be between 1 and 5000."
  }
}

variable "queue_name" {
  type        = string
  description = "Cloud Tasks queue name (the same in every region; QUEUE_NAME)."
  default     = "events"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,100}$", var.queue_name))
    error_message = "queue_name may contain only letters, digits and hyphens (at most 100)."
  }
}

variable "queue_retry" {
  type = object({
    max_attempts               = number
    min_backoff_seconds        = number
    max_backoff_seconds        = number
    max_doublings              = number
    max_retry_duration_seconds = number
  })
  description = "Retry policy of delivery. The backoffs are the queue's (QUEUE_* of the queues and of the dispatcher); max_attempts and max_retry_duration_seconds are the dispatcher's budget (DELIVERY_*), after which it records dead_lettered. The queues themselves retry without limit, so only the dispatcher ends a task (ADR 0008, docs/lld/dispatcher.md)."
  default = {
    max_attempts               = 100
    min_backoff_seconds        = 1
    max_backoff_seconds        = 300
    max_doublings              = 16
    max_retry_duration_seconds = 0
  }

  validation {
    condition     = var.queue_retry.max_attempts >= 1
    error_message = "queue_retry.max_attempts must be at least 1: it is the dispatcher's budget, and unlimited (-1) would never dead-letter an event the target keeps failing."
  }

  validation {
    condition     = var.queue_retry.min_backoff_seconds > 0 && var.queue_retry.max_backoff_seconds >= var.queue_retry.min_backoff_seconds
    error_message = "queue_retry backoffs must satisfy 0 < min_backoff_seconds <= max_backoff_seconds."
  }

  validation {
    condition     = var.queue_retry.max_doublings >= 0 && var.queue_retry.max_retry_duration_seconds >= 0
    error_message = "queue_retry.max_doublings and max_retry_duration_seconds must not be negative."
  }
}

variable "governor_enabled" {
  type        = bool
  description = "Let the dispatcher's queue governor slow, pause and resume each region's queue when the target answers 429 (ADR 0010): sets QUEUE_GOVERNOR=on|off on the dispatcher and grants it cloudtasks.queueAdmin on its region's queue only (none when off). It never raises the rate above what ops or target_rate_limit_per_second set."
  default     = true
}

variable "queue_dispatch_deadline_seconds" {
  type        = number
  description = "Dispatch deadline of each task (QUEUE_DISPATCH_DEADLINE): how long Cloud Tasks waits for the dispatcher. Keep it above the dispatcher's TARGET_TIMEOUT."
  default     = 30

  validation {
    condition     = var.queue_dispatch_deadline_seconds >= 15 && var.queue_dispatch_deadline_seconds <= 1800
    error_message = "queue_dispatch_deadline_seconds must be between 15 and 1800 (Cloud Tasks' range for HTTP tasks)."
  }
}

variable "queue_log_sampling_ratio" {
  type        = number
  description = "Fraction of task operations Cloud Tasks writes to Cloud Logging (0 to 1)."
  default     = 1

  validation {
    condition     = var.queue_log_sampling_ratio >= 0 && var.queue_log_sampling_ratio <= 1
    error_message = "queue_log_sampling_ratio must be between 0 and 1."
  }
}

variable "target_url" {
  type        = string
  description = "GraphQL endpoint of the real target. null uses the targetmock service (targetmock_enabled must then be true)."
  default     = null

  validation {
    condition     = var.target_url == null || can(regex("^https://", var.target_url))
    error_message = "target_url must be an https URL or null."
  }

  validation {
    condition     = var.target_url != null || var.targetmock_enabled
    error_message = "Set target_url, or enable targetmock to stand in for the target."
  }
}

variable "target_timeout_seconds" {
  type        = number
  description = "Bound on one call to the target (TARGET_TIMEOUT). Must stay below queue_dispatch_deadline_seconds."
  default     = 10

  validation {
    condition     = var.target_timeout_seconds >= 1
    error_message = "target_timeout_seconds must be at least 1."
  }
}

variable "brand" {
  type        = string
  description = "Brand the dispatcher adds to every event (BRAND)."
  default     = "testBrand"

  validation {
    condition     = length(trimspace(var.brand)) > 0
    error_message = "brand must not be blank."
  }
}

# ---------------------------------------------------------------- targetmock

variable "targetmock_enabled" {
  type        = bool
  description = "Deploy targetmock, the stand-in for the target (dev). It runs as one instance so its limit is real."
  default     = false
}

variable "targetmock_rate_limit" {
  type = object({
    rate  = number
    burst = number
    mode  = string
  })
  description = "targetmock's own limit (TARGET_RATE, TARGET_BURST, TARGET_RATE_LIMIT_MODE): set rate below target_rate_limit_per_second to rehearse a target that lowered its limit."
  default = {
    rate  = 10
    burst = 1
    mode  = "http"
  }

  validation {
    condition     = var.targetmock_rate_limit.rate > 0 && var.targetmock_rate_limit.burst >= 1 && contains(["http", "graphql"], var.targetmock_rate_limit.mode)
    error_message = "targetmock_rate_limit needs rate > 0, burst >= 1 and mode http or graphql."
  }
}

# ---------------------------------------------------------------- ingest

variable "source_service_accounts" {
  type        = list(string)
  description = "Emails of the source application's service accounts: the only principals (with sourcemock and the smoke test) allowed to invoke ingest."

  validation {
    condition     = alltrue([for e in var.source_service_accounts : can(regex("^[a-z0-9-]+@[a-z0-9.-]+\\.iam\\.gserviceaccount\\.com$", e))])
    error_message = "source_service_accounts must be service account emails: no user, group or public principals."
  }
}

variable "ingest_audience" {
  type        = string
  description = "Audience the source puts in its ID token for ingest; set as a Cloud Run custom audience so the same token works on every region and behind the load balancer."
  default     = "https://ingest.eventrelay.internal"
}

variable "dispatcher_audience" {
  type        = string
  description = "Audience of the OIDC token Cloud Tasks attaches to each task; set as a Cloud Run custom audience of the dispatcher."
  default     = "https://dispatcher.eventrelay.internal"
}

variable "ingest_scaling" {
  type = object({
    min_instances = number
    max_instances = number
    concurrency   = number
    cpu           = string
    memory        = string
  })
  description = "ingest capacity. min_instances >= 1 keeps a warm instance so no cold start eats the source's 500 ms; concurrency bounds requests per instance."
  default = {
    min_instances = 1
    max_instances = 20
    concurrency   = 80
    cpu           = "1"
    memory        = "512Mi"
  }

  validation {
    condition     = var.ingest_scaling.min_instances >= 1 && var.ingest_scaling.max_instances >= var.ingest_scaling.min_instances
    error_message = "ingest_scaling.min_instances must be at least 1 (no cold start inside the 500 ms budget) and max_instances at least min_instances."
  }

  validation {
    condition     = var.ingest_scaling.concurrency >= 1 && var.ingest_scaling.concurrency <= 1000
    error_message = "ingest_scaling.concurrency must be between 1 and 1000."
  }
}

variable "dispatcher_scaling" {
  type = object({
    min_instances = number
    max_instances = number
    concurrency   = number
    cpu           = string
    memory        = string
  })
  description = "dispatcher capacity. Each request waits on the target for up to target_timeout_seconds, so instances x concurrency must cover target_max_concurrency. The rate governor runs in the dispatcher (ADR 0010), so min_instances >= 1 while it is on."
  default = {
    min_instances = 1
    max_instances = 10
    concurrency   = 80
    cpu           = "1"
    memory        = "512Mi"
  }

  validation {
    condition     = var.dispatcher_scaling.min_instances >= 0 && var.dispatcher_scaling.max_instances >= 1 && var.dispatcher_scaling.concurrency >= 1
    error_message = "dispatcher_scaling needs min_instances >= 0, max_instances >= 1 and concurrency >= 1."
  }

  validation {
    condition     = !var.governor_enabled || var.dispatcher_scaling.min_instances >= 1
    error_message = "dispatcher_scaling.min_instances must be at least 1 while governor_enabled is true: the rate governor runs in the dispatcher (ADR 0010)."
  }
}

# ---------------------------------------------------------------- sourcemock

variable "sourcemock_enabled" {
  type        = bool
  description = "Deploy sourcemock as a Cloud Function (gen 2) built from its Functions Framework entry point (dev)."
  default     = false
}

variable "sourcemock_source_object" {
  type        = string
  description = "Object in the sources bucket holding the function's first source zip (make function-zip). The pipeline owns later releases (lifecycle.ignore_changes)."
  default     = "sourcemock/bootstrap.zip"
}

variable "sourcemock_runtime" {
  type        = string
  description = "Cloud Functions Go runtime; must support go.mod's go directive (go 1.26)."
  default     = "go126"

  validation {
    condition     = can(regex("^go1[0-9]+$", var.sourcemock_runtime))
    error_message = "sourcemock_runtime must be a Go runtime id such as go126."
  }
}

variable "sourcemock_schedule" {
  type = object({
    cron      = string
    time_zone = string
    count     = number
    rate      = number
    paused    = bool
  })
  description = "Optional Cloud Scheduler job that invokes sourcemock with {count, rate}. null creates no job."
  default     = null

  validation {
    condition     = var.sourcemock_schedule == null || try(var.sourcemock_schedule.count >= 1 && var.sourcemock_schedule.rate > 0, false)
    error_message = "sourcemock_schedule needs count >= 1 and rate > 0."
  }
}

# ---------------------------------------------------------------- telemetry

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every service."
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "trace_sample_ratio" {
  type        = number
  description = "TRACE_SAMPLE_RATIO of every service (parent-based)."
  default     = 1

  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio must be between 0 and 1."
  }
}

variable "otel_collector" {
  type = object({
    image  = string
    cpu    = string
    memory = string
  })
  description = "The OpenTelemetry Collector sidecar of every Cloud Run service (ADR 0009, docs/observability.md): the Google-built Collector image pinned to a version tag or digest (Terraform owns it; change it here to upgrade), and the sidecar's own CPU and memory limits, which come on top of each service's."
  default = {
    image = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.143.0"
    # A whole vCPU: Cloud Run accepts less than 1 vCPU only with concurrency
    # 1, request-based billing and the first generation execution
    # environment (https://cloud.google.com/run/docs/configuring/services/cpu),
    # and every service here runs gen2 with concurrency > 1. 512Mi is the
    # second generation's minimum
    # (https://cloud.google.com/run/docs/configuring/services/memory-limits).
    cpu    = "1"
    memory = "512Mi"
  }

  validation {
    condition     = can(regex("(:[0-9]+\\.[0-9]+\\.[0-9]+|@sha256:[0-9a-f]{64})$", var.otel_collector.image))
    error_message = "otel_collector.image must be pinned to a version tag (x.y.z) or a sha256 digest, never latest."
  }

  validation {
    condition     = contains(["1", "2", "4", "6", "8"], var.otel_collector.cpu)
    error_message = "otel_collector.cpu must be 1, 2, 4, 6 or 8: Cloud Run refuses a fractional vCPU on a second generation service with concurrency > 1 or CPU always allocated."
  }

  validation {
    condition = can(regex("^[0-9]+(Mi|Gi)$", var.otel_collector.memory)) && try(
      (endswith(var.otel_collector.memory, "Gi") ? tonumber(trimsuffix(var.otel_collector.memory, "Gi")) * 1024 : tonumber(trimsuffix(var.otel_collector.memory, "Mi"))) >= 512,
    false)
    error_message = "otel_collector.memory must be at least 512Mi (the second generation execution environment's minimum), written in Mi or Gi."
  }
}

# ---------------------------------------------------------------- alerting

variable "notification_channels" {
  type        = list(string)
  description = "Monitoring notification channel IDs (projects/P/notificationChannels/N) every alert notifies."
  default     = []
}

variable "playbook_base_url" {
  type        = string
  description = "URL of docs/playbooks in the repository browser; each alert's documentation links <base>/<alert>.md."

  validation {
    condition     = can(regex("^https://.+/docs/playbooks$", var.playbook_base_url))
    error_message = "playbook_base_url must be an https URL ending in /docs/playbooks."
  }
}

variable "alert_thresholds" {
  type = object({
    ingest_p99_ms            = number
    ingest_5xx_ratio         = number
    backlog_age_seconds      = number
    rate_limited_ratio       = number
    rate_limited_min_per_sec = number
  })
  description = "Alert thresholds: ingest p99 near the 500 ms budget, ingest 5xx ratio, oldest-task age the target can no longer drain in time, and the share of dispatch attempts the target answers 429."
  default = {
    ingest_p99_ms            = 400
    ingest_5xx_ratio         = 0.01
    backlog_age_seconds      = 900
    rate_limited_ratio       = 0.2
    rate_limited_min_per_sec = 1
  }

  validation {
    condition     = var.alert_thresholds.ingest_p99_ms > 0 && var.alert_thresholds.ingest_p99_ms < 500
    error_message = "alert_thresholds.ingest_p99_ms must be below the source's 500 ms budget."
  }
}

# ---------------------------------------------------------------- CI/CD

variable "cicd" {
  type = object({
    github_owner     = string
    github_repo      = string
    deploy_branch    = string
    require_approval = bool
  })
  description = "Cloud Build triggers on the GitHub repository (the Cloud Build GitHub App must be installed on it first). null creates no trigger."
  default     = null
}

variable "firestore_location" {
  type        = string
  description = "Firestore location: a multi-region (eur3, nam5) for the 99.999% SLA in prod, or the primary region in dev."

  validation {
    condition     = length(var.firestore_location) > 0
    error_message = "firestore_location must not be empty."
  }
}

variable "extra_env" {
  type = object({
    ingest     = map(string)
    dispatcher = map(string)
  })
  description = "Extra environment variables per service, applied last (override a name from the configuration contract in docs/deployment.md without editing the module)."
  default = {
    ingest     = {}
    dispatcher = {}
  }
}
