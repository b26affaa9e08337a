package dispatcher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/status"
	"eventrelay/internal/status/sqlitestatus"
)

// TestWithSQLiteStatus runs a retry-then-deliver sequence against the
// embedded status engine, so the transitions the handler asks for are the
// ones a real engine accepts.
func TestWithSQLiteStatus(t *testing.T) {
	t.Parallel()
	store, err := sqlitestatus.Open(context.Background(), filepath.Join(t.TempDir(), "status.db"))
	if err != nil {
		t.Fatalf("open status store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })

	ft := newFakeTarget(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 0:
			respond(500, nil, `{"errors":[{"message":"injected fault"}]}`)(n, w, r)
		case 1:
			respond(429, map[string]string{"Retry-After": "2"}, `{}`)(n, w, r)
		default:
			respond(200, nil, receiptBody("ev-sql", false))(n, w, r)
		}
	})
	s, err := NewServer(context.Background(), testConfig(ft.srv.URL), store, Options{Retry: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Routes(context.Background()))
	t.Cleanup(srv.Close)
	h := &harness{url: srv.URL, target: ft}

	var codes []int
	for retry := range 4 {
		codes = append(codes, h.deliver(t, task{body: eventJSON("ev-sql"), retryCount: retry}).code)
	}
	if diff := cmp.Diff([]int{500, 429, 200, 200}, codes); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := len(ft.seen()); n != 3 {
		t.Errorf("target saw %d calls, want 3 (the 4th delivery finds it delivered)", n)
	}

	rec, err := store.Get(context.Background(), "ev-sql")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != status.Delivered || rec.DeliveredAt == nil || rec.TraceID != testTraceID {
		t.Errorf("record = %s delivered_at %v trace %q, want delivered with a time and trace %s",
			rec.Status, rec.DeliveredAt, rec.TraceID, testTraceID)
	}
	want := []attemptView{
		{Number: 1, Outcome: status.OutcomeRetryable, HTTPStatus: 500, HasError: true, TaskName: "ev-task", TraceID: testTraceID},
		{Number: 2, Outcome: status.OutcomeRateLimited, HTTPStatus: 429, HasError: true, TaskName: "ev-task", TraceID: testTraceID},
		{Number: 3, Outcome: status.OutcomeDelivered, HTTPStatus: 200, TaskName: "ev-task", TraceID: testTraceID},
	}
	if diff := cmp.Diff(want, viewAttempts(rec.Attempts)); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}
