# terraform test for one regional stack: the queue, ingest and the
# dispatcher, planned against the real google provider schema with a mocked
# provider (no cloud). Run from this module's directory:
#   terraform init -backend=false && terraform test
#
# Every run plans. An applied queue could not be torn down by the test
# (prevent_destroy), so that Terraform ignores later changes to the queue's
# rate (ADR 0005) is checked in Go (internal/infra, queue-rate-ignored).

mock_provider "google" {}

variables {
  project_id          = "eventrelay-test"
  region              = "europe-west1"
  labels              = { app = "eventrelay", env = "test" }
  image               = "us-docker.pkg.dev/cloudrun/container/hello:latest"
  deletion_protection = false

  queue = {
    name                       = "events"
    shards                     = 1
    max_dispatches_per_second  = 25
    max_concurrent_dispatches  = 40
    max_attempts               = 10
    min_backoff_seconds        = 1
    max_backoff_seconds        = 60
    max_doublings              = 16
    max_retry_duration_seconds = 0
    dispatch_deadline_seconds  = 30
    log_sampling_ratio         = 1
  }

  ingest_service_account        = "eventrelay-ingest@eventrelay-test.iam.gserviceaccount.com"
  dispatcher_service_account    = "eventrelay-dispatcher@eventrelay-test.iam.gserviceaccount.com"
  tasks_invoker_service_account = "eventrelay-tasks-invoker@eventrelay-test.iam.gserviceaccount.com"
  deployer_service_account      = "eventrelay-build@eventrelay-test.iam.gserviceaccount.com"
  project_number                = "123456789012"

  ingest_invokers = {
    "source@partner.iam.gserviceaccount.com" = "serviceAccount:source@partner.iam.gserviceaccount.com"
    smoke                                    = "serviceAccount:eventrelay-smoke@eventrelay-test.iam.gserviceaccount.com"
  }
  ingest_audience     = "eventrelay-ingest"
  dispatcher_audience = "eventrelay-dispatcher"
  ingest_scaling      = { min_instances = 1, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }
  dispatcher_scaling  = { min_instances = 1, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }

  governor_enabled       = true
  firestore_database     = "(default)"
  target_url             = "https://target.example.com/graphql"
  target_timeout_seconds = 10
  brand                  = "testBrand"
  log_level              = "info"
  trace_sample_ratio     = 0.1
  extra_env              = { ingest = {}, dispatcher = {} }
  otel_collector = {
    image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:0.143.0"
    cpu    = "1"
    memory = "512Mi"
  }
}

run "queue_rate_from_variables" {
  command = plan

  assert {
    condition     = google_cloud_tasks_queue.events[0].rate_limits[0].max_dispatches_per_second == var.queue.max_dispatches_per_second
    error_message = "the queue's max_dispatches_per_second must come from var.queue (the target's limit)"
  }
  assert {
    condition     = google_cloud_tasks_queue.events[0].rate_limits[0].max_concurrent_dispatches == var.queue.max_concurrent_dispatches
    error_message = "the queue's max_concurrent_dispatches must come from var.queue"
  }
  assert {
    condition     = google_cloud_tasks_queue.events[0].retry_config[0].max_attempts == -1 && module.dispatcher.env["QUEUE_MAX_ATTEMPTS"] == "-1" && module.ingest.env["QUEUE_MAX_ATTEMPTS"] == "-1"
    error_message = "the queue must retry without limit (max_attempts -1, no max_retry_duration), and the services must know it: it never drops a task whose last attempt the dispatcher could not handle"
  }
  assert {
    condition     = module.dispatcher.env["DELIVERY_MAX_ATTEMPTS"] == tostring(var.queue.max_attempts) && module.dispatcher.env["DELIVERY_MAX_RETRY_DURATION"] == "${var.queue.max_retry_duration_seconds}s" && !contains(keys(module.ingest.env), "DELIVERY_MAX_ATTEMPTS")
    error_message = "the dispatcher's delivery budget (DELIVERY_*) must come from var.queue's max_attempts and max_retry_duration_seconds"
  }
  assert {
    condition     = google_cloud_tasks_queue.events[0].retry_config[0].min_backoff == "${var.queue.min_backoff_seconds}s" && module.dispatcher.env["QUEUE_MIN_BACKOFF"] == "${var.queue.min_backoff_seconds}s" && google_cloud_tasks_queue.events[0].retry_config[0].max_doublings == var.queue.max_doublings
    error_message = "the queue and the dispatcher must share one backoff"
  }
  assert {
    condition     = google_cloud_tasks_queue.events[0].stackdriver_logging_config[0].sampling_ratio == var.queue.log_sampling_ratio
    error_message = "the queue must log task operations at the configured sampling ratio"
  }
}

