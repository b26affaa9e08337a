output "ingest_urls" {
  description = "run.app URL of ingest in each region."
  value       = { for r, m in module.region : r => m.ingest_uri }
}

output "ingest_endpoint" {
  description = "What the source calls: the load balancer's https URL with the HA option, else the primary region's ingest URL."
  value       = var.secondary_region == null ? module.region[var.primary_region].ingest_uri : "https://${var.ingest_domain}"
}

output "ingest_lb_ip" {
  description = "HA option: the global address to point ingest_domain's DNS A record at (null without it)."
  value       = var.secondary_region == null ? null : module.ingest_lb[0].ip_address
}

output "ingest_lb_regions" {
  description = "HA option: regions whose ingest serves behind the load balancer (empty without it)."
  value       = var.secondary_region == null ? [] : module.ingest_lb[0].backend_regions
}

output "dispatcher_urls" {
  description = "run.app URL of the dispatcher in each region (reachable only from Cloud Tasks)."
  value       = { for r, m in module.region : r => m.dispatcher_uri }
}

output "queues" {
  description = "Cloud Tasks queue resource names in each region, shard 0 first."
  value       = { for r, m in module.region : r => m.queue_ids }
}

output "queue_names" {
  description = "Names of the queue shards, the same in every region: queue_name, then queue_name-1 ... (QUEUE_NAME, QUEUE_SHARDS)."
  value       = module.region[var.primary_region].queue_names
}

output "queue_initial_rate_limits" {
  description = "Each region's queues' rate limits as Terraform created them, by queue name: together they make the target's limit (ADR 0006). Ops and the governor own the live values (ADR 0005)."
  value       = { for r, m in module.region : r => m.queue_initial_rate_limits }
}

output "target_url" {
  description = "The GraphQL endpoint the dispatcher calls."
  value       = local.target_url
}

output "sourcemock_url" {
  description = "URL of the sourcemock function (null when disabled)."
  value       = var.sourcemock_enabled ? module.sourcemock[0].url : null
}

output "service_accounts" {
  description = "Email of every service account this configuration owns."
  value = merge(
    { for k, sa in google_service_account.runtime : k => sa.email },
    {
      tasks_invoker    = google_service_account.tasks_invoker.email
      scheduler        = google_service_account.scheduler.email
      smoke            = google_service_account.smoke.email
      build            = google_service_account.build.email
      ci               = google_service_account.ci.email
      function_builder = google_service_account.function_builder.email
      terraform        = google_service_account.terraform.email
    },
  )
}

output "image_repository" {
  description = "Artifact Registry path images are pushed to."
  value       = "${var.primary_region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "sources_bucket" {
  description = "Bucket the pipeline uploads function source zips to."
  value       = google_storage_bucket.sources.name
}

output "dashboard_id" {
  description = "Cloud Monitoring dashboard of the pipeline."
  value       = module.monitoring.dashboard_id
}
