# Metric names the dashboard and the alerts rely on. The services export the
# eventrelay.* instruments through OpenTelemetry to Cloud Monitoring as
# workload.googleapis.com/<name>; docs/deployment.md lists them so the
# visibility work keeps them stable. Those an alert reads come from their
# declared descriptors (descriptors.tf), so every chart and policy on them is
# created after the descriptor exists.

locals {
  m = {
    ingest_requests   = "workload.googleapis.com/eventrelay.ingest.requests"
    ingest_duration   = "workload.googleapis.com/eventrelay.ingest.duration"
    enqueue_duration  = "workload.googleapis.com/eventrelay.queue.enqueue.duration"
    dispatch_attempts = google_monitoring_metric_descriptor.dispatch_attempts.type
    target_duration   = "workload.googleapis.com/eventrelay.target.duration"
    delivery_lag      = "workload.googleapis.com/eventrelay.delivery.lag"
    queue_backlog     = "workload.googleapis.com/eventrelay.queue.backlog"
    queue_oldest_age  = google_monitoring_metric_descriptor.queue_oldest_age.type
    ingest_duplicates = "workload.googleapis.com/eventrelay.ingest.duplicates"
    reconcile_records = google_monitoring_metric_descriptor.reconcile_records.type

    run_request_count     = "run.googleapis.com/request_count"
    run_request_latencies = "run.googleapis.com/request_latencies"

    tasks_queue_depth   = "cloudtasks.googleapis.com/queue/depth"
    tasks_attempt_count = "cloudtasks.googleapis.com/queue/task_attempt_count"
    tasks_api_requests  = "cloudtasks.googleapis.com/api/request_count"
  }

  ingest_run = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${var.ingest_service}\""
  # Every shard of the queue in every region: the base name and base-<i>
  # (queue.ShardName). queue_name holds only letters, digits and hyphens,
  # so it needs no escaping in the RE2 pattern
  # (https://cloud.google.com/monitoring/api/v3/filters, monitoring.regex.full_match).
  queue_scope = "resource.type = \"cloud_tasks_queue\" AND resource.labels.queue_id = monitoring.regex.full_match(\"${var.queue_name}(-[0-9]+)?\")"

  playbook = {
    for a in ["ingest-latency", "ingest-5xx", "backlog-age", "dead-letters", "target-rate-limited", "reconciled-records"] :
    a => "${var.playbook_base_url}/${a}.md"
  }
}
