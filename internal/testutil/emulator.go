// Package testutil holds helpers shared by tests.
package testutil

import (
	"os"
	"testing"
)

// Emulator environment variables, as scripts/emulators.sh exports them.
const (
	FirestoreEmulatorEnv  = "FIRESTORE_EMULATOR_HOST"
	CloudTasksEmulatorEnv = "CLOUD_TASKS_EMULATOR_HOST"
	// CloudTasksOIDCIssuerEnv is the issuer URL the Cloud Tasks emulator
	// serves for the OIDC tokens it puts on tasks.
	CloudTasksOIDCIssuerEnv = "CLOUD_TASKS_EMULATOR_OIDC_ISSUER"
	// RequireEmulatorsEnv set to 1 (CI sets it) turns a missing emulator
	// from a skip into a failure.
	RequireEmulatorsEnv = "REQUIRE_EMULATORS"
)

// Emulator returns the host:port in env, or skips the test saying how to
// start the emulator — and fails instead when REQUIRE_EMULATORS=1.
func Emulator(t testing.TB, env string) string {
	t.Helper()
	host := os.Getenv(env)
	if host != "" {
		return host
	}
	msg := env + " is not set: start the emulators with `eval \"$(scripts/emulators.sh start)\"`"
	if os.Getenv(RequireEmulatorsEnv) == "1" {
		t.Fatalf("%s (REQUIRE_EMULATORS=1 forbids skipping)", msg)
	}
	t.Skip(msg)
	return ""
}
