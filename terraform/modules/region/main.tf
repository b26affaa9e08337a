# One regional stack: the Cloud Tasks queues (one, or several shards above
# 500/s), ingest and the dispatcher, with the IAM bindings each needs, all on
# the resources themselves. Both services
# are modules/service: a Cloud Run service with its OpenTelemetry Collector
# sidecar (ADR 0009).
#
# Cloud Run is regional and spreads instances over the region's zones, so one
# stack already survives the loss of a zone. A second stack in another region
# is the HA option (ADR 0006).

locals {
  common_env = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    LOG_LEVEL            = var.log_level
    TRACE_SAMPLE_RATIO   = tostring(var.trace_sample_ratio)
  }

  # The region's share of the target's limit is spread over
  # var.queue.shards queues, because one Cloud Tasks queue dispatches at most
  # 500 tasks/s ("The maximum allowed value is 500",
  # https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#ratelimits).
  # Shard i is named as queue.ShardName names it: shard 0 keeps the base
  # name (a region created with one queue keeps it), the others base-<i>.
  queue_names = [for i in range(var.queue.shards) : i == 0 ? var.queue.name : "${var.queue.name}-${i}"]

  # Each shard takes an equal part, so the shards together dispatch at
  # exactly the region's share. Cloud Tasks adds a burst derived from the
  # rate that no one can set (max_burst_size is output only), so a shard
  # whose bucket filled while it was idle can send rate + burst in its first
  # second: docs/adr/0005-queue-rate-owned-by-ops.md, "Amendment".
  shard_dispatch_rate   = var.queue.max_dispatches_per_second / var.queue.shards
  shard_max_concurrency = max(1, floor(var.queue.max_concurrent_dispatches / var.queue.shards))

  # The queue's retry policy: its backoff, and no limit on attempts, so
  # the queue never drops a task (ADR 0008). QUEUE_NAME is the base name;
  # the services derive the shards' names from it and QUEUE_SHARDS.
  retry_env = {
    QUEUE_NAME               = var.queue.name
    QUEUE_SHARDS             = tostring(var.queue.shards)
    QUEUE_DISPATCH_DEADLINE  = "${var.queue.dispatch_deadline_seconds}s"
    QUEUE_MAX_ATTEMPTS       = "-1"
    QUEUE_MIN_BACKOFF        = "${var.queue.min_backoff_seconds}s"
    QUEUE_MAX_BACKOFF        = "${var.queue.max_backoff_seconds}s"
    QUEUE_MAX_DOUBLINGS      = tostring(var.queue.max_doublings)
    QUEUE_MAX_RETRY_DURATION = "0s"
  }

  # The delivery budget: var.queue's max_attempts and
  # max_retry_duration_seconds are the dispatcher's, which dead-letters the
  # event on the attempt that reaches them (ADR 0008).
  delivery_env = {
    DELIVERY_MAX_ATTEMPTS       = tostring(var.queue.max_attempts)
    DELIVERY_MAX_RETRY_DURATION = "${var.queue.max_retry_duration_seconds}s"
  }

  # The GCP engines (docs/deployment.md, "Configuration contract").
  engine_env = {
    QUEUE_ENGINE       = "cloudtasks"
    STATUS_ENGINE      = "firestore"
    QUEUE_LOCATION     = var.region
    FIRESTORE_DATABASE = var.firestore_database
  }

  # Google-signed ID tokens (internal/auth, docs/security.md). Both
  # services require authentication in Cloud Run, whose IAM invoker check
  # verifies the signature and forwards the token with it removed, so the
  # services check the claims: issuer, audience, expiry, allowed email.
  google_auth_env = {
    AUTH_MODE                = "google"
    AUTH_TRUST_CLOUD_RUN_IAM = "true"
  }

  ingest_env = merge(
    local.common_env,
    local.retry_env,
    local.engine_env,
    local.google_auth_env,
    {
      OTEL_SERVICE_NAME     = "ingest"
      AUTH_AUDIENCE         = var.ingest_audience
      AUTH_ALLOWED_EMAILS   = join(",", [for m in values(var.ingest_invokers) : trimprefix(m, "serviceAccount:")])
      ENQUEUE_TIMEOUT       = "250ms"
      STATUS_TIMEOUT        = "100ms"
      DISPATCH_URL          = "${module.dispatcher.uri}/tasks/events"
      DISPATCH_AUDIENCE     = var.dispatcher_audience
      TASKS_SERVICE_ACCOUNT = var.tasks_invoker_service_account
    },
    var.extra_env.ingest,
  )

  dispatcher_env = merge(
    local.common_env,
    local.retry_env,
    local.delivery_env,
    local.engine_env,
    local.google_auth_env,
    {
      OTEL_SERVICE_NAME   = "dispatcher"
      AUTH_AUDIENCE       = var.dispatcher_audience
      AUTH_ALLOWED_EMAILS = var.tasks_invoker_service_account
      BRAND               = var.brand
      TARGET_URL          = var.target_url
      TARGET_TIMEOUT      = "${var.target_timeout_seconds}s"
      QUEUE_GOVERNOR      = var.governor_enabled ? "on" : "off"
      # Requeue (a last attempt rate limited, or the status store down on
      # it) and the governor enqueue into the same queue as ingest, as the
      # same tasks identity. module.dispatcher.uri would be a cycle: Cloud
      # Run's deterministic URL is used instead.
      DISPATCH_URL          = "https://dispatcher-${var.project_number}.${var.region}.run.app/tasks/events"
      DISPATCH_AUDIENCE     = var.dispatcher_audience
      TASKS_SERVICE_ACCOUNT = var.tasks_invoker_service_account
    },
    var.extra_env.dispatcher,
  )
}

