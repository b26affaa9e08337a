package relayctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/engines"
	"eventrelay/internal/status"
)

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", stderr)
	data := fs.String("data", DefaultDataDir, "the local stack's data directory (holds the dev issuer's key)")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	audience := fs.String("audience", devissuer.DefaultAudience, "token audience")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional(pos); err != nil {
		return err
	}
	// A missing key is created (so a token can be minted before the first
	// relayctl dev), but say so: with a mistyped --data the token would be
	// signed by a key the running stack does not know.
	if _, err := os.Stat(filepath.Join(*data, devissuer.KeyFile)); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "relayctl token: no dev issuer key in %s yet; creating one (relayctl dev --data %s will use it)\n", *data, *data)
	}
	iss, err := devissuer.LoadOrCreate(*data)
	if err != nil {
		return err
	}
	tok, err := iss.Mint(*audience, "relayctl", devissuer.DefaultSourceEmail, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", stderr)
	var eng engineFlags
	eng.register(fs)
	asJSON := fs.Bool("json", false, "print the raw record as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: want exactly one event ID", errUsage)
	}
	store, err := eng.openStatus(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	rec, err := store.Get(ctx, pos[0])
	if errors.Is(err, status.ErrNotFound) {
		return fmt.Errorf("event %q not found", pos[0])
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	}
	traceURL := ""
	if eng.engine == engines.GCP && rec.TraceID != "" {
		traceURL = CloudTraceURL(eng.gcp.Project, rec.TraceID)
	}
	return printTimeline(stdout, rec, traceURL)
}

// printTimeline renders a record as a readable timeline.
func printTimeline(w io.Writer, r status.Record, traceURL string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "event     %s\n", r.EventID)
	fmt.Fprintf(&b, "status    %s", r.Status)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	b.WriteString("\n")
	if r.TraceID != "" {
		fmt.Fprintf(&b, "trace     %s\n", r.TraceID)
	}
	if traceURL != "" {
		fmt.Fprintf(&b, "          %s\n", traceURL)
	}
	fmt.Fprintf(&b, "name      %s\n", r.Event.Name)
	fmt.Fprintf(&b, "timestamp %s (source's clock)\n", r.Event.Timestamp.UTC().Format(time.RFC3339Nano))
	b.WriteString("timeline\n")
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\treceived\t\t\n", r.ReceivedAt.UTC().Format(time.RFC3339Nano))
	for _, a := range r.Attempts {
		detail := fmt.Sprintf("%v", a.Duration.Round(time.Millisecond))
		if a.HTTPStatus != 0 {
			detail += fmt.Sprintf(", HTTP %d", a.HTTPStatus)
		}
		if a.Error != "" {
			detail += ", " + a.Error
		}
		fmt.Fprintf(tw, "  %s\tattempt %d\t%s\t%s\n", a.At.UTC().Format(time.RFC3339Nano), a.Number, a.Outcome, detail)
	}
	if r.DeliveredAt != nil {
		fmt.Fprintf(tw, "  %s\tdelivered\t\tafter %v\n", r.DeliveredAt.UTC().Format(time.RFC3339Nano), r.DeliveredAt.Sub(r.ReceivedAt).Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("events", stderr)
	var eng engineFlags
	eng.register(fs)
	st := fs.String("status", "", "status to list: "+statusNames())
	limit := fs.Int("limit", 50, "at most this many events, newest first")
	asJSON := fs.Bool("json", false, "print records as JSON lines")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := noPositional(pos); err != nil {
		return err
	}
	want := status.Status(*st)
	if *st != "" && !want.Valid() {
		return fmt.Errorf("%w: unknown --status %q (one of %s)", errUsage, *st, statusNames())
	}
	store, err := eng.openStatus(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	recs, err := store.List(ctx, status.Query{Status: want, Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tRECEIVED\tATTEMPTS\tREASON")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.EventID, r.Status, r.ReceivedAt.UTC().Format(time.RFC3339), len(r.Attempts), r.Reason)
	}
	return tw.Flush()
}

func statusNames() string {
	names := make([]string, len(status.All))
	for i, s := range status.All {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// CloudTraceURL links a trace in the Cloud Trace explorer.
func CloudTraceURL(project, traceID string) string {
	return "https://console.cloud.google.com/traces/list?project=" + url.QueryEscape(project) + "&tid=" + url.QueryEscape(traceID)
}
