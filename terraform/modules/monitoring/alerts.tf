# Alert policies. Each one's documentation links its playbook in
# docs/playbooks/<alert>.md (terraform test checks the file exists). An
# application metric is named through local.m, which takes it from its
# declared descriptor (descriptors.tf), so every policy on one is created
# after the descriptor; Cloud Run and Cloud Tasks metrics are built in.

locals {
  alert_common_labels = {
    app = "eventrelay"
    env = var.environment
  }
}

# The source gives up after 500 ms: warn while there is still headroom.
resource "google_monitoring_alert_policy" "ingest_latency" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay ingest p99 latency near the 500 ms budget"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "ingest p99 request latency > ${var.thresholds.ingest_p99_ms} ms for 5 min"

    condition_threshold {
      filter          = "metric.type = \"${local.m.run_request_latencies}\" AND ${local.ingest_run}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.thresholds.ingest_p99_ms
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
        group_by_fields      = ["resource.label.location"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay ingest p99 above ${var.thresholds.ingest_p99_ms} ms"
    content   = <<-EOT
      ingest's p99 latency is close to the source's 500 ms budget: events the
      source sees answered late are failed deliveries it never resends.

      Playbook: ${local.playbook["ingest-latency"]}
    EOT
  }
}

resource "google_monitoring_alert_policy" "ingest_5xx" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay ingest 5xx ratio"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "ingest 5xx / all requests > ${var.thresholds.ingest_5xx_ratio} for 5 min"

    condition_threshold {
      filter          = "metric.type = \"${local.m.run_request_count}\" AND ${local.ingest_run} AND metric.labels.response_code_class = \"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.thresholds.ingest_5xx_ratio
      duration        = "300s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.location"]
      }

      denominator_filter = "metric.type = \"${local.m.run_request_count}\" AND ${local.ingest_run}"

      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.location"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay ingest answering 5xx"
    content   = <<-EOT
      More than ${var.thresholds.ingest_5xx_ratio * 100}% of ingest's answers are 5xx. Every 5xx is an
      event the source considers failed and never resends.

      Playbook: ${local.playbook["ingest-5xx"]}
    EOT
  }
}

# The backlog is normal (the source outpaces the target); a backlog the
# target cannot drain within the threshold is not.
resource "google_monitoring_alert_policy" "backlog_age" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay backlog older than the target can drain"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "oldest undelivered event older than ${var.thresholds.backlog_age_seconds}s for 10 min"

    condition_threshold {
      filter          = "metric.type = \"${local.m.queue_oldest_age}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.thresholds.backlog_age_seconds
      duration        = "600s"

      # One series per shard (metric.label.queue), region and ingest
      # instance: the oldest task is the max across all of them.
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "queue depth needs more than ${var.thresholds.backlog_age_seconds}s to drain at ${var.target_rate_per_sec}/s, for 10 min"

    condition_threshold {
      filter          = "metric.type = \"${local.m.tasks_queue_depth}\" AND ${local.queue_scope}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.target_rate_per_sec * var.thresholds.backlog_age_seconds
      duration        = "600s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay backlog is not draining in time"
    content   = <<-EOT
      The oldest undelivered event is older than ${var.thresholds.backlog_age_seconds}s, or the queue
      holds more than the target can take in that time at ${var.target_rate_per_sec}/s. Nothing is
      lost (the queue is durable), but delivery is late and getting later. The dashboard's
      "by shard" charts show which shard of the queue is behind.

      Playbook: ${local.playbook["backlog-age"]}
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay events dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "dispatch attempts with outcome dead_lettered > 0"

    condition_threshold {
      filter          = "metric.type = \"${local.m.dispatch_attempts}\" AND metric.labels.outcome = \"dead_lettered\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay dead-lettered events"
    content   = <<-EOT
      At least one event used its last allowed attempt without reaching the target. Its status
      record says dead_lettered with the reason and keeps the payload for a replay.

      Playbook: ${local.playbook["dead-letters"]}
    EOT
  }
}

resource "google_monitoring_alert_policy" "target_rate_limited" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay target 429 storm"
  combiner              = "AND"
  severity              = "WARNING"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "rate_limited share of dispatch attempts > ${var.thresholds.rate_limited_ratio} for 10 min"

    condition_threshold {
      filter          = "metric.type = \"${local.m.dispatch_attempts}\" AND metric.labels.outcome = \"rate_limited\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.thresholds.rate_limited_ratio
      duration        = "600s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }

      denominator_filter = "metric.type = \"${local.m.dispatch_attempts}\""

      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "more than ${var.thresholds.rate_limited_min_per_sec} rate-limited attempts/s"

    condition_threshold {
      filter          = "metric.type = \"${local.m.dispatch_attempts}\" AND metric.labels.outcome = \"rate_limited\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.thresholds.rate_limited_min_per_sec
      duration        = "600s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay target answering 429"
    content   = <<-EOT
      The target rate-limits a large share of deliveries: its limit is below the queue's
      max_dispatches_per_second, or another client shares it. Retries back off, so nothing is
      lost, but every 429 is wasted work and delay.

      Playbook: ${local.playbook["target-rate-limited"]}
    EOT
  }
}

resource "google_monitoring_alert_policy" "reconciled_records" {
  project               = var.project_id
  display_name          = "[${var.environment}] eventrelay records whose task vanished"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels
  user_labels           = local.alert_common_labels

  conditions {
    display_name = "records the reconciler found without a task > 0"

    condition_threshold {
      # Every action counts, "found" (a dry run) included: each one is an
      # event the queue stopped carrying while its record was not final.
      filter          = "metric.type = \"${local.m.reconcile_records}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.action", "metric.label.cause"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "eventrelay records whose task vanished"
    content   = <<-EOT
      The reconciler found at least one event whose record was not final while its task was no
      longer in the queue: the last attempt was answered before the dispatcher ran, the status
      store and the queue failed together, or a task was deleted. It re-enqueued the event under
      its next task name, or dead-lettered it when RECONCILE_POLICY says so. Nothing is lost, but
      something upstream of the handler is dropping deliveries.

      Playbook: ${local.playbook["reconciled-records"]}
    EOT
  }
}
