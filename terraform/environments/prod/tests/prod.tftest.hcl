# terraform test for the prod environment: the whole root planned against
# the real google provider schema with a mocked provider, with and without
# the HA option. Run from terraform/environments/prod:
#   terraform init -backend=false && terraform test

mock_provider "google" {
  mock_data "google_project" {
    defaults = {
      number = "123456789012"
    }
  }
}

variables {
  project_id                   = "eventrelay-prod-123456"
  target_url                   = "https://target.example.com/graphql"
  target_rate_limit_per_second = 200
  source_service_accounts      = ["source@partner-project.iam.gserviceaccount.com"]
  github_owner                 = "example"
  notification_channels        = ["projects/eventrelay-prod-123456/notificationChannels/1"]
}

run "prod_plans" {
  command = plan

  assert {
    condition     = keys(output.queues) == ["europe-west1"]
    error_message = "prod runs one regional stack without the HA option"
  }
  assert {
    condition     = output.target_url == var.target_url
    error_message = "prod delivers to the real target"
  }
  assert {
    condition     = output.sourcemock_url == null
    error_message = "prod runs no sourcemock"
  }
}

run "ha_option_plans" {
  command = plan

  variables {
    secondary_region = "europe-west4"
    ingest_domain    = "ingest.example.com"
  }

  assert {
    condition     = toset(keys(output.queues)) == toset(["europe-west1", "europe-west4"])
    error_message = "the HA option plans a queue in each region"
  }
  assert {
    condition     = toset(keys(output.ingest_urls)) == toset(["europe-west1", "europe-west4"])
    error_message = "the HA option plans ingest in each region"
  }
  assert {
    condition     = output.ingest_endpoint == "https://ingest.example.com"
    error_message = "with the HA option the source calls the load balancer"
  }
}

# One Cloud Tasks queue dispatches at most 500 tasks/s, so a 2,000/s
# target needs at least 4 queues; together they dispatch at the limit.
run "a_2000_per_second_target_plans_4_queues" {
  command = plan

  variables {
    target_rate_limit_per_second = 2000
    target_max_concurrency       = 400
  }

  assert {
    condition     = length(output.queues["europe-west1"]) >= 4 && output.queue_names == ["events", "events-1", "events-2", "events-3"]
    error_message = "2,000/s plans 4 queues named events, events-1, events-2, events-3"
  }
  assert {
    condition     = alltrue([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second <= 500])
    error_message = "no queue may dispatch above 500/s, Cloud Tasks' maximum per queue"
  }
  assert {
    condition     = sum([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second]) == 2000
    error_message = "together the queues dispatch at the target's limit"
  }
}

run "a_50_per_second_target_keeps_one_queue" {
  command = plan

  variables {
    target_rate_limit_per_second = 50
  }

  assert {
    condition     = output.queue_names == ["events"] && length(output.queues["europe-west1"]) == 1
    error_message = "50/s plans one queue, named as before sharding"
  }
  assert {
    condition     = output.queue_initial_rate_limits["europe-west1"]["events"].max_dispatches_per_second == 50
    error_message = "the one queue carries the whole limit"
  }
}

run "a_non_positive_limit_is_refused" {
  command = plan

  variables {
    target_rate_limit_per_second = 0
  }

  expect_failures = [var.target_rate_limit_per_second]
}
