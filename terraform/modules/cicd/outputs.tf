output "deploy_trigger_id" {
  description = "ID of the deploying trigger."
  value       = google_cloudbuild_trigger.deploy.trigger_id
}

output "checks_trigger_id" {
  description = "ID of the pull-request trigger."
  value       = google_cloudbuild_trigger.checks.trigger_id
}
