package testutil

import (
	"testing"
	"time"
)

// waitInterval is how often WaitFor checks its condition.
const waitInterval = 5 * time.Millisecond

// WaitFor calls cond every few milliseconds until it returns true, and fails
// the test, naming what it waited for, if timeout passes first. The timeout
// is a guard against a hang, not a speed assertion: make it generous. cond
// runs on the test's goroutine, so it may call t.Fatal.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(waitInterval)
	}
}
