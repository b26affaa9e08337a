package testutil

import (
	"testing"
	"time"
)

// Pauses between two checks of WaitFor's condition: short at first, so a
// condition about to hold is seen at once, and longer as the wait goes on,
// so a long wait does not load the machine (or the server it asks).
const (
	firstPause = time.Millisecond
	maxPause   = 50 * time.Millisecond
)

// WaitFor calls cond until it returns true, and fails the test, naming what
// it waited for, if timeout passes first. The timeout is a guard against a
// hang, not a speed assertion: make it generous. cond runs on the test's
// goroutine, so it may call t.Fatal.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := firstPause; !cond(); pause = min(2*pause, maxPause) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}
