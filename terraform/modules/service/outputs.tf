output "name" {
  description = "Name of the service."
  value       = google_cloud_run_v2_service.this.name
}

output "location" {
  description = "Region of the service."
  value       = google_cloud_run_v2_service.this.location
}

output "uri" {
  description = "run.app URL of the service."
  value       = google_cloud_run_v2_service.this.uri
}

output "collector_config_secret" {
  description = "Secret Manager secret holding the collector sidecar's configuration."
  value       = google_secret_manager_secret.collector_config.id
}
