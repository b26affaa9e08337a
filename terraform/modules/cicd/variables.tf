variable "project_id" {
  type        = string
  description = "Project the builds run in."
}

variable "environment" {
  type        = string
  description = "Environment the main-branch build deploys to."
}

variable "location" {
  type        = string
  description = "Location of the triggers: global for the Cloud Build GitHub App connection."
  default     = "global"
}

variable "github_owner" {
  type        = string
  description = "GitHub owner of the repository (the Cloud Build GitHub App must be installed)."
}

variable "github_repo" {
  type        = string
  description = "GitHub repository name."
}

variable "deploy_branch" {
  type        = string
  description = "Regex of the branch whose pushes deploy, e.g. ^main$."
}

variable "require_approval" {
  type        = bool
  description = "Hold every deploying build until someone with Cloud Build approver rights approves it."
}

variable "service_account" {
  type        = string
  description = "Service account (projects/P/serviceAccounts/EMAIL) deploying builds run as."
}

variable "pr_service_account" {
  type        = string
  description = "Service account pull-request builds run as (no deploy rights)."
}

variable "substitutions" {
  type        = map(string)
  description = "User substitutions for cloudbuild.yaml; every key starts with an underscore."

  validation {
    condition     = alltrue([for k in keys(var.substitutions) : can(regex("^_[A-Z0-9_]+$", k))])
    error_message = "Cloud Build user substitutions must start with _ and use A-Z, 0-9 and _."
  }
}
