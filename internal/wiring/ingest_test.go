package wiring_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/ingest"
	"eventrelay/internal/serving"
	"eventrelay/internal/testutil"
	"eventrelay/internal/wiring"
)

// ingestConfig reads ingest's configuration for the embedded engines in a
// temporary directory, the dev issuer's tokens (its keys served by an
// httptest server) and dispatchURL, on a free port.
func ingestConfig(t *testing.T, iss *devissuer.Issuer, dispatchURL string) wiring.IngestConfig {
	t.Helper()
	keys := httptest.NewServer(iss.Handler())
	t.Cleanup(keys.Close)
	dir := t.TempDir()
	env := map[string]string{
		"PORT":                "0",
		"AUTH_MODE":           "oidc",
		"AUTH_ISSUER":         devissuer.IssuerID,
		"AUTH_JWKS_URL":       keys.URL + devissuer.JWKSPath,
		"AUTH_AUDIENCE":       devissuer.DefaultAudience,
		"AUTH_ALLOWED_EMAILS": devissuer.DefaultSourceEmail,
		"QUEUE_ENGINE":        "sqlite",
		"STATUS_ENGINE":       "sqlite",
		"QUEUE_DB":            filepath.Join(dir, "queue.db"),
		"STATUS_DB":           filepath.Join(dir, "status.db"),
		"DISPATCH_URL":        dispatchURL,
	}
	var c wiring.IngestConfig
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

// TestOpenIngestEmbedded opens ingest on the embedded engines and runs it:
// /health answers at once, /ready once the warm-up is done, an event with
// a valid token is accepted, and the queue's dispatch loop, which Run runs
// in this process, delivers it to DISPATCH_URL. Cancelling Run shuts it
// down cleanly and Close releases everything without an error.
func TestOpenIngestEmbedded(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	delivered := make(chan string, 10)
	dispatcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		delivered <- string(b)
	}))
	t.Cleanup(dispatcher.Close)

	c := ingestConfig(t, iss, dispatcher.URL+"/tasks/events")
	in, err := wiring.OpenIngest(t.Context(), c)
	if err != nil {
		t.Fatalf("OpenIngest: %v", err)
	}
	if in.Queue.Run == nil {
		t.Fatal("the embedded queue has no dispatch loop to run")
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- in.Run(ctx) }()

	_, port, err := net.SplitHostPort(in.Addr())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(ingest.HealthPath); code != http.StatusOK {
		t.Errorf("GET %s = %d, want 200", ingest.HealthPath, code)
	}
	testutil.WaitFor(t, 10*time.Second, "the warm-up", func() bool { return get(serving.ReadyPath) == http.StatusOK })

	tok, err := iss.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+ingest.EventsPath,
		strings.NewReader(`{"id":"wiring-1","name":"test event","body":"test body","timestamp":1767225600000}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s = %d, want 202", ingest.EventsPath, resp.StatusCode)
	}
	select {
	case body := <-delivered:
		if !strings.Contains(body, `"wiring-1"`) {
			t.Errorf("delivered %s, want the event wiring-1", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not delivered to DISPATCH_URL")
	}

	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	if err := in.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestOpenIngestRejectsABusyPort: a listener that cannot be opened is
// OpenIngest's error.
func TestOpenIngestRejectsABusyPort(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = busy.Close() })
	c := ingestConfig(t, iss, "http://127.0.0.1:1/tasks/events")
	_, c.Server.Port, _ = net.SplitHostPort(busy.Addr().String())
	if _, err := wiring.OpenIngest(t.Context(), c); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("OpenIngest on a busy port = %v, want a listen error", err)
	}
}
