# HA option (ADR 0006): a global external Application Load Balancer in front
# of ingest in every region, one serverless NEG per region. The load balancer
# sends each request to the nearest healthy region; outlier detection ejects
# a region whose ingest answers 5xx, so the source keeps getting its 2xx
# while one region is down.
#
# The source's ID token carries the custom audience both ingest services
# accept, so a request is valid whichever region serves it. Cloud Run still
# enforces the invoker IAM check behind the load balancer.

resource "google_compute_region_network_endpoint_group" "ingest" {
  for_each = var.backends

  project               = var.project_id
  name                  = "ingest-${each.key}"
  region                = each.key
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    service = each.value
  }
}

resource "google_compute_backend_service" "ingest" {
  project               = var.project_id
  name                  = "ingest"
  description           = "ingest in every region (serverless NEGs)."
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"

  dynamic "backend" {
    for_each = google_compute_region_network_endpoint_group.ingest
    content {
      group = backend.value.id
    }
  }

  outlier_detection {
    consecutive_errors           = 5
    enforcing_consecutive_errors = 100
    max_ejection_percent         = 50

    interval {
      seconds = 10
    }

    base_ejection_time {
      seconds = 30
    }
  }

  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "ingest" {
  project         = var.project_id
  name            = "ingest"
  description     = "Everything to ingest; the services route /events themselves."
  default_service = google_compute_backend_service.ingest.id
}

resource "google_compute_managed_ssl_certificate" "ingest" {
  project = var.project_id
  name    = "ingest"

  managed {
    domains = [var.domain]
  }
}

resource "google_compute_target_https_proxy" "ingest" {
  project          = var.project_id
  name             = "ingest"
  url_map          = google_compute_url_map.ingest.id
  ssl_certificates = [google_compute_managed_ssl_certificate.ingest.id]
}

resource "google_compute_global_address" "ingest" {
  project = var.project_id
  name    = "ingest"
  labels  = var.labels
}

resource "google_compute_global_forwarding_rule" "ingest" {
  project               = var.project_id
  name                  = "ingest-https"
  target                = google_compute_target_https_proxy.ingest.id
  ip_address            = google_compute_global_address.ingest.address
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  labels                = var.labels
}
