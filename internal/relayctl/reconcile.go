package relayctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/engines"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/reconcile"
)

// runReconcile runs the reconciler once, as the dispatcher does on its
// timer: every record not final whose task is gone from the queue, idle
// longer than the grace, is requeued (or dead-lettered, by policy).
func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile", stderr)
	var eng engineFlags
	eng.register(fs)
	eng.registerReplay(fs)
	dry := fs.Bool("dry-run", false, "only report what would be done; change nothing")
	var rf reconcileFlags
	rf.register(fs)
	r, err := openReconcile(ctx, fs, args, &eng, &rf, "")
	if err != nil {
		return err
	}
	defer r.close()
	rep, err := scanOnce(ctx, r.store, r.queue, r.cfg, *dry)
	if err != nil && len(rep.Findings) == 0 && rep.Read == 0 {
		return err
	}
	if werr := rf.print(stdout, rep); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return err
	}
	if n := rep.Counts[reconcile.ActionStuck]; n > 0 {
		return fmt.Errorf("%d records could not be reconciled (see the errors above); run it again", n)
	}
	return nil
}

// reconcileRun is what reconcile and audit work on: the reconciler's
// configuration and the engines, open.
type reconcileRun struct {
	cfg   reconcile.Config
	store engines.Store
	queue engines.Queue
}

// close closes the queue, then the store.
func (r *reconcileRun) close() {
	_ = r.queue.Close()
	_ = r.store.Close()
}

// openReconcile is what reconcile and audit share once their flags are
// registered on fs: it parses args (no positional argument), reads the
// reconciler's configuration (rf over RECONCILE_*) and opens the status
// store and the queue eng names. On the gcp engine without
// --dispatcher-url the queue's task URL is gcpURL (audit's placeholder,
// as audit never creates a task; reconcile passes "").
func openReconcile(ctx context.Context, fs *flag.FlagSet, args []string, eng *engineFlags, rf *reconcileFlags, gcpURL string) (*reconcileRun, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if err := noPositional(pos); err != nil {
		return nil, err
	}
	r := &reconcileRun{}
	if r.cfg, err = rf.config(ctx); err != nil {
		return nil, err
	}
	if r.store, err = eng.openStatus(ctx); err != nil {
		return nil, err
	}
	if eng.engine == engines.GCP && eng.dispatcherURL == "" {
		eng.dispatcherURL = gcpURL
	}
	if r.queue, err = eng.openQueue(ctx); err != nil {
		_ = r.store.Close()
		return nil, err
	}
	return r, nil
}

// reconcileFlags are the reconciler's settings reconcile and audit take;
// unset ones come from RECONCILE_* (and its defaults), as the dispatcher
// reads them.
type reconcileFlags struct {
	grace  time.Duration
	policy string
	json   bool
}

func (f *reconcileFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.grace, "grace", 0, "a record must be idle this long before its missing task counts (default: $RECONCILE_GRACE, else 15m)")
	fs.StringVar(&f.policy, "policy", "", "requeue or dead_letter (default: $RECONCILE_POLICY, else requeue)")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
}

func (f *reconcileFlags) config(ctx context.Context) (reconcile.Config, error) {
	var c reconcile.Config
	if err := envconfig.Process(ctx, &c); err != nil {
		return c, fmt.Errorf("read RECONCILE_*: %w", err)
	}
	if f.grace != 0 {
		c.Grace = f.grace
	}
	if f.policy != "" {
		c.Policy = reconcile.Policy(f.policy)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	return c, nil
}

// scanOnce runs one pass of the reconciler over the engines. Its log lines
// stay quiet: the report printed says everything.
func scanOnce(ctx context.Context, store engines.Store, q engines.Queue, cfg reconcile.Config, dry bool) (reconcile.Report, error) {
	insp, ok := q.Queue.(queue.Inspector)
	if !ok {
		return reconcile.Report{}, errors.New("the queue engine cannot tell whether a task exists")
	}
	o := reconcile.Options{Store: store, Inspector: insp, Config: cfg}
	if !dry {
		o.Queue = q.Queue
	}
	r, err := reconcile.New(o)
	if err != nil {
		return reconcile.Report{}, err
	}
	ctx = logging.WithLogger(ctx, slog.New(slog.DiscardHandler))
	return r.Scan(ctx, dry)
}

// print writes rep: JSON, or one line per finding and a summary.
func (f *reconcileFlags) print(w io.Writer, rep reconcile.Report) error {
	if f.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	for _, fd := range rep.Findings {
		line := fmt.Sprintf("%s  %s: %s", fd.EventID, fd.Action, fd.Why)
		if fd.NewTask != "" {
			line += "; task " + fd.NewTask
		}
		if fd.Error != "" {
			line += "; error: " + fd.Error
		}
		if fd.TraceID != "" {
			line += "; trace " + fd.TraceID
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	mode := ""
	if rep.DryRun {
		mode = " (dry run: nothing changed)"
	}
	_, err := fmt.Fprintf(w, "%d records read, %d idle longer than %v, %d with their task in the queue; requeued %d, dead-lettered %d, found %d, adopted %d, moved on %d, stuck %d%s\n",
		rep.Read, rep.Idle, rep.Grace, rep.Live,
		rep.Counts[reconcile.ActionRequeued], rep.Counts[reconcile.ActionDeadLettered], rep.Counts[reconcile.ActionFound],
		rep.Counts[reconcile.ActionAdopted], rep.Counts[reconcile.ActionMoved], rep.Counts[reconcile.ActionStuck], mode)
	return err
}
