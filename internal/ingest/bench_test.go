package ingest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
)

// noopQueue accepts every task at once.
type noopQueue struct{}

func (noopQueue) Enqueue(context.Context, queue.Task) error { return nil }

// noopStore creates every record at once. The handler under benchmark calls
// nothing else; any other method would panic on the nil Store.
type noopStore struct{ status.Store }

func (*noopStore) Create(context.Context, status.Record) (bool, error) { return true, nil }

// BenchmarkIngest measures the handler alone (token verification, parsing,
// task building, trace propagation, the JSON log line), with a queue and a
// status store that cost nothing. The source's budget is 500 ms per request.
// The verifier is configured as in production: a cached token still goes
// through the allow-list on every request.
func BenchmarkIngest(b *testing.B) {
	ctx := logging.WithLogger(context.Background(), logging.New(io.Discard, logging.Options{}))
	v, err := auth.NewOIDCVerifier(ctx, auth.OIDCConfig{
		Issuer: devissuer.IssuerID, Audience: devissuer.DefaultAudience, Keys: issuer.PublicKeys(),
		AllowedEmails: []string{"other-source@example.test", devissuer.DefaultSourceEmail},
	})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := ingest.NewServer(ctx, ingest.Config{EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond},
		noopQueue{}, &noopStore{}, v)
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Routes(ctx)
	authz := "Bearer " + token(b)
	body := eventJSON("bench-event-0001")
	traceparent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

	run := func(b *testing.B, next func() bool) {
		for next() {
			r := httptest.NewRequest(http.MethodPost, ingest.EventsPath, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", authz)
			r.Header.Set("traceparent", traceparent)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		run(b, b.Loop)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) { run(b, pb.Next) })
	})
}
