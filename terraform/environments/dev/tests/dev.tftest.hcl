# terraform test for the dev environment: the whole root planned against
# the real google provider schema with a mocked provider (no cloud, no
# state bucket). Run from terraform/environments/dev:
#   terraform init -backend=false && terraform test

mock_provider "google" {
  mock_data "google_project" {
    defaults = {
      number = "123456789012"
    }
  }
  mock_resource "google_cloud_run_v2_service" {
    defaults = {
      uri = "https://targetmock-123456789012.europe-west1.run.app"
    }
    override_during = plan
  }
}

variables {
  project_id   = "eventrelay-dev-123456"
  github_owner = "example"
}

run "dev_plans" {
  command = plan

  assert {
    condition     = keys(output.queues) == ["europe-west1"]
    error_message = "dev runs one regional stack"
  }
  assert {
    condition     = output.target_url == "https://targetmock-123456789012.europe-west1.run.app/graphql"
    error_message = "dev's dispatcher calls targetmock"
  }
  assert {
    condition     = output.ingest_lb_ip == null
    error_message = "dev has no load balancer"
  }
  assert {
    condition     = contains(keys(output.service_accounts), "sourcemock")
    error_message = "dev runs the sourcemock function"
  }
}

run "dev_without_github_has_no_triggers" {
  command = plan

  variables {
    github_owner = null
  }

  assert {
    condition     = keys(output.queues) == ["europe-west1"]
    error_message = "dev plans without a GitHub repository (no triggers)"
  }
}

run "dev_keeps_one_queue" {
  command = plan

  assert {
    condition     = output.queue_names == ["events"] && output.queue_initial_rate_limits["europe-west1"]["events"].max_dispatches_per_second == 10
    error_message = "dev's 10/s target needs one queue, named as before sharding"
  }
}

# Sharding can be rehearsed in dev: its 10/s split over two queues.
run "dev_can_rehearse_shards" {
  command = plan

  variables {
    queue_shards = 2
  }

  assert {
    condition     = output.queue_names == ["events", "events-1"] && sum([for q in values(output.queue_initial_rate_limits["europe-west1"]) : q.max_dispatches_per_second]) == 10
    error_message = "queue_shards = 2 makes events and events-1, together at dev's limit"
  }
}
