package auth_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/auth"
	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
)

func ed25519Key() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// problemType returns the slug of rec's problem+json body, checking the
// shape every problem shares.
func problemType(tb testing.TB, rec *httptest.ResponseRecorder) string {
	tb.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		tb.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p serving.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		tb.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		tb.Errorf("problem status %d != HTTP status %d", p.Status, rec.Code)
	}
	if p.Title == "" {
		tb.Error("problem has no title")
	}
	slug, ok := strings.CutPrefix(p.Type, serving.ProblemTypeBase)
	if !ok {
		tb.Errorf("problem type %q does not start with %q", p.Type, serving.ProblemTypeBase)
	}
	return slug
}

func TestRequireBearer(t *testing.T) {
	t.Parallel()
	now := time.Now()
	valid := sign(t, ecKey(), baseClaims(now, nil))
	expired := sign(t, ecKey(), baseClaims(now, map[string]any{"exp": now.Add(-time.Minute).Unix()}))
	wrongAud := sign(t, ecKey(), baseClaims(now, map[string]any{"aud": "other"}))
	forbidden := sign(t, ecKey(), baseClaims(now, map[string]any{"email": "intruder@example.test"}))
	v := newStaticVerifier(t, func(_ context.Context, c *auth.Claims) error {
		if c.Email == "intruder@example.test" {
			return auth.ErrForbidden
		}
		return nil
	})

	cases := []struct {
		name          string
		header        []string // Authorization header values
		wantStatus    int
		wantSlug      string
		wantChallenge string
		wantDetail    string
	}{
		{name: "valid", header: []string{"Bearer " + valid}, wantStatus: http.StatusNoContent},
		{name: "scheme is case-insensitive", header: []string{"bearer " + valid}, wantStatus: http.StatusNoContent},
		{name: "no header", wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "basic auth", header: []string{"Basic dXNlcjpwYXNz"}, wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "token without scheme", header: []string{valid}, wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "empty bearer", header: []string{"Bearer "}, wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "two tokens in one header", header: []string{"Bearer " + valid + " " + valid}, wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "two headers", header: []string{"Bearer " + valid, "Bearer " + valid}, wantStatus: 401, wantSlug: "unauthenticated", wantChallenge: `Bearer realm="eventrelay"`},
		{name: "garbage token", header: []string{"Bearer garbage"}, wantStatus: 401, wantSlug: "invalid-token", wantChallenge: `Bearer realm="eventrelay", error="invalid_token"`, wantDetail: "not valid"},
		{name: "expired token", header: []string{"Bearer " + expired}, wantStatus: 401, wantSlug: "invalid-token", wantChallenge: `Bearer realm="eventrelay", error="invalid_token"`, wantDetail: "expired"},
		{name: "wrong audience", header: []string{"Bearer " + wrongAud}, wantStatus: 401, wantSlug: "invalid-token", wantChallenge: `Bearer realm="eventrelay", error="invalid_token"`, wantDetail: "not valid"},
		{name: "forbidden caller", header: []string{"Bearer " + forbidden}, wantStatus: 403, wantSlug: "forbidden", wantChallenge: `Bearer realm="eventrelay", error="insufficient_scope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			ctx := logging.WithLogger(t.Context(), logging.New(&logs, logging.Options{Level: "debug"}))
			var gotClaims *auth.Claims
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, ok := auth.ClaimsFromContext(r.Context())
				if !ok {
					t.Error("next handler called without claims in the context")
				}
				gotClaims = c
				w.WriteHeader(http.StatusNoContent)
			})
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/events", nil)
			for _, h := range tc.header {
				req.Header.Add("Authorization", h)
			}
			rec := httptest.NewRecorder()
			auth.RequireBearer(v, next).ServeHTTP(rec, req)

			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			for _, tok := range []string{valid, expired, wrongAud, forbidden} {
				if strings.Contains(rec.Body.String(), tok) || strings.Contains(logs.String(), tok) {
					t.Error("a token was echoed in the response or logged")
				}
				// The signature alone must not leak either.
				sig := tok[strings.LastIndex(tok, ".")+1:]
				if strings.Contains(logs.String(), sig) {
					t.Error("a token signature was logged")
				}
			}
			if tc.wantSlug == "" {
				if gotClaims == nil || gotClaims.Subject != "source-app" {
					t.Errorf("claims = %+v, want subject source-app", gotClaims)
				}
				return
			}
			if gotClaims != nil {
				t.Error("next handler called for a refused request")
			}
			if got := problemType(t, rec); got != tc.wantSlug {
				t.Errorf("problem type = %q, want %q", got, tc.wantSlug)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wantChallenge)
			}
			if !strings.Contains(rec.Body.String(), tc.wantDetail) {
				t.Errorf("body %s does not say %q", rec.Body, tc.wantDetail)
			}
			if !strings.Contains(logs.String(), "request refused") {
				t.Errorf("refusal not logged; logs: %s", logs.String())
			}
		})
	}
}

func TestClaimsFromContext(t *testing.T) {
	t.Parallel()
	if c, ok := auth.ClaimsFromContext(t.Context()); ok || c != nil {
		t.Errorf("ClaimsFromContext(empty) = %v, %v", c, ok)
	}
	want := &auth.Claims{Subject: "s"}
	if c, ok := auth.ClaimsFromContext(auth.WithClaims(t.Context(), want)); !ok || c != want {
		t.Errorf("ClaimsFromContext = %v, %v; want %v, true", c, ok, want)
	}
}

func TestErrorsWrap(t *testing.T) {
	t.Parallel()
	if !errors.Is(auth.ErrTokenExpired, auth.ErrInvalidToken) {
		t.Error("ErrTokenExpired does not wrap ErrInvalidToken")
	}
	for _, err := range []error{auth.ErrForbidden, auth.ErrKeysUnavailable} {
		if errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("%v wraps ErrInvalidToken", err)
		}
	}
}