run "dispatcher_is_private" {
  command = plan

  assert {
    condition     = module.dispatcher.ingress == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    error_message = "the dispatcher must admit internal traffic only"
  }
  assert {
    condition     = module.dispatcher.invoker_iam_disabled == false
    error_message = "the dispatcher must keep Cloud Run's invoker IAM check"
  }
  assert {
    condition     = google_cloud_run_v2_service_iam_member.tasks_invoke_dispatcher.role == "roles/run.invoker" && google_cloud_run_v2_service_iam_member.tasks_invoke_dispatcher.member == "serviceAccount:${var.tasks_invoker_service_account}"
    error_message = "only the Cloud Tasks token identity may invoke the dispatcher"
  }
  assert {
    condition     = alltrue([for m in google_cloud_run_v2_service_iam_member.ingest_invokers : m.name == "ingest"])
    error_message = "the source invoker grants must be on ingest, never on the dispatcher"
  }
  assert {
    condition     = module.dispatcher.env["AUTH_ALLOWED_EMAILS"] == var.tasks_invoker_service_account
    error_message = "the dispatcher must accept tokens of the Cloud Tasks identity only"
  }
}

run "only_sources_invoke_ingest" {
  command = plan

  assert {
    condition     = toset(keys(google_cloud_run_v2_service_iam_member.ingest_invokers)) == toset(keys(var.ingest_invokers))
    error_message = "ingest must have exactly one invoker grant per ingest_invokers entry"
  }
  assert {
    condition     = alltrue([for k, m in google_cloud_run_v2_service_iam_member.ingest_invokers : m.member == var.ingest_invokers[k] && m.role == "roles/run.invoker"])
    error_message = "each ingest invoker grant must be run.invoker for the listed service account"
  }
  assert {
    condition     = module.ingest.invoker_iam_disabled == false
    error_message = "ingest must keep Cloud Run's invoker IAM check"
  }
  assert {
    condition     = toset(split(",", module.ingest.env["AUTH_ALLOWED_EMAILS"])) == toset([for m in values(var.ingest_invokers) : trimprefix(m, "serviceAccount:")])
    error_message = "ingest's allow-list must be exactly the invokers"
  }
  assert {
    condition     = module.ingest.env["AUTH_AUDIENCE"] == var.ingest_audience
    error_message = "ingest must check the audience sourcemock mints its tokens for (var.ingest_audience)"
  }
}

run "warm_instances_and_cpu" {
  command = plan

  assert {
    condition     = module.ingest.min_instances >= 1
    error_message = "ingest must keep a warm instance: a cold start eats the source's 500 ms"
  }
  assert {
    condition     = !anytrue(values(module.ingest.cpu_idle))
    error_message = "ingest's containers must have CPU between requests (the status write after the 202, the exporters)"
  }
  assert {
    condition     = !anytrue(values(module.dispatcher.cpu_idle))
    error_message = "the dispatcher's containers must have CPU between requests: the rate governor runs in the background (ADR 0010)"
  }
  assert {
    condition     = module.dispatcher.min_instances >= 1
    error_message = "the dispatcher keeps an instance for the governor"
  }
}

# The dispatcher enqueues an event again on its last attempt (rate
# limited, or the status store down; ADR 0008, ADR 0010). Without its own
# task URL, the tasks identity and audience, and the enqueuer role on its
# region's queue, the requeue fails at run time and the event is
# dead-lettered, or, with the store down, dropped by the queue. (actAs on
# the tasks identity: eventrelay.tftest.hcl.)
run "dispatcher_can_requeue" {
  command = plan

  assert {
    condition     = module.dispatcher.name == "dispatcher" && module.dispatcher.env["DISPATCH_URL"] == "https://dispatcher-${var.project_number}.${var.region}.run.app/tasks/events"
    error_message = "the dispatcher's DISPATCH_URL must be its own run.app task URL"
  }
  assert {
    condition     = module.dispatcher.env["DISPATCH_AUDIENCE"] == var.dispatcher_audience && module.dispatcher.env["TASKS_SERVICE_ACCOUNT"] == var.tasks_invoker_service_account
    error_message = "requeued tasks must carry the tasks identity's token for the dispatcher's audience"
  }
  assert {
    condition     = google_cloud_tasks_queue_iam_member.dispatcher_requeues[0].role == "roles/cloudtasks.enqueuer" && google_cloud_tasks_queue_iam_member.dispatcher_requeues[0].member == "serviceAccount:${var.dispatcher_service_account}" && google_cloud_tasks_queue_iam_member.dispatcher_requeues[0].name == google_cloud_tasks_queue.events[0].name
    error_message = "the dispatcher's account must be an enqueuer on its region's queue"
  }
}

