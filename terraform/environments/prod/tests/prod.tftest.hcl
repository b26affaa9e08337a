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
