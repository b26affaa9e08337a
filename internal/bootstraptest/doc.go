// Package bootstraptest tests scripts/bootstrap.sh, the scripted steps of
// docs/deployment.md ("From an empty project"), without reaching Google
// Cloud: the script runs with fakes of gcloud and terraform first on its
// PATH (testdata/bin), which record every call and keep the project's
// buckets and objects in files. The fakes refuse what the real services
// would (a bucket before its API, an init before its bucket exists, a
// function without its source), and the tests check the order of the
// calls directly. They need bash, coreutils, git and zip (the function's
// source is assembled for real by scripts/function-source.sh).
// internal/testutil/scripttest runs the script and reads the recorded calls.
package bootstraptest
