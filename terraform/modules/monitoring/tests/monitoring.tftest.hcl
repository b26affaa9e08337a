# terraform test for the dashboard and alerts, planned against the real
# google provider schema with a mocked provider. Run from this module's
# directory: terraform init -backend=false && terraform test

mock_provider "google" {}

variables {
  project_id          = "eventrelay-test"
  environment         = "test"
  queue_name          = "events"
  regions             = ["europe-west1"]
  ingest_service      = "ingest"
  dispatcher_service  = "dispatcher"
  target_rate_per_sec = 50
  thresholds = {
    ingest_p99_ms            = 300
    ingest_5xx_ratio         = 0.01
    backlog_age_seconds      = 600
    rate_limited_ratio       = 0.2
    rate_limited_min_per_sec = 1
  }
  notification_channels = ["projects/eventrelay-test/notificationChannels/1"]
  playbook_base_url     = "https://github.com/example/eventrelay/blob/main/docs/playbooks"
}

# Cloud Monitoring refuses an alert on a metric type nothing has written
# (ADR 0011): every metric type an alert condition names is either built in
# or declared by this module.
run "no_alert_needs_a_metric_that_does_not_exist" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for p in [
        google_monitoring_alert_policy.ingest_latency,
        google_monitoring_alert_policy.ingest_5xx,
        google_monitoring_alert_policy.backlog_age,
        google_monitoring_alert_policy.dead_letters,
        google_monitoring_alert_policy.target_rate_limited,
        google_monitoring_alert_policy.reconciled_records,
        ] : [
        for c in p.conditions : [
          for f in [c.condition_threshold[0].filter, c.condition_threshold[0].denominator_filter] : [
            for t in regexall("metric\\.type = \"([^\"]+)\"", f) :
            startswith(t[0], "run.googleapis.com/") || startswith(t[0], "cloudtasks.googleapis.com/") || contains([
              google_monitoring_metric_descriptor.dispatch_attempts.type,
              google_monitoring_metric_descriptor.queue_oldest_age.type,
              google_monitoring_metric_descriptor.reconcile_records.type,
            ], t[0])
          ] if f != null && f != ""
        ]
      ]
    ]))
    error_message = "an alert condition names a workload metric without a declared descriptor (descriptors.tf): its creation fails with 404 on a fresh project"
  }

  assert {
    condition = alltrue(flatten([
      for p in [
        google_monitoring_alert_policy.ingest_latency,
        google_monitoring_alert_policy.ingest_5xx,
        google_monitoring_alert_policy.backlog_age,
        google_monitoring_alert_policy.dead_letters,
        google_monitoring_alert_policy.target_rate_limited,
        google_monitoring_alert_policy.reconciled_records,
      ] : [for c in p.conditions : length(regexall("metric\\.type = ", c.condition_threshold[0].filter)) == 1]
    ]))
    error_message = "every alert condition must name exactly one metric type (the check above reads it)"
  }

  assert {
    condition = alltrue([
      for d in [
        google_monitoring_metric_descriptor.dispatch_attempts,
        google_monitoring_metric_descriptor.queue_oldest_age,
        google_monitoring_metric_descriptor.reconcile_records,
      ] :
      startswith(d.type, "workload.googleapis.com/eventrelay.") && d.deletion_policy == "ABANDON"
    ])
    error_message = "declared descriptors are workload.googleapis.com/eventrelay.* and abandoned, never deleted, with their history"
  }
}

run "every_alert_links_an_existing_playbook" {
  command = plan

  assert {
    condition     = alltrue([for name in keys(output.alert_policies) : fileexists("${path.module}/../../../docs/playbooks/${name}.md")])
    error_message = "every alert needs its playbook in docs/playbooks/<alert>.md"
  }

  assert {
    condition = alltrue([
      for name, p in {
        "ingest-latency"      = google_monitoring_alert_policy.ingest_latency,
        "ingest-5xx"          = google_monitoring_alert_policy.ingest_5xx,
        "backlog-age"         = google_monitoring_alert_policy.backlog_age,
        "dead-letters"        = google_monitoring_alert_policy.dead_letters,
        "target-rate-limited" = google_monitoring_alert_policy.target_rate_limited,
        "reconciled-records"  = google_monitoring_alert_policy.reconciled_records,
      } : strcontains(p.documentation[0].content, "${var.playbook_base_url}/${name}.md")
    ])
    error_message = "every alert's documentation links its playbook"
  }

  assert {
    condition     = length(output.alert_policies) == 6
    error_message = "the list of alerts checked here must grow with alerts.tf"
  }

  assert {
    condition = alltrue([
      for p in [
        google_monitoring_alert_policy.ingest_latency,
        google_monitoring_alert_policy.ingest_5xx,
        google_monitoring_alert_policy.backlog_age,
        google_monitoring_alert_policy.dead_letters,
        google_monitoring_alert_policy.target_rate_limited,
        google_monitoring_alert_policy.reconciled_records,
      ] : toset(p.notification_channels) == toset(var.notification_channels)
    ])
    error_message = "every alert notifies the configured channels"
  }
}

