# Identities and the few project-level grants.
#
# One service account per service, least privilege. Every grant that a
# resource can hold (queue, Cloud Run service, service account, bucket,
# repository) is made on that resource, in the module that owns it. Only
# the roles below are granted on the project, because their resources offer
# no narrower binding point (docs/deployment.md, "IAM"):
#   - logging.logWriter, monitoring.metricWriter, cloudtrace.agent,
#     telemetry.tracesWriter: logs, metrics and traces are written to the
#     project itself;
#   - datastore.user / datastore.viewer: Firestore access is granted per
#     project (this project holds one database, only for eventrelay);
#   - the terraform service account's admin roles: it creates project-level
#     resources (APIs, service accounts, IAM bindings, queues, services,
#     the collector sidecars' configuration secrets).

locals {
  runtime_services = {
    ingest     = "eventrelay ingest (Cloud Run)"
    dispatcher = "eventrelay dispatcher (Cloud Run)"
    targetmock = "eventrelay targetmock (Cloud Run, stand-in target)"
    sourcemock = "eventrelay sourcemock (Cloud Function gen 2)"
  }

  telemetry_roles = [
    "roles/cloudtrace.agent",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/telemetry.tracesWriter",
  ]

  telemetry_grants = {
    for pair in setproduct(keys(local.runtime_services), local.telemetry_roles) :
    "${pair[0]}/${pair[1]}" => {
      member = "serviceAccount:${google_service_account.runtime[pair[0]].email}"
      role   = pair[1]
    }
  }

  firestore_grants = merge(
    {
      "ingest/roles/datastore.user" = {
        member = "serviceAccount:${google_service_account.runtime["ingest"].email}"
        role   = "roles/datastore.user"
      }
      "dispatcher/roles/datastore.user" = {
        member = "serviceAccount:${google_service_account.runtime["dispatcher"].email}"
        role   = "roles/datastore.user"
      }
    },
    # The delivery smoke test (dev, targetmock) reads the status of the
    # events it sent; the no-target smoke reads none, so prod's pipeline
    # cannot read the status store (ADR 0012).
    local.smoke_delivers ? {
      "build/roles/datastore.viewer" = {
        member = "serviceAccount:${google_service_account.build.email}"
        role   = "roles/datastore.viewer"
      }
    } : {},
  )

  build_grants = {
    # A build that runs as a user-managed service account writes its own logs
    # (cloudbuild.yaml sets options.logging = CLOUD_LOGGING_ONLY).
    "build/roles/logging.logWriter" = {
      member = "serviceAccount:${google_service_account.build.email}"
      role   = "roles/logging.logWriter"
    }
    "ci/roles/logging.logWriter" = {
      member = "serviceAccount:${google_service_account.ci.email}"
      role   = "roles/logging.logWriter"
    }
    "function_builder/roles/logging.logWriter" = {
      member = "serviceAccount:${google_service_account.function_builder.email}"
      role   = "roles/logging.logWriter"
    }
  }

  # The roles `terraform apply` needs to manage everything in this
  # configuration. Project-level by nature: it creates the resources that
  # would otherwise hold the bindings.
  terraform_roles = [
    "roles/artifactregistry.admin",
    "roles/cloudbuild.builds.editor",
    "roles/cloudfunctions.admin",
    "roles/cloudscheduler.admin",
    "roles/cloudtasks.admin",
    "roles/compute.loadBalancerAdmin",
    "roles/datastore.owner",
    "roles/iam.serviceAccountAdmin",
    "roles/monitoring.editor",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
  ]

  terraform_grants = {
    for role in local.terraform_roles : "terraform/${role}" => {
      member = "serviceAccount:${google_service_account.terraform.email}"
      role   = role
    }
  }

  # The accounts `terraform apply` attaches to the resources it creates, on
  # which it needs iam.serviceAccounts.actAs: the Cloud Run services' and
  # the function's runtime accounts, the function's build account, the
  # account on the Cloud Scheduler job's OIDC token, and the accounts the
  # Cloud Build triggers run as. Nothing else: Cloud Tasks queues name no
  # account (ingest and the dispatcher act as tasks-invoker themselves), and
  # smoke and terraform are only impersonated by the pipeline.
  terraform_acts_as = merge(
    { for k, sa in google_service_account.runtime : k => sa.name if contains(["ingest", "dispatcher"], k) },
    var.targetmock_enabled ? { targetmock = google_service_account.runtime["targetmock"].name } : {},
    var.sourcemock_enabled ? {
      sourcemock       = google_service_account.runtime["sourcemock"].name
      function_builder = google_service_account.function_builder.name
      scheduler        = google_service_account.scheduler.name
    } : {},
    var.cicd == null ? {} : {
      build = google_service_account.build.name
      ci    = google_service_account.ci.name
    },
  )
}

resource "google_service_account" "runtime" {
  for_each = local.runtime_services

  project      = var.project_id
  account_id   = "eventrelay-${each.key}"
  display_name = each.value
  description  = "Runtime identity of ${each.key}; nothing else runs as it."

  depends_on = [google_project_service.apis]
}

# The identity Cloud Tasks signs each task's OIDC token as. Only it may
# invoke the dispatcher.
resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "eventrelay-tasks-invoker"
  display_name = "eventrelay Cloud Tasks OIDC token identity"
  description  = "Cloud Tasks attaches ID tokens of this account to tasks; run.invoker on the dispatcher only."

  depends_on = [google_project_service.apis]
}

# Cloud Scheduler's identity when it invokes sourcemock.
resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "eventrelay-scheduler"
  display_name = "eventrelay Cloud Scheduler (sourcemock runs)"
  description  = "Invokes the sourcemock function on its schedule."

  depends_on = [google_project_service.apis]
}

