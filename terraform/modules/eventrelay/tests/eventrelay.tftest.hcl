# terraform test for the whole system in one project, planned against the
# real google provider schema with a mocked provider. Run from this
# module's directory: terraform init -backend=false && terraform test

mock_provider "google" {
  mock_data "google_project" {
    defaults = {
      number = "123456789012"
    }
  }
  # Known at plan, so assertions can read the URLs built from them.
  mock_resource "google_cloud_run_v2_service" {
    defaults = {
      uri = "https://service-123456789012.europe-west1.run.app"
    }
    override_during = plan
  }
}

# Known at plan, so assertions can tell the accounts apart.
override_resource {
  target          = google_service_account.tasks_invoker
  override_during = plan
  values = {
    email = "eventrelay-tasks-invoker@eventrelay-test.iam.gserviceaccount.com"
    name  = "projects/eventrelay-test/serviceAccounts/eventrelay-tasks-invoker@eventrelay-test.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.runtime["ingest"]
  override_during = plan
  values = {
    email = "eventrelay-ingest@eventrelay-test.iam.gserviceaccount.com"
    name  = "projects/eventrelay-test/serviceAccounts/eventrelay-ingest@eventrelay-test.iam.gserviceaccount.com"
  }
}

override_resource {
  target          = google_service_account.runtime["dispatcher"]
  override_during = plan
  values = {
    email = "eventrelay-dispatcher@eventrelay-test.iam.gserviceaccount.com"
    name  = "projects/eventrelay-test/serviceAccounts/eventrelay-dispatcher@eventrelay-test.iam.gserviceaccount.com"
  }
}

variables {
  project_id                   = "eventrelay-test"
  environment                  = "prod"
  primary_region               = "europe-west1"
  firestore_location           = "eur3"
  deletion_protection          = true
  target_url                   = "https://target.example.com/graphql"
  target_rate_limit_per_second = 100
  target_max_concurrency       = 40
  source_service_accounts      = ["source@partner-project.iam.gserviceaccount.com"]
  notification_channels        = ["projects/eventrelay-test/notificationChannels/1"]
  playbook_base_url            = "https://github.com/example/eventrelay/blob/main/docs/playbooks"
}

run "one_region_carries_the_whole_limit" {
  command = plan

  assert {
    condition     = keys(output.queue_initial_rate_limits) == ["europe-west1"]
    error_message = "one region by default"
  }
  assert {
    condition     = output.queue_initial_rate_limits["europe-west1"]["events"].max_dispatches_per_second == 100 && output.queue_initial_rate_limits["europe-west1"]["events"].max_concurrent_dispatches == 40
    error_message = "the queue's initial rate and concurrency are the target's limits"
  }
  assert {
    condition     = output.queue_names == ["events"]
    error_message = "a limit one queue can carry keeps one queue, named as before"
  }
  assert {
    condition     = output.ingest_lb_ip == null
    error_message = "no load balancer without the HA option"
  }
}

# ADR 0006: with a second region the two queues share the target's limit.
run "ha_option_splits_the_limit" {
  command = plan

  variables {
    secondary_region = "europe-west4"
    ingest_domain    = "ingest.example.com"
  }

  assert {
    condition     = toset(keys(output.queue_initial_rate_limits)) == toset(["europe-west1", "europe-west4"])
    error_message = "the HA option plans a stack in each region"
  }
  assert {
    condition     = sum(flatten([for r in values(output.queue_initial_rate_limits) : [for q in values(r) : q.max_dispatches_per_second]])) == 100
    error_message = "together the regions' queues dispatch at exactly the target's limit"
  }
  assert {
    condition     = sum(flatten([for r in values(output.queue_initial_rate_limits) : [for q in values(r) : q.max_concurrent_dispatches]])) <= 40
    error_message = "together the regions never exceed the target's concurrency"
  }
  assert {
    condition     = output.ingest_endpoint == "https://ingest.example.com"
    error_message = "with the HA option the source calls the load balancer's domain"
  }
  assert {
    condition     = output.ingest_lb_regions == tolist(["europe-west1"])
    error_message = "a new secondary region must not serve behind the load balancer before it runs a release: its placeholder image would ack events and lose them"
  }
}

run "released_secondary_region_joins_the_load_balancer" {
  command = plan

  variables {
    secondary_region         = "europe-west4"
    ingest_domain            = "ingest.example.com"
    secondary_region_serving = true
  }

  assert {
    condition     = output.ingest_lb_regions == tolist(["europe-west1", "europe-west4"])
    error_message = "once released, both regions serve behind the load balancer"
  }
}

# Project-level grants only for roles whose resources offer no narrower
# binding point (docs/deployment.md, "IAM"); everything else is granted on
# the resource. In particular the Terraform account acts only as the
# accounts it attaches, never project-wide.
run "project_grants_are_allow_listed" {
  command = plan

  assert {
    condition = alltrue([for g in google_project_iam_member.project : contains([
      "roles/logging.logWriter",               # logs are written to the project
      "roles/monitoring.metricWriter",         # metrics are written to the project
      "roles/cloudtrace.agent",                # traces are written to the project
      "roles/telemetry.tracesWriter",          # OTLP traces to the project's Telemetry API
      "roles/datastore.user",                  # Firestore grants per project (one database, eventrelay's)
      "roles/datastore.viewer",                # the smoke test reads status
      "roles/artifactregistry.admin",          # terraform creates the repositories
      "roles/cloudbuild.builds.editor",        # terraform creates the triggers
      "roles/cloudfunctions.admin",            # terraform creates the function
      "roles/cloudscheduler.admin",            # terraform creates the scheduler job
      "roles/cloudtasks.admin",                # terraform creates the queues
      "roles/compute.loadBalancerAdmin",       # terraform creates the load balancer
      "roles/datastore.owner",                 # terraform creates the database, indexes, TTL
      "roles/iam.serviceAccountAdmin",         # terraform creates the service accounts
      "roles/monitoring.editor",               # terraform creates the dashboard, alerts, descriptors
      "roles/resourcemanager.projectIamAdmin", # terraform makes the grants in this list
      "roles/run.admin",                       # terraform creates the services and their IAM
      "roles/secretmanager.admin",             # terraform creates the collector configuration secrets
      "roles/serviceusage.serviceUsageAdmin",  # terraform enables the APIs
      "roles/storage.admin",                   # terraform creates the buckets, reads/writes state
    ], g.role)])
    error_message = "a project-level grant uses a role outside the allow-list"
  }
  assert {
    condition     = !anytrue([for g in google_project_iam_member.project : g.role == "roles/iam.serviceAccountUser"])
    error_message = "no account may act as every service account of the project"
  }
}

# ingest creates tasks whose OIDC token is signed as the tasks identity,
# and so does the dispatcher when it requeues an event (ADR 0008, ADR
# 0010): both must be allowed to act as that account, on that account.
run "services_act_as_the_tasks_identity" {
  command = plan

  assert {
    condition = alltrue([
      for k, g in {
        ingest     = google_service_account_iam_member.ingest_acts_as_tasks_invoker,
        dispatcher = google_service_account_iam_member.dispatcher_acts_as_tasks_invoker,
      } : g.service_account_id == google_service_account.tasks_invoker.name && g.role == "roles/iam.serviceAccountUser" && g.member == "serviceAccount:${google_service_account.runtime[k].email}"
    ])
    error_message = "ingest and the dispatcher must be able to act as the tasks identity, and only on it: their tasks carry its OIDC token"
  }
}

# Destroying this configuration must never switch an API off under other
# workloads in the project.
run "apis_stay_on_after_destroy" {
  command = plan

  assert {
    condition     = length(google_project_service.apis) > 0 && alltrue([for s in google_project_service.apis : s.disable_on_destroy == false])
    error_message = "every google_project_service must set disable_on_destroy = false"
  }
}

run "prod_has_no_test_doubles" {
  command = plan

  assert {
    condition     = output.target_url == var.target_url && output.sourcemock_url == null
    error_message = "without targetmock and sourcemock the dispatcher calls the real target"
  }
  assert {
    condition     = !contains(keys(google_project_iam_member.project), "build/roles/datastore.viewer")
    error_message = "against a real target the smoke test reads no status, so the pipeline may not read the status store (ADR 0012)"
  }
}

run "dev_smoke_delivers_through_targetmock" {
  command = plan

  variables {
    environment        = "dev"
    target_url         = null
    targetmock_enabled = true
  }

  assert {
    condition     = output.target_url == "https://service-123456789012.europe-west1.run.app/graphql"
    error_message = "with targetmock the dispatcher calls targetmock's /graphql"
  }
  assert {
    condition     = contains(keys(google_project_iam_member.project), "build/roles/datastore.viewer")
    error_message = "the delivery smoke test reads the status of the events it sent"
  }
}

# One Cloud Tasks queue dispatches at most 500 tasks/s: a higher limit is
# spread over ceil(limit / 500) queues per region, each at an equal part.
run "a_high_limit_is_sharded" {
  command = plan

  variables {
    target_rate_limit_per_second = 2000
    target_max_concurrency       = 400
  }

  assert {
    condition     = output.queue_names == ["events", "events-1", "events-2", "events-3"]
    error_message = "2,000/s needs 4 queues: events, then events-1 to events-3"
  }
  assert {
    condition     = alltrue([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second <= 500])
    error_message = "no queue may dispatch above 500/s"
  }
  assert {
    condition     = sum([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second]) == 2000
    error_message = "together the queues dispatch at exactly the target's limit"
  }
  assert {
    condition     = sum([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_concurrent_dispatches]) <= 400
    error_message = "together the queues never exceed the target's concurrency"
  }
}

# With the HA option the limit is split between the regions first, then
# between each region's queues.
run "ha_option_shards_each_region_share" {
  command = plan

  variables {
    target_rate_limit_per_second = 2000
    secondary_region             = "europe-west4"
    ingest_domain                = "ingest.example.com"
  }

  assert {
    condition     = output.queue_names == ["events", "events-1"] && alltrue([for r in values(output.queues) : length(r) == 2])
    error_message = "1,000/s per region needs 2 queues in each region"
  }
  assert {
    condition     = sum(flatten([for r in values(output.queue_initial_rate_limits) : [for q in values(r) : q.max_dispatches_per_second]])) == 2000
    error_message = "together every queue of every region dispatches at exactly the target's limit"
  }
}

run "queue_shards_can_be_set" {
  command = plan

  variables {
    target_rate_limit_per_second = 1000
    queue_shards                 = 5
  }

  assert {
    condition     = length(output.queue_names) == 5 && alltrue([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second == 200])
    error_message = "queue_shards = 5 makes 5 queues at 200/s each"
  }
}

run "too_few_queue_shards_are_refused" {
  command = plan

  variables {
    target_rate_limit_per_second = 2000
    queue_shards                 = 3
  }

  expect_failures = [var.queue_shards]
}

run "target_limit_must_be_positive" {
  command = plan

  variables {
    target_rate_limit_per_second = 0
  }

  expect_failures = [var.target_rate_limit_per_second]
}

run "a_target_is_required" {
  command = plan

  variables {
    target_url = null
  }

  expect_failures = [var.target_url]
}

run "target_must_be_https" {
  command = plan

  variables {
    target_url = "http://target.example.com/graphql"
  }

  expect_failures = [var.target_url]
}

run "ingest_stays_warm" {
  command = plan

  variables {
    ingest_scaling = { min_instances = 0, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }
  }

  expect_failures = [var.ingest_scaling]
}

run "governor_needs_a_dispatcher_instance" {
  command = plan

  variables {
    dispatcher_scaling = { min_instances = 0, max_instances = 5, concurrency = 80, cpu = "1", memory = "512Mi" }
  }

  expect_failures = [var.dispatcher_scaling]
}

run "sources_are_service_accounts" {
  command = plan

  variables {
    source_service_accounts = ["someone@example.com"]
  }

  expect_failures = [var.source_service_accounts]
}

run "collector_image_is_pinned" {
  command = plan

  variables {
    otel_collector = {
      image  = "us-docker.pkg.dev/cloud-ops-agents-artifacts/google-cloud-opentelemetry-collector/otelcol-google:latest"
      cpu    = "1"
      memory = "512Mi"
    }
  }

  expect_failures = [var.otel_collector]
}

run "alert_latency_below_the_source_budget" {
  command = plan

  variables {
    alert_thresholds = {
      ingest_p99_ms            = 500
      ingest_5xx_ratio         = 0.01
      backlog_age_seconds      = 600
      rate_limited_ratio       = 0.2
      rate_limited_min_per_sec = 1
    }
  }

  expect_failures = [var.alert_thresholds]
}

# The sourcemock function's image is rebuilt under the same tag by every
# Cloud Functions build, which a repository with immutable tags refuses:
# it goes to its own repository, and the release images keep theirs.
run "function_images_can_be_rebuilt" {
  command = plan

  variables {
    environment        = "dev"
    target_url         = null
    targetmock_enabled = true
    sourcemock_enabled = true
  }

  assert {
    condition     = google_artifact_registry_repository.function_images.docker_config[0].immutable_tags == false
    error_message = "the function image repository must allow a rebuild to reuse its tag"
  }
  assert {
    condition     = google_artifact_registry_repository.images.docker_config[0].immutable_tags == true
    error_message = "release images stay immutable: a tag is a commit"
  }
  assert {
    condition     = google_storage_bucket.sources.versioning[0].enabled
    error_message = "the function sources bucket keeps versions"
  }
  assert {
    condition     = toset(keys(google_service_account_iam_member.terraform_acts_as)) == toset(["ingest", "dispatcher", "targetmock", "sourcemock", "function_builder", "scheduler"])
    error_message = "the Terraform account acts only as the accounts it attaches to what it creates"
  }
}

run "terraform_acts_only_as_prod_runtime_accounts" {
  command = plan

  assert {
    condition     = toset(keys(google_service_account_iam_member.terraform_acts_as)) == toset(["ingest", "dispatcher"])
    error_message = "in prod (no mocks, no triggers) the Terraform account acts only as ingest's and the dispatcher's accounts"
  }
}