# One queue dispatches at most 500 tasks/s, so a larger share is spread
# over shards named as queue.ShardName names them, each with every grant
# the single queue had.
run "shards_split_the_region_share" {
  command = plan

  variables {
    queue = merge(var.queue, { shards = 4, max_dispatches_per_second = 2000, max_concurrent_dispatches = 40 })
  }

  assert {
    condition     = google_cloud_tasks_queue.events[*].name == ["events", "events-1", "events-2", "events-3"]
    error_message = "shard 0 keeps the base name, shard i is <base>-<i> (queue.ShardName)"
  }
  assert {
    condition     = alltrue([for q in google_cloud_tasks_queue.events : q.rate_limits[0].max_dispatches_per_second <= 500])
    error_message = "no shard may dispatch above 500/s, Cloud Tasks' maximum per queue"
  }
  assert {
    condition     = sum([for q in google_cloud_tasks_queue.events : q.rate_limits[0].max_dispatches_per_second]) == 2000
    error_message = "together the shards dispatch at exactly the region's share"
  }
  assert {
    condition     = sum([for q in google_cloud_tasks_queue.events : q.rate_limits[0].max_concurrent_dispatches]) <= 40
    error_message = "together the shards never exceed the region's concurrency"
  }
  assert {
    condition     = module.ingest.env["QUEUE_NAME"] == "events" && module.ingest.env["QUEUE_SHARDS"] == "4" && module.dispatcher.env["QUEUE_NAME"] == "events" && module.dispatcher.env["QUEUE_SHARDS"] == "4"
    error_message = "both services get the base name and the number of shards"
  }
  assert {
    condition = alltrue([for g in [
      google_cloud_tasks_queue_iam_member.ingest_enqueues,
      google_cloud_tasks_queue_iam_member.ingest_reads_queue,
      google_cloud_tasks_queue_iam_member.dispatcher_requeues,
      google_cloud_tasks_queue_iam_member.dispatcher_reads_queue,
      google_cloud_tasks_queue_iam_member.dispatcher_governs_queue,
    ] : g[*].name == google_cloud_tasks_queue.events[*].name])
    error_message = "every queue grant must be made on every shard, one each"
  }
}

# The reconciler's GetTask needs cloudtasks.tasks.get, which only viewer
# (of the roles the dispatcher holds) includes.
run "dispatcher_can_inspect_tasks" {
  command = plan

  assert {
    condition     = google_cloud_tasks_queue_iam_member.dispatcher_reads_queue[0].role == "roles/cloudtasks.viewer" && google_cloud_tasks_queue_iam_member.dispatcher_reads_queue[0].member == "serviceAccount:${var.dispatcher_service_account}" && google_cloud_tasks_queue_iam_member.dispatcher_reads_queue[0].name == "events"
    error_message = "the dispatcher's account must be a viewer of its queue (GetTask for the reconciler)"
  }
}

run "a_shard_above_500_per_second_is_refused" {
  command = plan

  variables {
    queue = merge(var.queue, { shards = 1, max_dispatches_per_second = 600 })
  }

  expect_failures = [var.queue]
}

run "governor_grants_queue_admin_on_its_queue_only" {
  command = plan

  assert {
    condition     = length(google_cloud_tasks_queue_iam_member.dispatcher_governs_queue) == 1
    error_message = "the governor needs queueAdmin on its queue"
  }
  assert {
    condition     = google_cloud_tasks_queue_iam_member.dispatcher_governs_queue[0].member == "serviceAccount:${var.dispatcher_service_account}" && google_cloud_tasks_queue_iam_member.dispatcher_governs_queue[0].name == var.queue.name
    error_message = "queueAdmin goes to the dispatcher's account on this region's queue only"
  }
}

run "no_governor_no_queue_admin" {
  command = plan

  variables {
    governor_enabled   = false
    dispatcher_scaling = merge(var.dispatcher_scaling, { min_instances = 0 })
  }

  assert {
    condition     = length(google_cloud_tasks_queue_iam_member.dispatcher_governs_queue) == 0
    error_message = "without the governor the dispatcher must not administer the queue"
  }
  assert {
    condition     = module.dispatcher.env["QUEUE_GOVERNOR"] == "off"
    error_message = "QUEUE_GOVERNOR must follow governor_enabled"
  }
}

run "ingest_must_stay_warm" {
  command = plan

  variables {
    ingest_scaling = merge(var.ingest_scaling, { min_instances = 0 })
  }

  expect_failures = [var.ingest_scaling]
}

run "governor_needs_a_dispatcher_instance" {
  command = plan

  variables {
    dispatcher_scaling = merge(var.dispatcher_scaling, { min_instances = 0 })
  }

  expect_failures = [var.dispatcher_scaling]
}

run "ingest_invokers_are_service_accounts" {
  command = plan

  variables {
    ingest_invokers = { someone = "user:someone@example.com" }
  }

  expect_failures = [var.ingest_invokers]
}
