// Package releasetest tests the decisions of scripts/release.sh, the release
// steps of cloudbuild.yaml, without reaching Google Cloud: the script runs
// with fakes of gcloud and curl first on its PATH (testdata/bin), which
// record every call and play Cloud Run's traffic, ingest and Firestore from
// files. jq and terraform are fakes that fail, so a path under test that
// needed them would fail too; the tests need nothing but bash (4.4 or newer,
// as the CI image has) and coreutils. internal/testutil/scripttest runs the
// script and reads the recorded calls.
package releasetest
