# terraform test for the sourcemock Cloud Function, planned against the
# real google provider schema with a mocked provider. Run from this
# module's directory: terraform init -backend=false && terraform test

mock_provider "google" {}

variables {
  project_id                = "eventrelay-test"
  region                    = "europe-west1"
  labels                    = { app = "eventrelay", env = "test" }
  source_bucket             = "eventrelay-test-eventrelay-sources"
  source_object             = "sourcemock/bootstrap.zip"
  runtime                   = "go126"
  service_account           = "eventrelay-sourcemock@eventrelay-test.iam.gserviceaccount.com"
  build_service_account     = "projects/eventrelay-test/serviceAccounts/eventrelay-fn-builder@eventrelay-test.iam.gserviceaccount.com"
  docker_repository         = "projects/eventrelay-test/locations/europe-west1/repositories/eventrelay-functions"
  ingest_url                = "https://ingest-123456789012.europe-west1.run.app"
  ingest_audience           = "eventrelay-ingest"
  schedule                  = null
  scheduler_service_account = "eventrelay-scheduler@eventrelay-test.iam.gserviceaccount.com"
  deployer_service_account  = "eventrelay-build@eventrelay-test.iam.gserviceaccount.com"
  log_level                 = "info"
}

run "runs_as_its_own_account" {
  command = plan

  assert {
    condition     = google_cloudfunctions2_function.sourcemock.service_config[0].service_account_email == var.service_account
    error_message = "the function must run as its own account (an ingest invoker), never the default compute account"
  }
}

# No static token: the function mints Google-signed ID tokens for the
# audience ingest checks (ingest's AUTH_AUDIENCE is the same variable,
# region.tftest.hcl).
run "mints_ingest_tokens" {
  command = plan

  assert {
    condition     = !contains(keys(google_cloudfunctions2_function.sourcemock.service_config[0].environment_variables), "TOKEN")
    error_message = "the function must not get a static TOKEN; it mints ID tokens (TOKEN_AUDIENCE)"
  }
  assert {
    condition     = google_cloudfunctions2_function.sourcemock.service_config[0].environment_variables["TOKEN_AUDIENCE"] == var.ingest_audience
    error_message = "the function's tokens must be for ingest's audience"
  }
}
