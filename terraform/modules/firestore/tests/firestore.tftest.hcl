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
