package ingest_test

import (
	"net/http"
	"strings"
	"testing"

	"eventrelay/internal/auth/authtest"
)

// FuzzAuthorization: whatever Authorization header arrives with a valid
// event, ingest answers 202, 401 or 403, never a 5xx; only a 202 leaves a
// task, and no refused header reaches the logs.
func FuzzAuthorization(f *testing.F) {
	mode := authtest.Modes(ingestAudience, sourceSA)[1] // google, trusting Cloud Run IAM: both paths
	h := newModeHarness(f, mode)
	for _, a := range mode.Attacks(f, dispatcherAudience) {
		if len(a.Authorization) == 1 {
			f.Add(a.Authorization[0])
		}
	}
	f.Add(mode.ValidAuthorization(f))
	f.Add("Bearer " + mode.Token(f, nil))
	f.Fuzz(func(t *testing.T, authz string) {
		h.logs.Reset() // only this input's lines: the buffer would grow with every input
		before := len(h.queue.Tasks())
		req := newRequest(t, eventJSON("fuzz-auth"), func(r *http.Request) { r.Header["Authorization"] = []string{authz} })
		rec := h.do(req)
		switch rec.Code {
		case http.StatusAccepted:
			return
		case http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("status %d for Authorization %q: %s", rec.Code, authz, rec.Body)
		}
		if after := len(h.queue.Tasks()); after != before {
			t.Fatal("a refused request left a task")
		}
		if tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(authz), "Bearer")); len(tok) >= 24 && strings.Contains(h.logs.String(), tok) {
			t.Fatal("a refused token is in the logs")
		}
	})
}
