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

# Indexes. Firestore limits a collection to 500 writes per second while an
# index holds a field whose values grow with time (every timestamp here), so
# (docs/lld/status.md, "Indexes and write rate"):
#   - every field nothing queries has no single-field index;
#   - event_id (support's lookup) and status (Counts) keep an ascending one
#     only, neither descending nor array-contains;
#   - the two composite indexes List uses start with shard (0-31, a hash of
#     the event id), so each range that grows with time takes 1/32 of the
#     writes.
# Field operations on one collection run one at a time, so each resource
# waits for the one before it.

# TTL: Firestore deletes a record some time after its expire_at (usually
# within 24 hours). An indexed TTL timestamp is a sequential index: exempt.
resource "google_firestore_field" "expire_at" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

# The payload and the attempt list are read whole, never queried; no index
# entries for a large body either.
resource "google_firestore_field" "event" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "event"

  index_config {}

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

# Ordered on only through the composite indexes below.
resource "google_firestore_field" "received_at" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "received_at"

  index_config {}

  depends_on = [google_firestore_field.attempts]
}

resource "google_firestore_field" "updated_at" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "updated_at"

  index_config {}

  depends_on = [google_firestore_field.received_at]
}

resource "google_firestore_field" "delivered_at" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "delivered_at"

  index_config {}

  depends_on = [google_firestore_field.updated_at]
}

resource "google_firestore_field" "trace_id" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "trace_id"

  index_config {}

  depends_on = [google_firestore_field.delivered_at]
}

resource "google_firestore_field" "reason" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "reason"

  index_config {}

  depends_on = [google_firestore_field.trace_id]
}

# Used only as the first field of the composite indexes.
resource "google_firestore_field" "shard" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "shard"

  index_config {}

  depends_on = [google_firestore_field.reason]
}

# Counts: one COUNT of status == S per status.
resource "google_firestore_field" "status" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "status"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION"
    }
  }

  depends_on = [google_firestore_field.shard]
}

# Support's console filter event_id == "<id>", and the release smoke test's
# runQuery.
resource "google_firestore_field" "event_id" {
  project    = var.project_id
  database   = google_firestore_database.status.name
  collection = var.collection
  field      = "event_id"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION"
    }
  }

  depends_on = [google_firestore_field.status]
}

# List by status, newest first, one query per shard:
# where status == S and shard == K order by received_at desc.
resource "google_firestore_index" "status_shard_received_at" {
  project     = var.project_id
  database    = google_firestore_database.status.name
  collection  = var.collection
  query_scope = "COLLECTION"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "shard"
    order      = "ASCENDING"
  }

  fields {
    field_path = "received_at"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_field.event_id]
}

# List without a status: where shard == K order by received_at desc.
resource "google_firestore_index" "shard_received_at" {
  project     = var.project_id
  database    = google_firestore_database.status.name
  collection  = var.collection
  query_scope = "COLLECTION"

  fields {
    field_path = "shard"
    order      = "ASCENDING"
  }

  fields {
    field_path = "received_at"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_index.status_shard_received_at]
}
