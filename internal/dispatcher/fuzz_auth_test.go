package dispatcher

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"eventrelay/internal/auth/authtest"
)

// FuzzTaskAuthorization: whatever Authorization header a delivery carries,
// the dispatcher answers 200 (the queue's token), 401 or 403, never a 5xx,
// and calls the target only for the 200.
func FuzzTaskAuthorization(f *testing.F) {
	mode := authtest.Modes(attackDispatcherAudience, tasksSA)[1]
	h := newSecureHarness(f, mode)
	for _, a := range mode.Attacks(f, attackIngestAudience) {
		if len(a.Authorization) == 1 {
			f.Add(a.Authorization[0])
		}
	}
	f.Add(mode.ValidAuthorization(f))
	f.Fuzz(func(t *testing.T, authz string) {
		h.logs.Reset() // the buffer would grow with every input
		before := len(h.target.seen())
		req := taskRequest(eventJSON("ev-fuzz"), "")
		req.Header["Authorization"] = []string{authz}
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			return
		case http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("status %d for Authorization %q: %s", rec.Code, authz, rec.Body)
		}
		if after := len(h.target.seen()); after != before {
			t.Fatal("a refused delivery called the target")
		}
	})
}

// FuzzTaskServerlessAuthorization: a delivery carrying
// X-Serverless-Authorization is answered as if Authorization were absent,
// whatever Authorization holds; only an accepted one reaches the target.
func FuzzTaskServerlessAuthorization(f *testing.F) {
	mode := authtest.Modes(attackDispatcherAudience, tasksSA)[1]
	h := newSecureHarness(f, mode)
	for _, a := range mode.Attacks(f, attackIngestAudience) {
		if xsa := a.Header.Values(authtest.ServerlessAuthorization); len(a.Authorization) == 1 && len(xsa) == 1 {
			f.Add(a.Authorization[0], xsa[0])
		}
	}
	for _, a := range mode.Accepts(f) {
		if xsa := a.Header.Values(authtest.ServerlessAuthorization); len(xsa) == 1 {
			f.Add(a.Header.Get("Authorization"), xsa[0])
		}
	}
	f.Fuzz(func(t *testing.T, authz, xsa string) {
		h.logs.Reset()
		answer := func(withAuthz bool) int {
			before := len(h.target.seen())
			req := taskRequest(eventJSON("ev-1"), "")
			if withAuthz {
				req.Header["Authorization"] = []string{authz}
			}
			req.Header[authtest.ServerlessAuthorization] = []string{xsa}
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK:
			case http.StatusUnauthorized, http.StatusForbidden:
				if len(h.target.seen()) != before {
					t.Fatal("a refused delivery called the target")
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
