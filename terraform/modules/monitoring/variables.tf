variable "project_id" {
  type        = string
  description = "Project of the dashboard and alert policies."
}

variable "environment" {
  type        = string
  description = "Environment name shown in titles."
}

variable "queue_name" {
  type        = string
  description = "Base name of the Cloud Tasks queues (the same in every region): the charts and alerts cover it and every shard named <queue_name>-<i>."
}

variable "regions" {
  type        = list(string)
  description = "Regions of the stacks (for titles only; filters cover every region)."
}

variable "ingest_service" {
  type        = string
  description = "Cloud Run service name of ingest."
}

variable "dispatcher_service" {
  type        = string
  description = "Cloud Run service name of the dispatcher."
}

variable "target_rate_per_sec" {
  type        = number
  description = "The target's limit the system was provisioned with: drawn on the delivery chart and used to turn queue depth into drain time."
}

variable "thresholds" {
  type = object({
    ingest_p99_ms            = number
    ingest_5xx_ratio         = number
    backlog_age_seconds      = number
    rate_limited_ratio       = number
    rate_limited_min_per_sec = number
  })
  description = "Alert thresholds (see the eventrelay module)."
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channel IDs every alert notifies."
}

variable "playbook_base_url" {
  type        = string
  description = "URL of docs/playbooks; each alert links <base>/<alert>.md."
}