# The identity the pipeline's smoke test sends events as: a source the
# ingest invoker list names explicitly.
resource "google_service_account" "smoke" {
  project      = var.project_id
  account_id   = "eventrelay-smoke"
  display_name = "eventrelay smoke-test source"
  description  = "Never holds keys; the build account mints ID tokens for it."

  depends_on = [google_project_service.apis]
}

# Cloud Build runs as this account: tests, images, revisions, smoke test,
# traffic. It changes infrastructure only by impersonating `terraform`.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "eventrelay-build"
  display_name = "eventrelay Cloud Build pipeline"
  description  = "Builds and releases; applies Terraform only through the terraform account."

  depends_on = [google_project_service.apis]
}

# Pull-request builds run as this account: tests, image builds without push,
# terraform fmt/validate. It holds no deploy rights, so code under review
# cannot reach the project.
resource "google_service_account" "ci" {
  project      = var.project_id
  account_id   = "eventrelay-ci"
  display_name = "eventrelay pull-request checks"
  description  = "Runs pull-request builds; may only write build logs."

  depends_on = [google_project_service.apis]
}

# Builds the sourcemock function's image (Cloud Functions gen 2 build).
resource "google_service_account" "function_builder" {
  project      = var.project_id
  account_id   = "eventrelay-fn-builder"
  display_name = "eventrelay function builder"
  description  = "Build service account of the sourcemock Cloud Function."

  depends_on = [google_project_service.apis]
}

# `terraform plan/apply` in the pipeline impersonates this account.
resource "google_service_account" "terraform" {
  project      = var.project_id
  account_id   = "eventrelay-terraform"
  display_name = "eventrelay Terraform"
  description  = "Applies this configuration; impersonated by the build account."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "project" {
  for_each = merge(local.telemetry_grants, local.firestore_grants, local.build_grants, local.terraform_grants)

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

# ---------------------------------------------------------------- resource-scoped grants

# ingest creates tasks whose OIDC token is signed as tasks_invoker, and so
# does the dispatcher when it requeues an event on its last attempt (ADR
# 0008, ADR 0010): both must be allowed to act as that account, and nothing
# else may.
resource "google_service_account_iam_member" "ingest_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.runtime["ingest"].email}"
}

resource "google_service_account_iam_member" "dispatcher_acts_as_tasks_invoker" {
  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.runtime["dispatcher"].email}"
}

# Deploying a revision that runs as an account requires actAs on it.
resource "google_service_account_iam_member" "build_acts_as_runtime" {
  for_each = google_service_account.runtime

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.build.email}"
}

resource "google_service_account_iam_member" "build_acts_as_function_builder" {
  service_account_id = google_service_account.function_builder.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.build.email}"
}

# Terraform's own actAs, on each account it must attach and nowhere else,
# instead of iam.serviceAccountUser on the project, which would let it act
# as every account in the project (trivy GCP-0011,
# https://cloud.google.com/iam/docs/impersonating-service-accounts).
# Each is documented as needed by the deployer: Cloud Run services and
# functions that run as a user-managed account
# (https://cloud.google.com/run/docs/configuring/services/service-identity,
# https://cloud.google.com/functions/docs/reference/iam/roles), a
# function's build account
# (https://cloud.google.com/functions/docs/securing/build-custom-sa), a
# Cloud Scheduler job's token account
# (https://cloud.google.com/scheduler/docs/http-target-auth), and a Cloud
# Build trigger's account
# (https://cloud.google.com/build/docs/securing-builds/configure-user-specified-service-accounts).
resource "google_service_account_iam_member" "terraform_acts_as" {
  for_each = local.terraform_acts_as

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.terraform.email}"
}

# The pipeline impersonates terraform for plan/apply and mints the smoke
# test's ID tokens as smoke.
resource "google_service_account_iam_member" "build_impersonates_terraform" {
  service_account_id = google_service_account.terraform.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.build.email}"
}

resource "google_service_account_iam_member" "build_mints_smoke_tokens" {
  service_account_id = google_service_account.smoke.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# eventrelay-fn-builder is the function's user-specified build service
# account. Google documents what such an account needs: Logs Writer for the
# build logs, Artifact Registry Writer for the built image, and access to
# the function source in Cloud Storage
# (https://cloud.google.com/functions/docs/securing/build-custom-sa and its
# 1st gen twin list roles/storage.objectViewer for the source;
# https://cloud.google.com/run/docs/configuring/services/build-service-account
# lists roles/storage.objectAdmin "for retrieving the function source ...
# and to store build images"). Each is granted at the narrowest scope that
# holds it: logs on the project (build_grants), the writer role on the
# function-images repository only (the docs name the repository's IAM
# policy as the place for it), and storage.objectViewer on the sources
# bucket the function is deployed from (storage_source, and the pipeline's
# `gcloud functions deploy --source gs://...`): the build only reads it,
# and its images go to Artifact Registry, not to a bucket. A build that
# cannot read its source fails with "Access to bucket ... denied. You must
# grant Storage Object Viewer permission to <build account>"
# (https://github.com/GoogleCloudPlatform/magic-modules/pull/11324). Cloud
# Build Builder is documented only for falling back to the default Compute
# Engine account, so it is not granted.
resource "google_artifact_registry_repository_iam_member" "function_builder_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.function_images.location
  repository = google_artifact_registry_repository.function_images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.function_builder.email}"
}

resource "google_storage_bucket_iam_member" "build_uploads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "function_builder_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function_builder.email}"
}