# ---------------------------------------------------------------- queue

resource "google_cloud_tasks_queue" "events" {
  count = var.queue.shards

  project  = var.project_id
  name     = local.queue_names[count.index]
  location = var.region

  rate_limits {
    # This shard's part of the region's share of the target's limit.
    # Initial values only: ops change them when the target's limit changes,
    # and `terraform apply` must not undo that (ADR 0005, ignore_changes
    # below).
    max_dispatches_per_second = local.shard_dispatch_rate
    max_concurrent_dispatches = local.shard_max_concurrency
  }

  retry_config {
    # Unlimited attempts and no max_retry_duration: the queue never drops
    # a task, whatever the dispatcher (or Cloud Run's front end) answered
    # on its last attempt. The dispatcher owns the budget (DELIVERY_*,
    # local.delivery_env) and dead-letters on the attempt that spends it
    # (ADR 0008). The backoff is shared (QUEUE_*, local.retry_env).
    max_attempts  = -1
    min_backoff   = "${var.queue.min_backoff_seconds}s"
    max_backoff   = "${var.queue.max_backoff_seconds}s"
    max_doublings = var.queue.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = var.queue.log_sampling_ratio
  }

  lifecycle {
    # ADR 0005: ops own the live rate; the variables are the initial value.
    ignore_changes = [
      rate_limits[0].max_dispatches_per_second,
      rate_limits[0].max_concurrent_dispatches,
    ]
    # Deleting a queue loses its tasks and blocks the name for days. Fewer
    # shards is therefore refused too: drain and remove a shard by hand.
    prevent_destroy = true
  }
}

# Every binding below is made on each shard: ingest enqueues into any of
# them (the event id's hash picks one), and the dispatcher requeues into,
# inspects and governs the shard a task came from.

resource "google_cloud_tasks_queue_iam_member" "ingest_enqueues" {
  count = var.queue.shards

  project  = var.project_id
  location = google_cloud_tasks_queue.events[count.index].location
  name     = google_cloud_tasks_queue.events[count.index].name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${var.ingest_service_account}"
}

# The dispatcher requeues an event whose last attempt was rate limited or
# met a status store outage (ADR 0008, ADR 0010) into its shard.
resource "google_cloud_tasks_queue_iam_member" "dispatcher_requeues" {
  count = var.queue.shards

  project  = var.project_id
  location = google_cloud_tasks_queue.events[count.index].location
  name     = google_cloud_tasks_queue.events[count.index].name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${var.dispatcher_service_account}"
}

# Backlog and oldest-task age (eventrelay.queue.backlog, .oldest_age) are
# read from the queues themselves.
resource "google_cloud_tasks_queue_iam_member" "ingest_reads_queue" {
  count = var.queue.shards

  project  = var.project_id
  location = google_cloud_tasks_queue.events[count.index].location
  name     = google_cloud_tasks_queue.events[count.index].name
  role     = "roles/cloudtasks.viewer"
  member   = "serviceAccount:${var.ingest_service_account}"
}

# The dispatcher's reconciler asks whether a record's task is still queued
# (GetTask, cloudtasks.tasks.get). Neither enqueuer (tasks.create,
# tasks.fullView) nor queueAdmin (queues.*) holds that permission; viewer
# ("get and list access to tasks, queues, and locations") does
# (https://cloud.google.com/iam/docs/roles-permissions/cloudtasks).
resource "google_cloud_tasks_queue_iam_member" "dispatcher_reads_queue" {
  count = var.queue.shards

  project  = var.project_id
  location = google_cloud_tasks_queue.events[count.index].location
  name     = google_cloud_tasks_queue.events[count.index].name
  role     = "roles/cloudtasks.viewer"
  member   = "serviceAccount:${var.dispatcher_service_account}"
}

# The dispatcher's queue governor (ADR 0010) slows the queues when the
# target answers 429 (UpdateQueue on rate_limits.max_dispatches_per_second)
# and pauses and resumes them. On this region's shards only, and only while
# it is on. The rate is in ignore_changes above (ADR 0005), so what the
# governor or ops set survives the next apply.
resource "google_cloud_tasks_queue_iam_member" "dispatcher_governs_queue" {
  count = var.governor_enabled ? var.queue.shards : 0

  project  = var.project_id
  location = google_cloud_tasks_queue.events[count.index].location
  name     = google_cloud_tasks_queue.events[count.index].name
  role     = "roles/cloudtasks.queueAdmin"
  member   = "serviceAccount:${var.dispatcher_service_account}"
}

