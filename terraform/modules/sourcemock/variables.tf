variable "project_id" {
  type        = string
  description = "Project of the function."
}

variable "region" {
  type        = string
  description = "Region of the function and its scheduler job."
}

variable "labels" {
  type        = map(string)
  description = "Labels on the function."
}

variable "source_bucket" {
  type        = string
  description = "Bucket holding the function's source zips."
}

variable "source_object" {
  type        = string
  description = "Source zip of the first deployment (make function-zip); the pipeline owns later releases."
}

variable "runtime" {
  type        = string
  description = "Cloud Functions Go runtime id."
}

variable "service_account" {
  type        = string
  description = "Email of sourcemock's own runtime service account (an allowed ingest invoker)."
}

variable "build_service_account" {
  type        = string
  description = "Build service account of the function (projects/P/serviceAccounts/EMAIL)."
}

variable "docker_repository" {
  type        = string
  description = "Artifact Registry repository the function's image is pushed to (projects/P/locations/L/repositories/R), in the function's project and region. Its tags must be mutable: every build moves the function's cache tag."
}

variable "ingest_url" {
  type        = string
  description = "Base URL of ingest (INGEST_URL)."
}

variable "ingest_audience" {
  type        = string
  description = "Audience of the ID tokens sourcemock mints for ingest (TOKEN_AUDIENCE): ingest's custom audience, which ingest checks."
}

variable "schedule" {
  type = object({
    cron      = string
    time_zone = string
    count     = number
    rate      = number
    paused    = bool
  })
  description = "Cloud Scheduler job invoking the function with {count, rate}; null for none."

  validation {
    condition     = var.schedule == null || try((var.schedule.count - 1) / var.schedule.rate <= 300, false)
    error_message = "A scheduled run must fit in the function's MAX_DURATION (5m): (count - 1) / rate <= 300."
  }
}

variable "scheduler_service_account" {
  type        = string
  description = "Email of the account Cloud Scheduler signs its OIDC token as."
}

variable "deployer_service_account" {
  type        = string
  description = "Email of the pipeline's account, which deploys new function sources."
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL."
}
