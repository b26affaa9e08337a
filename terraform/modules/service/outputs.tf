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

# What the service admits and how it runs, as planned: terraform test
# asserts the invariants of each caller (internal-only dispatcher, warm
# ingest, CPU allocation) on these.
output "ingress" {
  description = "Who can reach the service (INGRESS_TRAFFIC_*)."
  value       = google_cloud_run_v2_service.this.ingress
}

output "invoker_iam_disabled" {
  description = "Whether Cloud Run's invoker IAM check is off."
  value       = google_cloud_run_v2_service.this.invoker_iam_disabled
}

output "min_instances" {
  description = "Minimum instances of the revision template."
  value       = google_cloud_run_v2_service.this.template[0].scaling[0].min_instance_count
}

output "cpu_idle" {
  description = "Per container name: true when CPU is allocated only during requests."
  value       = { for c in google_cloud_run_v2_service.this.template[0].containers : c.name => c.resources[0].cpu_idle }
}

output "env" {
  description = "Environment of the application container, by name."
  value       = { for e in google_cloud_run_v2_service.this.template[0].containers[0].env : e.name => e.value }
}
