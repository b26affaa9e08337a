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

output "queue_names" {
  description = "Names of this region's queues, shard 0 first (shard 0 is the base name, shard i base-<i>)."
  value       = google_cloud_tasks_queue.events[*].name
}

output "queue_ids" {
  description = "Resource names of this region's queues, shard 0 first."
  value       = google_cloud_tasks_queue.events[*].id
}

output "queue_initial_rate_limits" {
  description = "Each queue's rate limits as Terraform created them, by queue name (ops and the governor own the live values, ADR 0005)."
  value = {
    for q in google_cloud_tasks_queue.events : q.name => {
      max_dispatches_per_second = q.rate_limits[0].max_dispatches_per_second
      max_concurrent_dispatches = q.rate_limits[0].max_concurrent_dispatches
    }
  }
}
