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
