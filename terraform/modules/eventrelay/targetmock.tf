# targetmock: the stand-in for the rate-limited GraphQL target (dev only).
#
# It runs as exactly one instance, because its token bucket lives in memory:
# two instances would accept twice its limit. The dispatcher calls it like a
# third-party API, without a Google ID token, so Cloud Run's invoker check
# is disabled on this one service (no allUsers binding is made; policy tests
# allow invoker_iam_disabled nowhere else). It holds no data worth
# protecting; docs/deployment.md lists it as a known exposure of dev.

locals {
  target_url = var.target_url != null ? var.target_url : (
    var.targetmock_enabled ? "${module.targetmock[0].uri}/graphql" : null
  )
}

module "targetmock" {
  source = "../service"
  count  = var.targetmock_enabled ? 1 : 0

  project_id          = var.project_id
  region              = var.primary_region
  name                = "targetmock"
  description         = "TEST DOUBLE of the rate-limited GraphQL target. Not for production."
  labels              = local.labels
  deletion_protection = false

  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = true

  service_account          = google_service_account.runtime["targetmock"].email
  deployer_service_account = google_service_account.build.email
  image                    = var.initial_image

  request_timeout = "30s"
  scaling = {
    min_instances = 1
    max_instances = 1
    concurrency   = 200
    cpu           = "1"
    memory        = "512Mi"
  }
  # Its token bucket refills whether or not a request is in flight.
  cpu_idle = false
  env = {
    TARGET_RATE            = tostring(var.targetmock_rate_limit.rate)
    TARGET_BURST           = tostring(var.targetmock_rate_limit.burst)
    TARGET_RATE_LIMIT_MODE = var.targetmock_rate_limit.mode
    LOG_LEVEL              = var.log_level
    GOOGLE_CLOUD_PROJECT   = var.project_id
    OTEL_SERVICE_NAME      = "targetmock"
    TRACE_SAMPLE_RATIO     = tostring(var.trace_sample_ratio)
  }
  collector = var.otel_collector

  depends_on = [google_project_service.apis]
}

# targetmock moved into modules/service (with its collector sidecar).
moved {
  from = google_cloud_run_v2_service.targetmock[0]
  to   = module.targetmock[0].google_cloud_run_v2_service.this
}

moved {
  from = google_cloud_run_v2_service_iam_member.build_deploys_targetmock[0]
  to   = module.targetmock[0].google_cloud_run_v2_service_iam_member.deployer_releases
}
