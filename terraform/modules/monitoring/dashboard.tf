# One dashboard for ops: is the target fed at its limit, how big and how old
# is the backlog, what fails. Three charts per row, in reading order.

locals {
  charts = [
    # Row 1: ingest, what the source sees.
    {
      title = "ingest requests/s by outcome"
      y     = "requests/s"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.ingest_requests}\""
        aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.outcome"], plot = "STACKED_AREA"
      }]
    },
    {
      title = "ingest latency p50 / p99 (ms, Cloud Run) vs the 500 ms budget"
      y     = "ms"
      lines = [500]
      series = [
        {
          filter  = "metric.type = \"${local.m.run_request_latencies}\" AND ${local.ingest_run}"
          aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = ["resource.label.location"], plot = "LINE"
        },
        {
          filter  = "metric.type = \"${local.m.run_request_latencies}\" AND ${local.ingest_run}"
          aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = ["resource.label.location"], plot = "LINE"
        },
      ]
    },
    {
      title = "ingest responses/s by class (Cloud Run)"
      y     = "responses/s"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.run_request_count}\" AND ${local.ingest_run}"
        aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.response_code_class"], plot = "STACKED_BAR"
      }]
    },

    # Row 2: the backlog and the rate it drains at.
    {
      title = "queue depth (Cloud Tasks)"
      y     = "tasks"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.tasks_queue_depth}\" AND ${local.queue_scope}"
        aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group_by = ["resource.label.location"], plot = "LINE"
      }]
    },
    {
      title = "oldest undelivered event (s)"
      y     = "seconds"
      lines = [var.thresholds.backlog_age_seconds]
      # The oldest of every shard, region and instance: the max across them.
      series = [{
        filter  = "metric.type = \"${local.m.queue_oldest_age}\""
        aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group_by = [], plot = "LINE"
      }]
    },
    {
      title = "delivered/s vs the target's limit (${var.target_rate_per_sec}/s)"
      y     = "events/s"
      lines = [var.target_rate_per_sec]
      series = [{
        filter  = "metric.type = \"${local.m.dispatch_attempts}\" AND metric.labels.outcome = \"delivered\""
        aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [], plot = "LINE"
      }]
    },

    # Row 3: the shards of the queue, one line per shard and region, to see
    # which one is behind. Every ingest instance reports the same value for
    # a shard, so a shard's series is the max across instances (a sum would
    # count it once per instance); the stacked areas add the shards up.
    {
      title = "backlog by shard (tasks)"
      y     = "tasks"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.queue_backlog}\""
        aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group_by = ["resource.label.location", "metric.label.queue"], plot = "STACKED_AREA"
      }]
    },
    {
      title = "oldest unfinished task by shard (s)"
      y     = "seconds"
      lines = [var.thresholds.backlog_age_seconds]
      series = [{
        filter  = "metric.type = \"${local.m.queue_oldest_age}\""
        aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group_by = ["resource.label.location", "metric.label.queue"], plot = "LINE"
      }]
    },
    {
      title = "queue depth by shard (Cloud Tasks)"
      y     = "tasks"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.tasks_queue_depth}\" AND ${local.queue_scope}"
        aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group_by = ["resource.label.location", "resource.label.queue_id"], plot = "STACKED_AREA"
      }]
    },

    # Row 4: delivery outcomes.
    {
      title = "dispatch attempts/s by outcome"
      y     = "attempts/s"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.dispatch_attempts}\""
        aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.outcome"], plot = "STACKED_AREA"
      }]
    },
    {
      title = "delivery lag received → delivered, p50 / p99 (s)"
      y     = "seconds"
      lines = []
      series = [
        {
          filter  = "metric.type = \"${local.m.delivery_lag}\""
          aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_50", group_by = [], plot = "LINE"
        },
        {
          filter  = "metric.type = \"${local.m.delivery_lag}\""
          aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = [], plot = "LINE"
        },
      ]
    },
    {
      title = "dead-lettered events (per 5 min)"
      y     = "events"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.dispatch_attempts}\" AND metric.labels.outcome = \"dead_lettered\""
        aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group_by = [], plot = "STACKED_BAR"
      }]
    },

    # Row 5: the target and the queue's own view.
    {
      title = "target call latency p99 (s)"
      y     = "seconds"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.target_duration}\""
        aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = [], plot = "LINE"
      }]
    },
    {
      title = "task attempts/s by dispatcher response (Cloud Tasks)"
      y     = "attempts/s"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.tasks_attempt_count}\" AND ${local.queue_scope}"
        aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = ["metric.label.response_code"], plot = "STACKED_AREA"
      }]
    },
    {
      title = "duplicates suppressed/s and enqueue p99 (s)"
      y     = "events/s"
      lines = []
      series = [
        {
          filter  = "metric.type = \"${local.m.ingest_duplicates}\""
          aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group_by = [], plot = "LINE"
        },
        {
          filter  = "metric.type = \"${local.m.enqueue_duration}\""
          aligner = "ALIGN_DELTA", reducer = "REDUCE_PERCENTILE_99", group_by = [], plot = "LINE"
        },
      ]
    },

    # Row 6: what the reconciler found.
    {
      title = "records reconciled (per 5 min)"
      y     = "records"
      lines = []
      series = [{
        filter  = "metric.type = \"${local.m.reconcile_records}\""
        aligner = "ALIGN_DELTA", reducer = "REDUCE_SUM", group_by = ["metric.label.action"], plot = "STACKED_BAR"
      }]
    },
  ]

  tiles = [
    for i, c in local.charts : {
      xPos   = (i % 3) * 16
      yPos   = floor(i / 3) * 16
      width  = 16
      height = 16
      widget = {
        title = c.title
        xyChart = {
          dataSets = [
            for s in c.series : {
              plotType   = s.plot
              targetAxis = "Y1"
              timeSeriesQuery = {
                timeSeriesFilter = {
                  filter = s.filter
                  aggregation = {
                    alignmentPeriod    = "60s"
                    perSeriesAligner   = s.aligner
                    crossSeriesReducer = s.reducer
                    groupByFields      = s.group_by
                  }
                }
              }
            }
          ]
          thresholds = [for v in c.lines : { value = v, targetAxis = "Y1" }]
          yAxis = {
            label = c.y
            scale = "LINEAR"
          }
        }
      }
    }
  ]
}

resource "google_monitoring_dashboard" "eventrelay" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "eventrelay (${var.environment})"
    mosaicLayout = {
      columns = 48
      tiles   = local.tiles
    }
  })
}
