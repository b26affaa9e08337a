//go:build !chaos

package chaos_test

import "eventrelay/internal/chaos"

// testScale is the reduced set inside `make test`; `make chaos` builds
// with the chaos tag for the full set.
const testScale = chaos.Reduced
