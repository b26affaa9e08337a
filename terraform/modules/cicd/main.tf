# Cloud Build triggers running cloudbuild.yaml.
#
# - deploy: pushes to the deploy branch test, build and push images, plan and
#   apply Terraform, deploy with --no-traffic, smoke-test, shift traffic. It
#   runs as the build account, optionally behind a manual approval.
# - checks: pull requests run the same tests, build the images without
#   pushing and check the Terraform, as an account that cannot deploy.

resource "google_cloudbuild_trigger" "deploy" {
  project         = var.project_id
  location        = var.location
  name            = "eventrelay-${var.environment}-deploy"
  description     = "Test, build, apply, deploy --no-traffic, smoke test, shift traffic."
  filename        = "cloudbuild.yaml"
  service_account = var.service_account

  github {
    owner = var.github_owner
    name  = var.github_repo

    push {
      branch = var.deploy_branch
    }
  }

  substitutions = merge(var.substitutions, { _DEPLOY = "true" })

  approval_config {
    approval_required = var.require_approval
  }

  include_build_logs = "INCLUDE_BUILD_LOGS_WITH_STATUS"
}

resource "google_cloudbuild_trigger" "checks" {
  project         = var.project_id
  location        = var.location
  name            = "eventrelay-${var.environment}-checks"
  description     = "Pull requests: tests, image builds, Terraform checks. Deploys nothing."
  filename        = "cloudbuild.yaml"
  service_account = var.pr_service_account

  github {
    owner = var.github_owner
    name  = var.github_repo

    pull_request {
      branch = var.deploy_branch
      # Builds of pull requests from outside contributors wait for a
      # maintainer's /gcbrun comment.
      comment_control = "COMMENTS_ENABLED_FOR_EXTERNAL_CONTRIBUTORS_ONLY"
    }
  }

  substitutions = merge(var.substitutions, { _DEPLOY = "false" })

  include_build_logs = "INCLUDE_BUILD_LOGS_WITH_STATUS"
}