# The queue's depth is summed over every shard (events, events-1, ...) in
# every region: a backlog on a shard other than the first must still raise
# backlog-age.
run "queue_depth_covers_every_shard" {
  command = plan

  assert {
    condition = anytrue([
      for c in google_monitoring_alert_policy.backlog_age.conditions :
      strcontains(try(c.condition_threshold[0].filter, ""), "resource.labels.queue_id = monitoring.regex.full_match(\"events(-[0-9]+)?\")")
    ])
    error_message = "the backlog-age alert's queue depth must match the base queue and every shard named <base>-<i>"
  }
}

# The backlog gauges have one series per shard (metric.label.queue), region
# and ingest instance, every instance reporting the same value for a shard.
# The oldest age is aggregated with a max, whatever it groups by. A backlog
# series is one shard's (grouped by shard and region, the max across the
# instances: a sum would count a shard once per instance), stacked so the
# chart adds the shards up. And a chart shows each shard.
run "backlog_gauges_aggregate_across_shards" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for c in google_monitoring_alert_policy.backlog_age.conditions : [
        for a in c.condition_threshold[0].aggregations : a.cross_series_reducer == "REDUCE_MAX"
      ] if strcontains(c.condition_threshold[0].filter, google_monitoring_metric_descriptor.queue_oldest_age.type)
    ]))
    error_message = "the backlog-age alert must take the max of the oldest age across shards"
  }

  assert {
    condition = alltrue(flatten([
      for t in jsondecode(google_monitoring_dashboard.eventrelay.dashboard_json).mosaicLayout.tiles : [
        for d in t.widget.xyChart.dataSets :
        d.timeSeriesQuery.timeSeriesFilter.aggregation.crossSeriesReducer == "REDUCE_MAX"
        if strcontains(d.timeSeriesQuery.timeSeriesFilter.filter, "/eventrelay.queue.oldest_age\"")
      ]
    ]))
    error_message = "every chart of the oldest age must take the max across series"
  }

  assert {
    condition = alltrue(flatten([
      for t in jsondecode(google_monitoring_dashboard.eventrelay.dashboard_json).mosaicLayout.tiles : [
        for d in t.widget.xyChart.dataSets :
        d.timeSeriesQuery.timeSeriesFilter.aggregation.crossSeriesReducer == "REDUCE_MAX" &&
        contains(d.timeSeriesQuery.timeSeriesFilter.aggregation.groupByFields, "metric.label.queue") &&
        contains(d.timeSeriesQuery.timeSeriesFilter.aggregation.groupByFields, "resource.label.location") &&
        d.plotType == "STACKED_AREA"
        if strcontains(d.timeSeriesQuery.timeSeriesFilter.filter, "/eventrelay.queue.backlog\"")
      ]
    ]))
    error_message = "every chart of the backlog gauge must show one shard per series (max across instances, by shard and region), stacked to sum the shards"
  }

  assert {
    condition = length(flatten([
      for t in jsondecode(google_monitoring_dashboard.eventrelay.dashboard_json).mosaicLayout.tiles : [
        for d in t.widget.xyChart.dataSets : t.widget.title
        if strcontains(d.timeSeriesQuery.timeSeriesFilter.filter, "/eventrelay.queue.backlog\"") &&
        contains(d.timeSeriesQuery.timeSeriesFilter.aggregation.groupByFields, "metric.label.queue")
      ]
    ])) >= 1
    error_message = "the dashboard must chart the backlog of each shard"
  }

  assert {
    condition     = contains([for l in google_monitoring_metric_descriptor.queue_oldest_age.labels : l.key], "queue")
    error_message = "the oldest-age descriptor must declare the queue label the gauges write"
  }
}
