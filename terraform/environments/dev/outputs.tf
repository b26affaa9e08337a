output "ingest_endpoint" {
  description = "What the source calls."
  value       = module.eventrelay.ingest_endpoint
}

output "ingest_urls" {
  description = "ingest's run.app URL per region."
  value       = module.eventrelay.ingest_urls
}

output "ingest_lb_ip" {
  description = "HA option: address for the ingest domain's DNS record."
  value       = module.eventrelay.ingest_lb_ip
}

output "queues" {
  description = "Cloud Tasks queues per region, shard 0 first."
  value       = module.eventrelay.queues
}

output "queue_names" {
  description = "Names of the queue shards, the same in every region (QUEUE_NAME is the first)."
  value       = module.eventrelay.queue_names
}

output "queue_initial_rate_limits" {
  description = "Each queue's rate limits as Terraform created them, per region and queue name; ops own the live values (ADR 0005)."
  value       = module.eventrelay.queue_initial_rate_limits
}

output "target_url" {
  description = "Where the dispatcher delivers."
  value       = module.eventrelay.target_url
}

output "sourcemock_url" {
  description = "sourcemock function URL (dev)."
  value       = module.eventrelay.sourcemock_url
}

output "service_accounts" {
  description = "Every service account of the system."
  value       = module.eventrelay.service_accounts
}

output "image_repository" {
  description = "Where the pipeline pushes images."
  value       = module.eventrelay.image_repository
}

output "sources_bucket" {
  description = "Where the pipeline uploads function sources."
  value       = module.eventrelay.sources_bucket
}
