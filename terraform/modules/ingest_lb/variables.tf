variable "project_id" {
  type        = string
  description = "Project of the load balancer."
}

variable "domain" {
  type        = string
  description = "DNS name the source calls; gets a Google-managed certificate."

  validation {
    condition     = var.domain != null && can(regex("^[a-z0-9.-]+\\.[a-z]+$", var.domain))
    error_message = "The HA option needs ingest_domain, a DNS name such as ingest.example.com."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels on the resources that take them."
}

variable "backends" {
  type        = map(string)
  description = "Cloud Run ingest service name by region: one serverless NEG each. One region while a new region waits for its first release, two once it serves."

  validation {
    condition     = length(var.backends) >= 1
    error_message = "The load balancer needs at least one region's ingest."
  }
}
