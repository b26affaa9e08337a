output "ip_address" {
  description = "Global address for the domain's A record."
  value       = google_compute_global_address.ingest.address
}
