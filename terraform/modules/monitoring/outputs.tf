output "dashboard_id" {
  description = "Resource name of the dashboard."
  value       = google_monitoring_dashboard.eventrelay.id
}

output "alert_policies" {
  description = "Alert policy resource names by playbook."
  value = {
    "ingest-latency"      = google_monitoring_alert_policy.ingest_latency.name
    "ingest-5xx"          = google_monitoring_alert_policy.ingest_5xx.name
    "backlog-age"         = google_monitoring_alert_policy.backlog_age.name
    "dead-letters"        = google_monitoring_alert_policy.dead_letters.name
    "target-rate-limited" = google_monitoring_alert_policy.target_rate_limited.name
    "reconciled-records"  = google_monitoring_alert_policy.reconciled_records.name
  }
}
