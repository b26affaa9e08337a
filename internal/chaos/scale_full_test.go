//go:build chaos

package chaos

// testScale is the full set: `make chaos` (go test -tags chaos).
const testScale = full
