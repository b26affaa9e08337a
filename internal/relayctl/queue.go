package relayctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"eventrelay/internal/engines"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
)

const queueUsage = "want show, rate N, pause or resume"

// runQueue shows or changes the queue's dispatch settings as the operator
// (by = queue.ByOperator), then prints them as the queue now has them.
//
// The embedded queue is owned by the process that runs it (relayctl dev):
// this command writes the change into the queue file's control row, as
// relayctl replay adds tasks to it, and the running queue applies it
// within about a second (a stopped one at its next start).
func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("queue", stderr)
	var eng engineFlags
	eng.register(fs)
	asJSON := fs.Bool("json", false, "print the settings as JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: relayctl queue show|rate N|pause|resume [flags]\n\n"+
			"Show or change the queue's dispatch rate (tasks/s) and pause, as the operator.\n"+
			"A rate set here overrides the configured one until changed again (ADR 0005).\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	act, err := parseQueueAction(pos)
	if err != nil {
		return err
	}
	c, qname, where, err := eng.controllerConfig()
	if err != nil {
		return err
	}
	// The engines log each change for their owner's log; here the printed
	// settings say it.
	ctx = logging.WithLogger(ctx, slog.New(slog.DiscardHandler))
	ctl, err := engines.OpenController(ctx, c, qname)
	if err != nil {
		if eng.engine == engines.Embedded {
			return fmt.Errorf("%w (is --data right? start the stack with relayctl dev)", err)
		}
		return err
	}
	defer ctl.Close()

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if act.do != nil {
		if err := act.do(rctx, ctl); err != nil {
			return err
		}
	}
	got, err := ctl.Control(rctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(queueJSON{Queue: qname, Engine: eng.engine, Where: where,
			Rate: got.Rate, Paused: got.Paused, By: got.By, At: got.At})
	}
	if err := printControl(stdout, qname, eng.engine, where, got); err != nil {
		return err
	}
	if act.do != nil && eng.engine == engines.Embedded {
		fmt.Fprintln(stderr, "The running queue (relayctl dev) applies this within about a second; a stopped one at its next start.")
	}
	return nil
}

// queueAction is a parsed `relayctl queue` action; do is nil for show.
type queueAction struct {
	do func(context.Context, queue.Controller) error
}

func parseQueueAction(pos []string) (queueAction, error) {
	if len(pos) == 0 {
		return queueAction{}, fmt.Errorf("%w: %s", errUsage, queueUsage)
	}
	want := 1
	var act queueAction
	switch pos[0] {
	case "show":
	case "pause":
		act.do = func(ctx context.Context, c queue.Controller) error { return c.Pause(ctx, queue.ByOperator) }
	case "resume":
		act.do = func(ctx context.Context, c queue.Controller) error { return c.Resume(ctx, queue.ByOperator) }
	case "rate":
		want = 2
		if len(pos) < 2 {
			return queueAction{}, fmt.Errorf("%w: rate needs the new rate in tasks per second, e.g. relayctl queue rate 5", errUsage)
		}
		r, err := strconv.ParseFloat(pos[1], 64)
		if err != nil || !(r > 0) || math.IsInf(r, 0) {
			return queueAction{}, fmt.Errorf("%w: rate %q must be a number of tasks per second > 0", errUsage, pos[1])
		}
		act.do = func(ctx context.Context, c queue.Controller) error { return c.SetRate(ctx, r, queue.ByOperator) }
	default:
		return queueAction{}, fmt.Errorf("%w: unknown action %q: %s", errUsage, pos[0], queueUsage)
	}
	if len(pos) > want {
		return queueAction{}, fmt.Errorf("%w: unexpected argument %q", errUsage, pos[want])
	}
	return act, nil
}

// controllerConfig maps the engine flags to the engines' configuration, the
// queue's name and a description of where it is.
func (e *engineFlags) controllerConfig() (engines.Config, string, string, error) {
	c, err := e.config()
	if err != nil {
		return engines.Config{}, "", "", err
	}
	if e.engine == engines.Embedded {
		return c, "events", c.QueueDB, nil
	}
	where := "projects/" + e.gcp.Project + "/locations/" + e.gcp.Location + "/queues/" + e.gcp.Queue
	if e.gcp.TasksEndpoint != "" {
		where += " on the emulator at " + e.gcp.TasksEndpoint
	}
	return c, e.gcp.Queue, where, nil
}

// queueJSON is `relayctl queue --json`'s output.
type queueJSON struct {
	Queue  string    `json:"queue"`
	Engine string    `json:"engine"`
	Where  string    `json:"where"`
	Rate   float64   `json:"rate"`
	Paused bool      `json:"paused"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// printControl renders the settings for a person.
func printControl(w io.Writer, name, engine, where string, c queue.Control) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "queue\t%s (%s: %s)\n", name, engine, where)
	fmt.Fprintf(tw, "rate\t%s/s\n", strconv.FormatFloat(c.Rate, 'f', -1, 64))
	paused := "no"
	if c.Paused {
		paused = "yes: nothing is dispatched until relayctl queue resume"
	}
	fmt.Fprintf(tw, "paused\t%s\n", paused)
	switch {
	case !c.At.IsZero():
		fmt.Fprintf(tw, "changed\t%s by %s\n", c.At.UTC().Format(time.RFC3339), c.By)
	case engine == engines.GCP:
		fmt.Fprintf(tw, "changed\tunknown: Cloud Tasks keeps no record (Cloud Audit Logs do)\n")
	default:
		fmt.Fprintf(tw, "changed\tnever: the configured rate applies\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
