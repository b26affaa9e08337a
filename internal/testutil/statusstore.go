package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"eventrelay/internal/status/sqlitestatus"
)

// EmbeddedStatus opens an empty embedded status store in tb's temporary
// directory and closes it when tb ends. Tests that need to count calls or
// inject failures wrap it rather than fake the port, so what they exercise
// cannot drift from a real engine.
func EmbeddedStatus(tb testing.TB) *sqlitestatus.Store {
	tb.Helper()
	s, err := sqlitestatus.Open(context.Background(), filepath.Join(tb.TempDir(), "status.db"))
	if err != nil {
		tb.Fatalf("sqlitestatus.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close status store: %v", err)
		}
	})
	return s
}
