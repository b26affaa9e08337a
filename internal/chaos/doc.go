// Package chaos is eventrelay's fault-test harness. It drives load with the
// source mock against a running pipeline — an in-process stack
// (internal/devstack) or the real relayctl binary, which it can kill -9 and
// restart — injects faults (crashes, target errors, slowness, outages, 429
// storms, overload), records every event the source saw acknowledged, and
// at the end reconciles them against the target mock's record of calls and
// the status store:
//
//   - lost: acknowledged, but neither delivered nor failed/dead-lettered;
//   - duplicate calls: calls for an id the target already had;
//   - duplicate side effects: a second accepting call for one id;
//   - stuck: not terminal once the drain window closed;
//   - time to drain, ingest latency, delivery rate, backlog.
//
// The package exports nothing: its tests are the entry point. TestScenarios
// runs every scenario (scenarios), checks each report and prints them with
// writeTable and writeJSON. The reduced set runs inside `make test`, the
// full set with `make chaos` (the chaos build tag); docs/reliability.md
// publishes the figures.
package chaos

import "log/slog"

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
