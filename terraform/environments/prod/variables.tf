variable "project_id" {
  type        = string
  description = "The prod project."
}

variable "primary_region" {
  type        = string
  description = "Region of the primary stack."
  default     = "europe-west1"
}

variable "secondary_region" {
  type        = string
  description = "HA option: second region behind the global load balancer (ADR 0006); null for one region."
  default     = null
}

variable "secondary_region_serving" {
  type        = bool
  description = "HA option: the secondary region's ingest serves behind the load balancer. Set it to true only after a pipeline run has released into secondary_region."
  default     = false
}

variable "ingest_domain" {
  type        = string
  description = "HA option: DNS name of the load balancer (required with secondary_region)."
  default     = null
}

variable "firestore_location" {
  type        = string
  description = "Firestore multi-region matching the primary region's continent."
  default     = "eur3"
}

variable "target_url" {
  type        = string
  description = "The real target's GraphQL endpoint."
}

variable "target_rate_limit_per_second" {
  type        = number
  description = "The real target's rate limit (initial rate of the queues together; ops own it afterwards, ADR 0005)."

  validation {
    condition     = var.target_rate_limit_per_second > 0
    error_message = "target_rate_limit_per_second must be positive."
  }
}

variable "queue_shards" {
  type        = number
  description = "Cloud Tasks queues per region sharing the target's limit; null takes ceil(limit per region / 500), Cloud Tasks' maximum per queue (docs/deployment.md, \"Queue shards\")."
  default     = null
}

variable "target_max_concurrency" {
  type        = number
  description = "Calls the real target accepts in flight."
  default     = 50
}

variable "source_service_accounts" {
  type        = list(string)
  description = "The source application's service accounts: the only callers of ingest."
}

variable "github_owner" {
  type        = string
  description = "GitHub owner of the repository the triggers watch."
}

variable "github_repo" {
  type        = string
  description = "GitHub repository name."
  default     = "eventrelay"
}

variable "notification_channels" {
  type        = list(string)
  description = "Notification channels (the on-call's) for the alerts."
}
