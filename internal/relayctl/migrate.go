package relayctl

import (
	"context"
	"fmt"
	"io"

	"eventrelay/internal/status"
)

// shardAdder is a status engine whose records carry a shard field that
// records written before it existed lack (firestorestatus).
type shardAdder interface {
	AddShards(ctx context.Context, st status.Status) (int, error)
}

// runMigrateShards gives every record written before the status store
// sharded its indexes the shard field, so that List (relayctl events, the
// ops page, the reconciler) sees it again. It runs once after the upgrade,
// safely beside the running services, and may run again. A record whose
// shard was written under a smaller shard count is left as it is: List
// reads every shard value, so it sees it, and its next Apply moves it.
func runMigrateShards(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate-shards", stderr)
	var eng engineFlags
	eng.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional(pos); err != nil {
		return err
	}
	store, err := eng.openStatus(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	adder, ok := store.(shardAdder)
	if !ok {
		fmt.Fprintf(stdout, "the %s status engine has no shard field: nothing to do\n", eng.engine)
		return nil
	}
	total := 0
	for _, st := range status.All {
		n, err := adder.AddShards(ctx, st)
		total += n
		if err != nil {
			return fmt.Errorf("add shards to %s records (%d changed so far): %w", st, total, err)
		}
		fmt.Fprintf(stdout, "%-14s %d records given a shard\n", st, n)
	}
	fmt.Fprintf(stdout, "done: %d records changed\n", total)
	return nil
}
