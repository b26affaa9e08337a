//go:build !chaos

package chaos

// testScale is the reduced set inside `make test`; `make chaos` builds
// with the chaos tag for the full set.
const testScale = reduced
