// Command relayctl is the operator CLI: it runs the local stack, mints dev
// tokens, shows an event's status, lists and replays events, controls the
// queue's dispatching and runs the load benchmarks.
//
//	relayctl dev    [--data DIR] [--target-rate N] [--source-rate N] [--target-url URL] ...
//	relayctl token  [--data DIR]
//	relayctl status [--data DIR] [--json] ID
//	relayctl events [--data DIR] --status S
//	relayctl replay [--data DIR] ID... | --status dead_lettered|failed
//	relayctl queue  [--data DIR] show | rate N | pause | resume
//	relayctl bench  [--out DIR]
//
// Every command but token takes --engine gcp to work on Cloud
// Tasks and Firestore (or their emulators) instead of the files in --data.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"eventrelay/internal/relayctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	code := relayctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
