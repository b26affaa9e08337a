package testutil

import (
	"net/url"
	"strings"
)

// PrintedAddr returns the host:port of the URL that follows name at the
// start of a line of out: what `relayctl dev` prints for each listener it
// opened ("ingest http://127.0.0.1:40123"), so a test that starts it on
// port 0 learns where it listens.
func PrintedAddr(out, name string) (string, bool) {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != name {
			continue
		}
		if u, err := url.Parse(f[1]); err == nil && u.Host != "" {
			return u.Host, true
		}
	}
	return "", false
}
