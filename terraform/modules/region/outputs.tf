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
