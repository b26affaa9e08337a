package testutil

import "testing"

// TestPrintedAddr reads the addresses from what `relayctl dev` prints as it
// starts (internal/relayctl/dev.go), a warning interleaved.
func TestPrintedAddr(t *testing.T) {
	t.Parallel()
	const out = "eventrelay local stack (embedded engine), data in /tmp/d, log in /tmp/d/relayctl.log\n" +
		"  ingest      http://127.0.0.1:41234/events   (token: relayctl token --data /tmp/d)\n" +
		"time=12:00:00 level=WARN msg=\"dispatcher slow\"\n" +
		"  dispatcher  http://127.0.0.1:41235\n" +
		"  targetmock  http://127.0.0.1:41236/graphql  limit 50/s burst 5\n" +
		"Ctrl-C stops; run again with the same --data to resume.\n"
	cases := []struct {
		name, want string
		ok         bool
	}{
		{name: "ingest", want: "127.0.0.1:41234", ok: true},
		{name: "dispatcher", want: "127.0.0.1:41235", ok: true},
		{name: "targetmock", want: "127.0.0.1:41236", ok: true},
		{name: "target"}, // --target-url prints "target", not "targetmock"
		{name: "ops"},
	}
	for _, tc := range cases {
		got, ok := PrintedAddr(out, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("PrintedAddr(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
