# The status store: one document per event in `events` (docs/lld/status.md).
#
# Point-in-time recovery and delete protection are always on: the status
# records are what support answers "what happened to event X?" from.

resource "google_firestore_database" "status" {
  project     = var.project_id
  name        = var.database_name
  location_id = var.location
  type        = "FIRESTORE_NATIVE"

  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  app_engine_integration_mode       = "DISABLED"

  # `terraform destroy` leaves the database (and its data) in place.
  deletion_policy = "ABANDON"

  lifecycle {
    prevent_destroy = true
  }
}

# TTL: Firestore deletes a record some time after its expire_at (usually
# within 24 hours). The field is never queried, and an increasing timestamp
# would hot-spot its index, so it is exempt from indexing.
resource "google_firestore_field" "expire_at" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# The payload and the attempt list are read whole, never queried: no
# single-field indexes, which also keeps large bodies out of index entries.
resource "google_firestore_field" "event" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "event"

  index_config {}

  # Field operations on one collection run one at a time.
  depends_on = [google_firestore_field.expire_at]
}

resource "google_firestore_field" "attempts" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "attempts"

  index_config {}

  depends_on = [google_firestore_field.event]
}

# List by status, newest first: where status == S order by received_at desc.
# (Ordering by received_at alone uses the automatic single-field index, which
# is therefore left in place.)
resource "google_firestore_index" "status_received_at" {
  project     = var.project_id
  database    = google_firestore_database.status.name
  collection  = var.collection
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "received_at"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_field.attempts]
}
