package relayctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
)

// auditDispatchURL stands in for --dispatcher-url on the gcp engine: audit
// only asks Cloud Tasks whether tasks exist and never creates one, so the
// task URL is never used.
const auditDispatchURL = "https://audit.invalid/tasks/events"

// runAudit prints how many records are in each status and the records that
// look stuck: not final, idle longer than the grace, and no task of theirs
// in the queue (the reconciler's dry run). It changes nothing.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", stderr)
	var eng engineFlags
	eng.register(fs)
	var rf reconcileFlags
	rf.register(fs)
	r, err := openReconcile(ctx, fs, args, &eng, &rf, auditDispatchURL)
	if err != nil {
		return err
	}
	defer r.close()
	counts, err := r.store.Counts(ctx)
	if err != nil {
		return err
	}
	rep, err := scanOnce(ctx, r.store, r.queue, r.cfg, true)
	if err != nil {
		return err
	}
	var stuck []reconcile.Finding
	for _, f := range rep.Findings {
		// Found: no task in the queue; stuck: the queue could not tell.
		// Adopted and moved records are on their way.
		if f.Action == reconcile.ActionFound || f.Action == reconcile.ActionStuck {
			stuck = append(stuck, f)
		}
	}
	if rf.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Counts map[status.Status]int64 `json:"counts"`
			Stuck  []reconcile.Finding     `json:"stuck"`
			Report reconcile.Report        `json:"report"`
		}{counts, stuck, rep})
	}
	for _, s := range status.All {
		fmt.Fprintf(stdout, "%-14s %d\n", s, counts[s])
	}
	if len(stuck) == 0 {
		fmt.Fprintf(stdout, "no record looks stuck (%d not final and idle longer than %v, each with its task in the queue)\n", rep.Idle, rep.Grace)
		return nil
	}
	fmt.Fprintf(stdout, "%d records look stuck: not final, idle longer than %v, no task in the queue (relayctl reconcile requeues them)\n", len(stuck), rep.Grace)
	for _, f := range stuck {
		line := fmt.Sprintf("  %s  %s", f.EventID, f.Why)
		if f.Error != "" {
			line += "; could not check: " + f.Error
		}
		if f.TraceID != "" {
			line += "; trace " + f.TraceID
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}