# ---------------------------------------------------------------- ingest

module "ingest" {
  source = "../service"

  project_id          = var.project_id
  region              = var.region
  name                = "ingest"
  description         = "POST /events for the source application: authenticate, validate, enqueue, 202."
  labels              = var.labels
  deletion_protection = var.deletion_protection

  ingress          = "INGRESS_TRAFFIC_ALL"
  custom_audiences = [var.ingest_audience]

  service_account          = var.ingest_service_account
  deployer_service_account = var.deployer_service_account
  image                    = var.image

  # The source gives up after 500 ms; ingest bounds its own work well below
  # that (ENQUEUE_TIMEOUT). This only cuts off a stuck request.
  request_timeout = "10s"
  # A warm instance always: a cold start would eat the 500 ms budget
  # (var.ingest_scaling validates min_instances >= 1).
  scaling = var.ingest_scaling
  # CPU stays allocated between requests: the status write after the 202
  # and the telemetry exporters run outside a request's lifetime.
  cpu_idle       = false
  env            = local.ingest_env
  liveness_probe = true
  collector      = var.otel_collector
}

# Only the source's service accounts may call ingest.
resource "google_cloud_run_v2_service_iam_member" "ingest_invokers" {
  for_each = var.ingest_invokers

  project  = var.project_id
  location = module.ingest.location
  name     = module.ingest.name
  role     = "roles/run.invoker"
  member   = each.value
}

# ---------------------------------------------------------------- dispatcher

module "dispatcher" {
  source = "../service"

  project_id          = var.project_id
  region              = var.region
  name                = "dispatcher"
  description         = "POST /tasks/events from Cloud Tasks: enrich, call the target, record status."
  labels              = var.labels
  deletion_protection = var.deletion_protection

  # Cloud Tasks in the same project counts as internal traffic, so nothing
  # on the internet can even reach the dispatcher.
  ingress          = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  custom_audiences = [var.dispatcher_audience]

  service_account          = var.dispatcher_service_account
  deployer_service_account = var.deployer_service_account
  image                    = var.image

  # Longer than the queue's dispatch deadline, so Cloud Tasks (not Cloud
  # Run) decides when an attempt has taken too long.
  request_timeout = "${var.queue.dispatch_deadline_seconds + 30}s"
  scaling         = var.dispatcher_scaling
  # Instance-based billing: CPU stays allocated between requests. The rate
  # governor (ADR 0010) ticks, renews its Firestore lease and restores the
  # queue's rate in the background, most of all while the queue is idle or
  # paused and no request arrives; with request-based billing "the
  # instance's access to CPU will be disabled or severely limited" after a
  # request (https://cloud.google.com/run/docs/tips/general#background-activity,
  # https://cloud.google.com/run/docs/configuring/billing-settings). The
  # telemetry exporters flush outside requests too (ADR 0009).
  cpu_idle  = false
  env       = local.dispatcher_env
  collector = var.otel_collector
}

# The dispatcher's only invoker: the identity on Cloud Tasks' OIDC tokens.
resource "google_cloud_run_v2_service_iam_member" "tasks_invoke_dispatcher" {
  project  = var.project_id
  location = module.dispatcher.location
  name     = module.dispatcher.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.tasks_invoker_service_account}"
}

# ---------------------------------------------------------------- moves

# The services moved into modules/service (with their collector sidecar);
# a configuration applied before keeps its services.
moved {
  from = google_cloud_run_v2_service.ingest
  to   = module.ingest.google_cloud_run_v2_service.this
}

moved {
  from = google_cloud_run_v2_service_iam_member.deployer_releases_ingest
  to   = module.ingest.google_cloud_run_v2_service_iam_member.deployer_releases
}

moved {
  from = google_cloud_run_v2_service.dispatcher
  to   = module.dispatcher.google_cloud_run_v2_service.this
}

moved {
  from = google_cloud_run_v2_service_iam_member.deployer_releases_dispatcher
  to   = module.dispatcher.google_cloud_run_v2_service_iam_member.deployer_releases
}

# The queue became shard 0 of var.queue.shards: a region applied before
# keeps its queue (and its tasks) and the grants on it.
moved {
  from = google_cloud_tasks_queue.events
  to   = google_cloud_tasks_queue.events[0]
}

moved {
  from = google_cloud_tasks_queue_iam_member.ingest_enqueues
  to   = google_cloud_tasks_queue_iam_member.ingest_enqueues[0]
}

moved {
  from = google_cloud_tasks_queue_iam_member.dispatcher_requeues
  to   = google_cloud_tasks_queue_iam_member.dispatcher_requeues[0]
}

moved {
  from = google_cloud_tasks_queue_iam_member.ingest_reads_queue
  to   = google_cloud_tasks_queue_iam_member.ingest_reads_queue[0]
}
