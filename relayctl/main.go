// Command relayctl is the operator CLI: it runs the local stack, mints dev
// tokens, shows an event's status and lists events.
//
//	relayctl dev    [--data DIR] [--target-rate N] [--source-rate N] ...
//	relayctl token  [--data DIR]
//	relayctl status [--data DIR] [--json] ID
//	relayctl events [--data DIR] --status S
//	relayctl bench  [--out DIR]
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
