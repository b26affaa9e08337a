output "ingest_uri" {
  description = "run.app URL of ingest in this region."
  value       = module.ingest.uri
}

output "ingest_service_name" {
  description = "Name of the ingest service (for the load balancer's serverless NEG)."
  value       = module.ingest.name
}

output "dispatcher_uri" {
  description = "run.app URL of the dispatcher in this region."
  value       = module.dispatcher.uri
}

output "queue_id" {
  description = "Resource name of this region's queue."
  value       = google_cloud_tasks_queue.events.id
}

output "queue_initial_rate_limits" {
  description = "The queue's rate limits as Terraform created them (ops and the governor own the live values, ADR 0005)."
  value = {
    max_dispatches_per_second = google_cloud_tasks_queue.events.rate_limits[0].max_dispatches_per_second
    max_concurrent_dispatches = google_cloud_tasks_queue.events.rate_limits[0].max_concurrent_dispatches
  }
}
