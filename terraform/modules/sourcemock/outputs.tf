output "url" {
  description = "URL of the function."
  value       = google_cloudfunctions2_function.sourcemock.service_config[0].uri
}
