//go:build chaos

package chaos_test

import "eventrelay/internal/chaos"

// testScale is the full set: `make chaos` (go test -tags chaos).
const testScale = chaos.Full
