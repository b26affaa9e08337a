variable "project_id" {
  type        = string
  description = "Project of the regional stack."
}

variable "region" {
  type        = string
  description = "Region of this stack's queue and services."
}

variable "labels" {
  type        = map(string)
  description = "Labels on every resource."
}

variable "image" {
  type        = string
  description = "Image of the first revision; the pipeline owns it afterwards."
}

variable "deletion_protection" {
  type        = bool
  description = "Terraform-side deletion protection of the Cloud Run services."
}

variable "queue" {
  type = object({
    name                       = string
    shards                     = number
    max_dispatches_per_second  = number
    max_concurrent_dispatches  = number
    max_attempts               = number
    min_backoff_seconds        = number
    max_backoff_seconds        = number
    max_doublings              = number
    max_retry_duration_seconds = number
    dispatch_deadline_seconds  = number
    log_sampling_ratio         = number
  })
  description = "This region's queues: the base name, the number of shards (queues named as queue.ShardName names them), the region's share of the target's limit and concurrency that the shards split equally (initial values, ADR 0005), the backoff the queue and the dispatcher share, and the dispatcher's delivery budget (max_attempts, max_retry_duration_seconds: DELIVERY_*; the queue itself retries without limit, ADR 0008)."

  validation {
    condition     = var.queue.shards >= 1 && floor(var.queue.shards) == var.queue.shards
    error_message = "queue.shards must be a whole number, at least 1."
  }

  # One Cloud Tasks queue dispatches at most 500 tasks/s
  # (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits).
  validation {
    condition     = var.queue.max_dispatches_per_second > 0 && var.queue.max_dispatches_per_second / var.queue.shards <= 500
    error_message = "queue.max_dispatches_per_second must be positive, and at most 500 per shard (Cloud Tasks' maximum per queue): raise queue.shards."
  }
}

variable "ingest_service_account" {
  type        = string
  description = "Email of ingest's own service account."
}

variable "dispatcher_service_account" {
  type        = string
  description = "Email of the dispatcher's own service account."
}

variable "tasks_invoker_service_account" {
  type        = string
  description = "Email of the account Cloud Tasks signs task OIDC tokens as: the dispatcher's only invoker."
}

variable "project_number" {
  type        = string
  description = "The project's number: Cloud Run's deterministic service URL (https://NAME-NUMBER.REGION.run.app) is built from it, so the dispatcher can know its own task URL without depending on itself."
}

variable "deployer_service_account" {
  type        = string
  description = "Email of the pipeline's account, which deploys revisions and shifts traffic."
}

variable "ingest_invokers" {
  type        = map(string)
  description = "IAM members allowed to invoke ingest, by a key known at plan time: the source's service accounts only."

  validation {
    condition     = alltrue([for m in values(var.ingest_invokers) : startswith(m, "serviceAccount:")])
    error_message = "ingest_invokers may contain only serviceAccount: members."
  }
}

variable "ingest_audience" {
  type        = string
  description = "Custom audience of ingest (the source's ID token audience)."
}

variable "dispatcher_audience" {
  type        = string
  description = "Custom audience of the dispatcher (the task OIDC token audience)."
}

variable "ingest_scaling" {
  type = object({
    min_instances = number
    max_instances = number
    concurrency   = number
    cpu           = string
    memory        = string
  })
  description = "ingest capacity (min_instances >= 1)."

  validation {
    condition     = var.ingest_scaling.min_instances >= 1
    error_message = "ingest needs at least one warm instance."
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
  description = "dispatcher capacity (min_instances >= 1 while the governor is on)."

  # The governor runs in the dispatcher's instances (ADR 0010): with none
  # warm, nothing watches the queue while it is idle or paused.
  validation {
    condition     = !var.governor_enabled || var.dispatcher_scaling.min_instances >= 1
    error_message = "dispatcher_scaling.min_instances must be at least 1 while governor_enabled is true: the rate governor runs in the dispatcher."
  }
}

variable "governor_enabled" {
  type        = bool
  description = "Run the dispatcher's queue governor (QUEUE_GOVERNOR=on) and let the dispatcher administer this queue (ADR 0010)."
}

variable "firestore_database" {
  type        = string
  description = "Firestore database holding the status records."
}

variable "target_url" {
  type        = string
  description = "GraphQL endpoint the dispatcher calls (TARGET_URL)."

  validation {
    condition     = var.target_url != null
    error_message = "target_url is required."
  }
}

variable "target_timeout_seconds" {
  type        = number
  description = "TARGET_TIMEOUT in seconds."
}

variable "brand" {
  type        = string
  description = "BRAND the dispatcher adds."
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL."
}

variable "trace_sample_ratio" {
  type        = number
  description = "TRACE_SAMPLE_RATIO."
}

variable "extra_env" {
  type = object({
    ingest     = map(string)
    dispatcher = map(string)
  })
  description = "Extra environment variables per service, merged last."
}

variable "otel_collector" {
  type = object({
    image  = string
    cpu    = string
    memory = string
  })
  description = "The OpenTelemetry Collector sidecar of ingest and the dispatcher (ADR 0009): pinned image and its own limits."
}
