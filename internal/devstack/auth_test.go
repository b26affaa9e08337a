package devstack_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/devstack"
	"eventrelay/internal/dispatcher"
	"eventrelay/internal/ingest"
	"eventrelay/internal/status"
)

// TestBothDoorsAreAuthenticated: in the local stack, as in the cloud, the
// dispatcher takes tasks only with the queue's token and ingest events only
// with the source's; the queue's own deliveries get through.
func TestBothDoorsAreAuthenticated(t *testing.T) {
	stack := startStack(t, devstack.Options{TargetRate: 100, TargetBurst: 10})
	mint := func(aud, email string) string {
		t.Helper()
		tok, err := stack.Issuer.Mint(aud, "someone", email, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sourceToken, err := stack.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"id":"door-1","name":"n","body":"b","timestamp":1767225600000}`
	cases := []struct {
		name     string
		url      string
		token    string
		wantCode int
	}{
		{name: "dispatcher without a token", url: stack.DispatcherURL + dispatcher.TaskPath, wantCode: 401},
		{name: "dispatcher with the source's token", url: stack.DispatcherURL + dispatcher.TaskPath, token: sourceToken, wantCode: 401},
		{name: "dispatcher with its audience but the source's email", url: stack.DispatcherURL + dispatcher.TaskPath, token: mint(devissuer.DispatcherAudience, devissuer.DefaultSourceEmail), wantCode: 403},
		{name: "ingest with the queue's token", url: stack.IngestURL + ingest.EventsPath, token: mint(devissuer.DispatcherAudience, devissuer.InvokerEmail), wantCode: 401},
		{name: "ingest with its audience but the queue's email", url: stack.IngestURL + ingest.EventsPath, token: mint(devissuer.DefaultAudience, devissuer.InvokerEmail), wantCode: 403},
	}
	client := devstack.HTTPClient()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tc.url, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-CloudTasks-QueueName", "events")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantCode)
			}
		})
	}
	if _, err := stack.Status.Get(t.Context(), "door-1"); !errors.Is(err, status.ErrNotFound) {
		t.Fatalf("a refused request left a status record (err %v)", err)
	}
	if st, err := stack.Target.Stats(t.Context()); err != nil || st.DistinctEvents != 0 {
		t.Fatalf("target stats %+v, %v: want nothing delivered", st, err)
	}

	// The source's event goes through, and so do the queue's deliveries.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, stack.IngestURL+ingest.EventsPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+sourceToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the source's event: %d", resp.StatusCode)
	}
	waitDistinct(t, stack, 1, 30*time.Second)
}
