package relayctl

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/devstack"
	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
	"eventrelay/internal/status/statustest"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// seed writes one delivered and one failed record into a data dir's store.
func seed(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := t.Context()
	store, err := sqlitestatus.Open(ctx, filepath.Join(dir, devstack.StatusFile))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer store.Close()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"ev-delivered", "ev-failed"} {
		if _, err := store.Create(ctx, statustest.NewRecord(id, at)); err != nil {
			t.Fatalf("create: %v", err)
		}
	}
	apply := func(id string, u status.Update) {
		t.Helper()
		if _, err := store.Apply(ctx, id, u); err != nil {
			t.Fatalf("apply %s: %v", id, err)
		}
	}
	apply("ev-delivered", status.Update{Status: status.Delivered, At: at.Add(time.Second),
		Attempt: &status.Attempt{Number: 1, At: at.Add(time.Second), Outcome: status.OutcomeDelivered, HTTPStatus: 200, Duration: 3 * time.Millisecond}})
	apply("ev-failed", status.Update{Status: status.Failed, At: at.Add(time.Second), Reason: "target rejected: brand is empty",
		Attempt: &status.Attempt{Number: 1, At: at.Add(time.Second), Outcome: status.OutcomePermanent, HTTPStatus: 200, Error: "BAD_USER_INPUT"}})
	return dir
}

func TestStatus(t *testing.T) {
	t.Parallel()
	dir := seed(t)

	code, out, errOut := run(t, "status", "--data", dir, "ev-delivered")
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut)
	}
	for _, want := range []string{"status    delivered", "attempt 1", "HTTP 200", "delivered"} {
		if !strings.Contains(out, want) {
			t.Errorf("timeline lacks %q:\n%s", want, out)
		}
	}

	// Flags after the ID work too, and --json prints the raw record.
	code, out, errOut = run(t, "status", "ev-failed", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("status --json exit %d: %s", code, errOut)
	}
	var rec status.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("status --json is not a record: %v\n%s", err, out)
	}
	if rec.Status != status.Failed || rec.Reason == "" || len(rec.Attempts) != 1 {
		t.Errorf("record = %+v, want failed with a reason and one attempt", rec)
	}
}

func TestStatusErrors(t *testing.T) {
	t.Parallel()
	dir := seed(t)
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown id", []string{"status", "--data", dir, "nope"}, 1, "not found"},
		{"no id", []string{"status", "--data", dir}, 2, "exactly one event ID"},
		{"two ids", []string{"status", "--data", dir, "a", "b"}, 2, "exactly one event ID"},
		{"wrong data dir", []string{"status", "--data", filepath.Join(dir, "missing"), "x"}, 1, "no status store"},
		{"unknown status", []string{"events", "--data", dir, "--status", "bogus"}, 2, "unknown --status"},
		{"stray argument", []string{"events", "--data", dir, "delivered"}, 2, "unexpected argument"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := run(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	dir := seed(t)
	code, out, errOut := run(t, "events", "--data", dir, "--status", "failed")
	if code != 0 {
		t.Fatalf("events exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "ev-failed") || strings.Contains(out, "ev-delivered") {
		t.Errorf("events --status failed listed the wrong events:\n%s", out)
	}
	code, out, _ = run(t, "events", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("events --json exit %d", code)
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 {
		t.Errorf("events --json printed %d lines, want 2:\n%s", n, out)
	}
}

func TestTokenIsAcceptedByTheDevVerifier(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errOut := run(t, "token", "--data", dir)
	if code != 0 {
		t.Fatalf("token exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "creating one") {
		t.Errorf("token in an empty data dir did not say it created a key: %q", errOut)
	}
	tok := strings.TrimSpace(out)
	if strings.Contains(tok, "\n") || tok == "" {
		t.Fatalf("token printed more than one line: %q", out)
	}
	iss, err := devissuer.LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("load issuer: %v", err)
	}
	v, err := auth.NewOIDCVerifier(context.Background(), auth.OIDCConfig{
		Issuer: devissuer.IssuerID, Audience: devissuer.DefaultAudience, Keys: iss.PublicKeys(),
	})
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("the dev verifier refused relayctl's token: %v", err)
	}

	// A second token from the same dir is signed by the same key, silently.
	code, _, errOut = run(t, "token", "--data", dir)
	if code != 0 || errOut != "" {
		t.Errorf("second token: exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
}

func TestTimelineLinksCloudTraceInGCPMode(t *testing.T) {
	t.Parallel()
	rec := statustest.NewRecord("ev-1", time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	rec.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var b bytes.Buffer
	if err := printTimeline(&b, rec, CloudTraceURL("my-proj", rec.TraceID)); err != nil {
		t.Fatal(err)
	}
	want := "https://console.cloud.google.com/traces/list?project=my-proj&tid=4bf92f3577b34da6a3ce929d0e0e4736"
	if !strings.Contains(b.String(), want) {
		t.Errorf("timeline lacks the Cloud Trace link %q:\n%s", want, b.String())
	}
	b.Reset()
	if err := printTimeline(&b, rec, ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "console.cloud.google.com") {
		t.Errorf("embedded timeline links Cloud Trace:\n%s", b.String())
	}
}
