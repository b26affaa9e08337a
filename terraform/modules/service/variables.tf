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

  # Cloud Run allows less than 1 vCPU only with concurrency 1, request-based
  # billing and the first generation execution environment; this module
  # runs the second generation, whose minimum memory is 512 MiB; above
  # 1 vCPU only 2, 4, 6 or 8, each with up to 4 GiB per vCPU
  # (https://cloud.google.com/run/docs/configuring/services/cpu,
  # https://cloud.google.com/run/docs/configuring/services/memory-limits).
  validation {
    condition = contains(["1", "2", "4", "6", "8"], var.scaling.cpu) && can(regex("^[0-9]+(Mi|Gi)$", var.scaling.memory)) && try(
      (endswith(var.scaling.memory, "Gi") ? tonumber(trimsuffix(var.scaling.memory, "Gi")) * 1024 : tonumber(trimsuffix(var.scaling.memory, "Mi"))) >= 512 &&
      (endswith(var.scaling.memory, "Gi") ? tonumber(trimsuffix(var.scaling.memory, "Gi")) * 1024 : tonumber(trimsuffix(var.scaling.memory, "Mi"))) <= tonumber(var.scaling.cpu) * 4096,
    false)
    error_message = "scaling.cpu must be 1, 2, 4, 6 or 8 (a second generation service refuses less than 1 vCPU) and scaling.memory, in Mi or Gi, between 512Mi and 4Gi per vCPU."
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

variable "startup_probe_path" {
  type        = string
  description = "Path of the application's startup probe. Null: /ready for ingest and the dispatcher (503 until their clients are warmed up), /health for any other service."
  default     = null

  validation {
    condition     = var.startup_probe_path == null || can(regex("^/[A-Za-z0-9/_-]*$", var.startup_probe_path))
    error_message = "startup_probe_path must be an absolute path such as /ready."
  }
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

  # The sidecar is held to the same rules as the application container (see
  # scaling): below 1 vCPU Cloud Run would demand concurrency 1,
  # request-based billing and the first generation, none of which these
  # services use. Both containers together stay within Cloud Run's 8 vCPU
  # and 32 GiB per instance.
  validation {
    condition = contains(["1", "2", "4", "6", "8"], var.collector.cpu) && can(regex("^[0-9]+(Mi|Gi)$", var.collector.memory)) && try(
      (endswith(var.collector.memory, "Gi") ? tonumber(trimsuffix(var.collector.memory, "Gi")) * 1024 : tonumber(trimsuffix(var.collector.memory, "Mi"))) >= 512 &&
      (endswith(var.collector.memory, "Gi") ? tonumber(trimsuffix(var.collector.memory, "Gi")) * 1024 : tonumber(trimsuffix(var.collector.memory, "Mi"))) <= tonumber(var.collector.cpu) * 4096,
    false)
    error_message = "collector.cpu must be 1, 2, 4, 6 or 8 (Cloud Run refuses a fractional vCPU on a second generation service with concurrency > 1) and collector.memory, in Mi or Gi, between 512Mi and 4Gi per vCPU."
  }

  validation {
    condition     = try(tonumber(var.collector.cpu) + tonumber(var.scaling.cpu) <= 8, false)
    error_message = "The application's and the collector's CPU together must not exceed Cloud Run's 8 vCPU per instance."
  }
}

variable "iam_propagation_wait_seconds" {
  type        = number
  description = "Seconds to wait after granting the service's account access to its collector configuration secret before creating the service, so that Cloud Run's deploy-time secret check sees the grant. Google documents IAM changes as typically visible in 2 minutes, potentially 7 or longer (https://cloud.google.com/iam/docs/access-change-propagation). Only spent when the grant is created or replaced; 0 for offline tests."
  default     = 420

  validation {
    condition     = var.iam_propagation_wait_seconds >= 0 && var.iam_propagation_wait_seconds <= 1800 && floor(var.iam_propagation_wait_seconds) == var.iam_propagation_wait_seconds
    error_message = "iam_propagation_wait_seconds must be a whole number of seconds between 0 and 1800."
  }
}
