output "ip_address" {
  description = "Global address for the domain's A record."
  value       = google_compute_global_address.ingest.address
}

output "backend_regions" {
  description = "Regions whose ingest serves behind the load balancer."
  value       = sort(keys(google_compute_region_network_endpoint_group.ingest))
}
