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
// (by = queue.ByOperator), then prints them as the queue now has them, with
// its backlog. Over --queue-shards N > 1 the queue is N queues: rate N sets
// the total (each shard takes N/shards), pause and resume act on every
// shard, and the printout is the total followed by each shard's.
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
			"A rate set here overrides the configured one until changed again (ADR 0005).\n"+
			"Over --queue-shards N, rate sets the total across the shards (each takes 1/N).\n\n")
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
	v := queueJSON{Queue: qname, Engine: eng.engine, Where: where, Rate: got.Rate, Burst: got.Burst, Paused: got.Paused, By: got.By, At: got.At}
	v.setStats(rctx, ctl.Stats)
	if ctl.Shards != nil {
		shards := ctl.Shards.Shards() // in the order ShardControls reports them
		for i, sc := range ctl.Shards.ShardControls(rctx) {
			sh := queueShardJSON{Queue: sc.Name, Rate: sc.Control.Rate, Burst: sc.Control.Burst, Paused: sc.Control.Paused, By: sc.Control.By, At: sc.Control.At}
			if sc.Err != nil {
				sh.Error = sc.Err.Error()
			}
			sr, _ := shards[i].Queue.(queue.StatsReader)
			sh.setStats(rctx, sr)
			v.Shards = append(v.Shards, sh)
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	if err := printControl(stdout, v); err != nil {
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
		where := c.QueueDB
		if c.QueueShards > 1 {
			where += fmt.Sprintf(" .. %s (%d shards)", c.QueueDBShard(c.QueueShards-1), c.QueueShards)
		}
		return c, "events", where, nil
	}
	where := "projects/" + e.gcp.Project + "/locations/" + e.gcp.Location + "/queues/" + e.gcp.Queue
	if c.QueueShards > 1 {
		where += fmt.Sprintf(" .. %s (%d shards)", queue.ShardName(e.gcp.Queue, c.QueueShards-1), c.QueueShards)
	}
	if e.gcp.TasksEndpoint != "" {
		where += " on the emulator at " + e.gcp.TasksEndpoint
	}
	return c, e.gcp.Queue, where, nil
}

// queueJSON is `relayctl queue --json`'s output: the queue's settings
// (over shards, the total rate and the sum of the bursts; paused if any
// shard is), its backlog summed over the shards, and each shard's.
type queueJSON struct {
	Queue  string  `json:"queue"`
	Engine string  `json:"engine"`
	Where  string  `json:"where"`
	Rate   float64 `json:"rate"`
	// Burst is the live token bucket size (queue.Control.Burst): after an
	// idle spell up to Rate + Burst tasks go out in the first second. 0
	// when the engine cannot tell.
	Burst  int       `json:"burst"`
	Paused bool      `json:"paused"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
	queueStats
	// Shards is each shard's, in routing order (none for one queue).
	Shards []queueShardJSON `json:"shards,omitempty"`
}

// queueShardJSON is one shard's settings and backlog.
type queueShardJSON struct {
	Queue  string    `json:"queue"`
	Rate   float64   `json:"rate"`
	Burst  int       `json:"burst"`
	Paused bool      `json:"paused"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Error is why the shard's settings could not be read.
	Error string `json:"error,omitempty"`
	queueStats
}

// queueStats is a backlog, or why it is unknown.
type queueStats struct {
	Backlog  int64 `json:"backlog"`
	InFlight int64 `json:"in_flight"`
	// StatsError is why the backlog is unknown (the Cloud Tasks emulator
	// has no statistics); Backlog and InFlight are then 0.
	StatsError string `json:"stats_error,omitempty"`
}

// setStats reads sr's backlog into s (sr nil: unknown).
func (s *queueStats) setStats(ctx context.Context, sr queue.StatsReader) {
	if sr == nil {
		s.StatsError = "the engine reports no backlog"
		return
	}
	st, err := sr.Stats(ctx)
	if err != nil {
		s.StatsError = err.Error()
		return
	}
	s.Backlog, s.InFlight = st.Backlog, st.InFlight
}

// backlog renders s for a person.
func (s queueStats) backlog() string {
	if s.StatsError != "" {
		return "unknown: " + s.StatsError
	}
	return fmt.Sprintf("%d (%d in flight)", s.Backlog, s.InFlight)
}

// printControl renders the settings for a person: the queue's (over shards,
// the total and, since each shard has a bucket of its own, the most they
// send in the first second after an idle spell), then each shard's.
func printControl(w io.Writer, v queueJSON) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "queue\t%s (%s: %s)\n", v.Queue, v.Engine, v.Where)
	rate := strconv.FormatFloat(v.Rate, 'f', -1, 64) + "/s"
	if len(v.Shards) > 0 {
		rate += fmt.Sprintf(" in total over %d shards", len(v.Shards))
	}
	fmt.Fprintf(tw, "rate\t%s\n", rate)
	burst := burstText(v.Burst)
	if len(v.Shards) > 0 && v.Burst > 0 {
		burst += fmt.Sprintf(" in total over %d shards (one bucket each)", len(v.Shards))
	}
	fmt.Fprintf(tw, "burst\t%s\n", burst)
	paused := "no"
	if v.Paused {
		paused = "yes: nothing is dispatched until relayctl queue resume"
		if len(v.Shards) > 0 {
			paused = "yes (a shard at least): its tasks wait until relayctl queue resume"
		}
	}
	fmt.Fprintf(tw, "paused\t%s\n", paused)
	fmt.Fprintf(tw, "changed\t%s\n", changed(v.Engine, v.By, v.At))
	fmt.Fprintf(tw, "backlog\t%s\n", v.queueStats.backlog())
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Shards) > 1 && v.Burst > 0 {
		fmt.Fprintf(&b, "worst first second after an idle spell: rate + Σ burst = %s tasks\n",
			strconv.FormatFloat(v.Rate+float64(v.Burst), 'f', -1, 64))
	}
	if len(v.Shards) > 0 {
		fmt.Fprintln(&b)
		tw = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "shard\trate\tburst\tpaused\tbacklog\tchanged")
		for _, s := range v.Shards {
			if s.Error != "" {
				fmt.Fprintf(tw, "%s\tunknown: %s\t\t\t%s\t\n", s.Queue, s.Error, s.queueStats.backlog())
				continue
			}
			p := "no"
			if s.Paused {
				p = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s/s\t%s\t%s\t%s\t%s\n", s.Queue, strconv.FormatFloat(s.Rate, 'f', -1, 64), burstText(s.Burst), p,
				s.queueStats.backlog(), changed(v.Engine, s.By, s.At))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// burstText renders a burst for a person.
func burstText(burst int) string {
	if burst <= 0 {
		return "unknown (the engine does not report it)"
	}
	return strconv.Itoa(burst)
}

// changed says when and by whom the settings last changed.
func changed(engine, by string, at time.Time) string {
	switch {
	case !at.IsZero():
		return at.UTC().Format(time.RFC3339) + " by " + by
	case engine == engines.GCP:
		return "unknown: Cloud Tasks keeps no record (Cloud Audit Logs do)"
	default:
		return "never: the configured rate applies"
	}
}
