variable "project_id" {
  type        = string
  description = "Project of the service."
}

variable "region" {
  type        = string
  description = "Region of the service and of its collector configuration secret."
}

variable "name" {
  type        = string
  description = "Cloud Run service name; also the name of its application container (the pipeline deploys images to it)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name must be a Cloud Run service name: lowercase letters, digits and hyphens."
  }
}

variable "description" {
  type        = string
  description = "What the service does (shown in the console)."
}

variable "labels" {
  type        = map(string)
  description = "Labels on the service, its revisions and its secret."
}

variable "deletion_protection" {
  type        = bool
  description = "Terraform-side deletion protection of the service."
}

variable "ingress" {
  type        = string
  description = "Who can reach the service: INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "ingress must be one of INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

variable "custom_audiences" {
  type        = list(string)
  description = "Custom audiences Cloud Run accepts in ID tokens besides the service URL."
  default     = []
}

variable "invoker_iam_disabled" {
  type        = bool
  description = "Disable Cloud Run's invoker IAM check. Policy allows it only on targetmock, the dev test double."
  default     = false
}

variable "service_account" {
  type        = string
  description = "Email of the service's own runtime service account; it also reads the collector's configuration secret."
}

variable "deployer_service_account" {
  type        = string
  description = "Email of the pipeline's account, which deploys revisions and shifts traffic (run.developer on this service)."
}

variable "image" {
  type        = string
  description = "Application image of the first revision; the pipeline owns it afterwards (lifecycle.ignore_changes)."
}

variable "request_timeout" {
  type        = string
  description = "Request timeout of the service, in seconds with an s suffix (e.g. 10s)."

  validation {
    condition     = can(regex("^[0-9]+s$", var.request_timeout))
    error_message = "request_timeout must be a number of seconds such as 10s."
  }
}

variable "scaling" {
  type = object({
    min_instances = number
    max_instances = number
    concurrency   = number
    cpu           = string
    memory        = string
  })
  description = "Instances, requests per instance, and the application container's CPU and memory limits (the collector's come on top)."

  validation {
    condition     = var.scaling.min_instances >= 0 && var.scaling.max_instances >= max(1, var.scaling.min_instances) && var.scaling.concurrency >= 1
    error_message = "scaling needs 0 <= min_instances <= max_instances, max_instances >= 1 and concurrency >= 1."
  }
}

variable "cpu_idle" {
  type        = bool
  description = "true: CPU only while a request is in flight (request-based billing); false: CPU always allocated, for work after the response."
}

variable "env" {
  type        = map(string)
  description = "Environment of the application container. OTEL_EXPORTER_OTLP_ENDPOINT is set by this module (the collector sidecar)."

  validation {
    condition     = !contains(keys(var.env), "OTEL_EXPORTER_OTLP_ENDPOINT") && !contains(keys(var.env), "PORT")
    error_message = "env must not set OTEL_EXPORTER_OTLP_ENDPOINT (the module points it at the collector sidecar) nor PORT (Cloud Run sets it)."
  }
}

variable "liveness_probe" {
  type        = bool
  description = "Restart the application container when /health stops answering."
  default     = false
}

variable "collector" {
  type = object({
    image  = string
    cpu    = string
    memory = string
  })
  description = "The OpenTelemetry Collector sidecar (ADR 0009): a pinned image (tag or digest, owned by Terraform) and its own CPU and memory limits."

  validation {
    condition     = can(regex("(:[0-9]+\\.[0-9]+\\.[0-9]+|@sha256:[0-9a-f]{64})$", var.collector.image))
    error_message = "collector.image must be pinned to a version tag (x.y.z) or a sha256 digest."
  }
}
