output "database_name" {
  description = "Database id for FIRESTORE_DATABASE."
  value       = google_firestore_database.status.name
}

output "collection" {
  description = "Collection of status records."
  value       = var.collection
}
