# terraform test for the status store, planned against the real google
# provider schema with a mocked provider. Run from this module's directory:
#   terraform init -backend=false && terraform test
#
# The run plans: an applied database could not be torn down by the test
# (prevent_destroy), which internal/infra checks instead
# (prevent-destroy).

mock_provider "google" {}

variables {
  project_id = "eventrelay-test"
  location   = "eur3"
}

# The status records are what support answers "what happened to event X?"
# from: recoverable, never deleted by mistake or by `terraform destroy`.
run "status_store_is_protected" {
  command = plan

  assert {
    condition     = google_firestore_database.status.type == "FIRESTORE_NATIVE"
    error_message = "the status engine uses Firestore in native mode"
  }
  assert {
    condition     = google_firestore_database.status.point_in_time_recovery_enablement == "POINT_IN_TIME_RECOVERY_ENABLED"
    error_message = "point-in-time recovery must be on"
  }
  assert {
    condition     = google_firestore_database.status.delete_protection_state == "DELETE_PROTECTION_ENABLED"
    error_message = "delete protection must be on"
  }
  assert {
    condition     = google_firestore_database.status.deletion_policy == "ABANDON"
    error_message = "terraform destroy must leave the database and its data in place"
  }
}

# Firestore caps a collection at 500 writes/s while an index holds a field
# whose values grow with time (docs/lld/status.md, "Indexes and write
# rate"): no single-field index on any field nothing queries, the TTL
# policy kept, and received_at indexed only behind shard.
run "no_sequential_index_without_shard" {
  command = plan

  assert {
    condition = alltrue([
      for f in [
        google_firestore_field.expire_at,
        google_firestore_field.event,
        google_firestore_field.attempts,
        google_firestore_field.received_at,
        google_firestore_field.updated_at,
        google_firestore_field.delivered_at,
        google_firestore_field.trace_id,
        google_firestore_field.reason,
        google_firestore_field.shard,
      ] : length(f.index_config) == 1 && length(f.index_config[0].indexes) == 0 && f.collection == "events"
    ])
    error_message = "every field nothing queries is exempt from single-field indexing (an empty index_config)"
  }
  assert {
    condition     = length(google_firestore_field.expire_at.ttl_config) == 1
    error_message = "the TTL policy stays on expire_at"
  }
  assert {
    condition = alltrue([
      for f in [google_firestore_field.status, google_firestore_field.event_id] :
      [for i in f.index_config[0].indexes : "${i.order}/${i.query_scope}"] == ["ASCENDING/COLLECTION"]
    ])
    error_message = "status (Counts) and event_id (support's lookup) keep one ascending index, nothing else"
  }
  assert {
    condition = [
      for f in google_firestore_index.status_shard_received_at.fields : "${f.field_path} ${f.order}"
    ] == ["status ASCENDING", "shard ASCENDING", "received_at DESCENDING"]
    error_message = "List with a status needs (status, shard, received_at desc)"
  }
  assert {
    condition = [
      for f in google_firestore_index.shard_received_at.fields : "${f.field_path} ${f.order}"
    ] == ["shard ASCENDING", "received_at DESCENDING"]
    error_message = "List without a status needs (shard, received_at desc)"
  }
  assert {
    condition = alltrue([
      for i in [google_firestore_index.status_shard_received_at, google_firestore_index.shard_received_at] :
      i.collection == "events" && i.query_scope == "COLLECTION"
    ])
    error_message = "the composite indexes are on the status collection, collection-scoped"
  }
}
