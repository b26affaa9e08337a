package ingest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
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

// FuzzServerlessAuthorization: a request carrying X-Serverless-Authorization
// is answered as if Authorization were absent, whatever Authorization holds
// (behind Cloud Run anyone may write it); a refused request leaves no task.
func FuzzServerlessAuthorization(f *testing.F) {
	mode := authtest.Modes(ingestAudience, sourceSA)[1] // google, trusting Cloud Run IAM
	h := newModeHarness(f, mode)
	for _, a := range mode.Attacks(f, dispatcherAudience) {
		if xsa := a.Header.Values(authtest.ServerlessAuthorization); len(a.Authorization) == 1 && len(xsa) == 1 {
			f.Add(a.Authorization[0], xsa[0])
		}
	}
	for _, a := range mode.Accepts(f) {
		if xsa := a.Header.Values(authtest.ServerlessAuthorization); len(xsa) == 1 {
			f.Add(a.Header.Get("Authorization"), xsa[0])
		}
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, authz, xsa string) {
		h.logs.Reset()
		answer := func(withAuthz bool) int {
			before := len(h.queue.Tasks())
			req := newRequest(t, eventJSON(fmt.Sprintf("fuzz-xsa-%d", n.Add(1))), func(r *http.Request) {
				r.Header.Del("Authorization")
				if withAuthz {
					r.Header["Authorization"] = []string{authz}
				}
				r.Header[authtest.ServerlessAuthorization] = []string{xsa}
			})
			rec := h.do(req)
			switch rec.Code {
			case http.StatusAccepted:
			case http.StatusUnauthorized, http.StatusForbidden:
				if len(h.queue.Tasks()) != before {
					t.Fatal("a refused request left a task")
				}
			default:
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			return rec.Code
		}
		if with, without := answer(true), answer(false); with != without {
			t.Fatalf("Authorization %q turned %d into %d beside X-Serverless-Authorization %q", authz, without, with, xsa)
		}
	})
}
