variable "project_id" {
  type        = string
  description = "The dev project."
}

variable "primary_region" {
  type        = string
  description = "Region of the dev stack."
  default     = "europe-west1"
}

variable "github_owner" {
  type        = string
  description = "GitHub owner of the repository the triggers watch; null creates no trigger."
  default     = null
}

variable "github_repo" {
  type        = string
  description = "GitHub repository name."
  default     = "eventrelay"
}

variable "source_service_accounts" {
  type        = list(string)
  description = "The source application's service accounts (dev: often none besides sourcemock)."
  default     = []
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channels for the alerts."
  default     = []
}

variable "queue_shards" {
  type        = number
  description = "Cloud Tasks queues per region sharing the target's limit; null takes ceil(limit per region / 500), Cloud Tasks' maximum per queue (docs/deployment.md, \"Queue shards\")."
  default     = null
}
