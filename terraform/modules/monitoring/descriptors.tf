# The application metrics the alerts read, declared before any instance has
# written them (ADR 0011). Cloud Monitoring refuses an alert policy on a
# metric type it has not seen with 404 "Cannot find metric(s) that match
# type", so on a fresh project the alerts could not be created until the
# services had run. The collector's googlecloud exporter creates or updates
# the same descriptors when it first writes each metric, and Cloud
# Monitoring's create "updates the descriptor if it already exists, except
# that metric labels are never removed"
# (https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.metricDescriptors/create),
# so each block below says exactly what the exporter writes, in literals:
#   - type: workload.googleapis.com/<instrument name>; display_name: the name;
#   - description and unit: the instrument's;
#   - kind and value type: a monotonic int64 counter is CUMULATIVE INT64, a
#     float64 gauge GAUGE DOUBLE;
#   - labels: the point attributes, plus service_name (from the resource's
#     service.name) and instrumentation_source / instrumentation_version
#     (the meter's scope), which the exporter adds by default.
# internal/telemetry.Declared() holds the same values; internal/infra checks
# this file against them, and the instrumented packages' tests check their
# instruments against them.
#
# A change of labels forces a new descriptor in the provider (a plan shows
# "labels { # forces replacement"). deletion_policy ABANDON makes that
# replacement (or a destroy) leave the descriptor and its data in place:
# deleting a descriptor deletes the metric's history. The replacement's
# create call then updates the existing descriptor: a label added is added
# in place, with the history kept; a label removed stays (labels are never
# removed). ADR 0011 says more.

resource "google_monitoring_metric_descriptor" "dispatch_attempts" {
  project         = var.project_id
  type            = "workload.googleapis.com/eventrelay.dispatch.attempts"
  display_name    = "eventrelay.dispatch.attempts"
  description     = "Deliveries the dispatcher handled, by the attempt's outcome."
  metric_kind     = "CUMULATIVE"
  value_type      = "INT64"
  unit            = "{attempt}"
  deletion_policy = "ABANDON"

  labels {
    key        = "outcome"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_source"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_version"
    value_type = "STRING"
  }

  labels {
    key        = "service_name"
    value_type = "STRING"
  }
}

resource "google_monitoring_metric_descriptor" "queue_oldest_age" {
  project         = var.project_id
  type            = "workload.googleapis.com/eventrelay.queue.oldest_age"
  display_name    = "eventrelay.queue.oldest_age"
  description     = "Age of the oldest unfinished task in the queue."
  metric_kind     = "GAUGE"
  value_type      = "DOUBLE"
  unit            = "s"
  deletion_policy = "ABANDON"

  # The engine queue (a shard's name with QUEUE_SHARDS > 1): one series per
  # shard, which every chart and alert aggregates (max across shards).
  labels {
    key        = "queue"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_source"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_version"
    value_type = "STRING"
  }

  labels {
    key        = "service_name"
    value_type = "STRING"
  }
}

resource "google_monitoring_metric_descriptor" "reconcile_records" {
  project         = var.project_id
  type            = "workload.googleapis.com/eventrelay.reconcile.records"
  display_name    = "eventrelay.reconcile.records"
  description     = "Records whose task was gone from the queue while they were not final, by cause and by what the reconciler did."
  metric_kind     = "CUMULATIVE"
  value_type      = "INT64"
  unit            = "{record}"
  deletion_policy = "ABANDON"

  labels {
    key        = "action"
    value_type = "STRING"
  }

  labels {
    key        = "cause"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_source"
    value_type = "STRING"
  }

  labels {
    key        = "instrumentation_version"
    value_type = "STRING"
  }

  labels {
    key        = "service_name"
    value_type = "STRING"
  }
}
