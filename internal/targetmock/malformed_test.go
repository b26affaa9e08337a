package targetmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// postReceive sends one receiveEvent call and returns the raw answer,
// whatever its body.
func postReceive(tb testing.TB, ctx context.Context, url, id string) (int, []byte, error) {
	tb.Helper()
	body, err := json.Marshal(map[string]any{"query": receiveMutation, "variables": map[string]any{"in": validInput(id)}})
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/graphql", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestMalformedAnswersAfterTheSideEffect(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), nil)
	if err := tt.srv.SetMalformedRatio(1); err != nil {
		t.Fatalf("SetMalformedRatio: %v", err)
	}
	const calls = 12
	for range calls {
		status, body, err := postReceive(t, t.Context(), tt.url, "evt-1")
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		if status != http.StatusOK {
			t.Fatalf("HTTP %d, want 200 with a broken body: %s", status, body)
		}
		var r struct {
			Data receipt `json:"data"`
		}
		if err := json.Unmarshal(body, &r); err == nil && r.Data.ReceiveEvent != nil {
			t.Fatalf("answer %s carries a receipt, want a malformed one", body)
		}
	}
	// The answers were broken, the side effect was not: stored once.
	if evs := tt.events(t); len(evs) != 1 || evs[0].ID != "evt-1" {
		t.Errorf("Events = %+v, want evt-1 once", evs)
	}
	st := tt.stats(t)
	if st.Accepted != 1 || st.Duplicates != calls-1 {
		t.Errorf("Stats = %+v, want 1 accepted and %d duplicates", st, calls-1)
	}
	if got := tt.srv.Knobs().MalformedRatio; got != 1 {
		t.Errorf("Knobs().MalformedRatio = %v, want 1", got)
	}
	if err := tt.srv.SetMalformedRatio(-0.1); err == nil {
		t.Error("SetMalformedRatio(-0.1) succeeded, want an error")
	}

	if err := tt.srv.SetMalformedRatio(0); err != nil {
		t.Fatalf("SetMalformedRatio(0): %v", err)
	}
	if r := tt.mustReceive(t, validInput("evt-2")); r.ReceiveEvent.ID != "evt-2" {
		t.Errorf("receipt %+v, want evt-2 once the ratio is 0", r.ReceiveEvent)
	}
}

// A client that gives up does not stop the call: the event is stored, as a
// real server would store it, so the client's retry is a duplicate call.
func TestCallOutlivesItsClient(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, unlimited(), nil)
	const latency = 300 * time.Millisecond
	if err := tt.srv.SetLatency(latency); err != nil {
		t.Fatalf("SetLatency: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), latency/3)
	defer cancel()
	if _, _, err := postReceive(t, ctx, tt.url, "evt-cut"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("POST with a short deadline: %v, want the deadline to cut it", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := tt.events(t)
		if len(evs) == 1 && evs[0].ID == "evt-cut" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Events = %+v after 10 s, want evt-cut stored although its client gave up", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := tt.mustReceive(t, validInput("evt-cut")); !r.ReceiveEvent.Duplicate {
		t.Error("the retry after a cut call was not answered duplicate")
	}
}
