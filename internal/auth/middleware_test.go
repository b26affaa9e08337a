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

// TestRequireBearerServerlessAuthorization: when a request carries
// X-Serverless-Authorization, Cloud Run checked that header's token and
// forwarded Authorization as the caller wrote it, so the caller is who
// X-Serverless-Authorization names, and Authorization is never read.
func TestRequireBearerServerlessAuthorization(t *testing.T) {
	t.Parallel()
	now := time.Now()
	jwks := newJWKSServer(t, "RS256", googleKey())
	strict := newGoogleVerifier(t, googleSettings(false), jwks)
	trusting := newGoogleVerifier(t, googleSettings(true), jwks)
	const second = "second@proj.iam.gserviceaccount.com" // allowed too (googleSettings)
	const intruder = "intruder@attacker.example"
	signed := func(email string) string {
		return sign(t, googleKey(), googleClaims(now, map[string]any{"email": email, "sub": "sub-" + email}))
	}
	unsigned := func(email string) string { return stripSignature(signed(email)) }
	bearer := func(tok string) []string { return []string{"Bearer " + tok} }

	cases := []struct {
		name       string
		v          auth.Verifier
		authz      []string            // Authorization values
		xsa        []string            // X-Serverless-Authorization values; nil: none
		extra      map[string][]string // more headers, by exact map key
		wantStatus int
		wantSlug   string
		wantEmail  string // who next sees, for a 204
	}{
		{name: "trusting: unsigned Authorization alone (plain Cloud Run)", v: trusting, authz: bearer(unsigned(sourceSA)), wantStatus: 204, wantEmail: sourceSA},
		{name: "trusting: unsigned X-Serverless-Authorization alone", v: trusting, xsa: bearer(unsigned(second)), wantStatus: 204, wantEmail: second},
		{name: "trusting: the same unsigned token in both", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: bearer(unsigned(sourceSA)), wantStatus: 204, wantEmail: sourceSA},
		{name: "trusting: two allowed identities, X-Serverless-Authorization's wins", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: bearer(unsigned(second)), wantStatus: 204, wantEmail: second},
		{name: "trusting: X-Serverless-Authorization decides, Authorization is the application's", v: trusting, authz: []string{"Bearer not-a-jwt"}, xsa: bearer(unsigned(second)), wantStatus: 204, wantEmail: second},
		{name: "trusting: forged Authorization beside X-Serverless-Authorization naming an intruder", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: bearer(unsigned(intruder)), wantStatus: 403, wantSlug: "forbidden"},
		{name: "trusting: forged Authorization beside a signed intruder", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: bearer(signed(intruder)), wantStatus: 403, wantSlug: "forbidden"},
		{name: "trusting: signed Authorization beside a signed intruder", v: trusting, authz: bearer(signed(sourceSA)), xsa: bearer(signed(intruder)), wantStatus: 403, wantSlug: "forbidden"},
		{name: "trusting: forged Authorization beside an empty X-Serverless-Authorization", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{""}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: forged Authorization beside a Basic X-Serverless-Authorization", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{"Basic dXNlcjpwYXNz"}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: forged Authorization beside X-Serverless-Authorization without a scheme", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{unsigned(second)}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: forged Authorization beside a garbage X-Serverless-Authorization", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{"Bearer garbage"}, wantStatus: 401, wantSlug: "invalid-token"},
		{name: "trusting: forged Authorization beside two X-Serverless-Authorization headers", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{"Bearer " + unsigned(second), "Bearer " + unsigned(second)}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: an X-Serverless-Authorization header with no value", v: trusting, authz: bearer(unsigned(sourceSA)), xsa: []string{}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: forged Authorization beside x_serverless_authorization", v: trusting, authz: bearer(unsigned(sourceSA)), extra: map[string][]string{"X_serverless_authorization": bearer(unsigned(intruder))}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "trusting: forged Authorization beside a lower-case key", v: trusting, authz: bearer(unsigned(sourceSA)), extra: map[string][]string{"x-serverless-authorization": bearer(unsigned(intruder))}, wantStatus: 401, wantSlug: "unauthenticated"},
		{name: "strict: signed X-Serverless-Authorization alone", v: strict, xsa: bearer(signed(second)), wantStatus: 204, wantEmail: second},
		{name: "strict: signed X-Serverless-Authorization, unsigned intruder in Authorization", v: strict, authz: bearer(unsigned(intruder)), xsa: bearer(signed(sourceSA)), wantStatus: 204, wantEmail: sourceSA},
		{name: "strict: unsigned X-Serverless-Authorization beside a signed Authorization", v: strict, authz: bearer(signed(sourceSA)), xsa: bearer(unsigned(sourceSA)), wantStatus: 401, wantSlug: "invalid-token"},
		{name: "strict: signed Authorization beside a signed intruder", v: strict, authz: bearer(signed(sourceSA)), xsa: bearer(signed(intruder)), wantStatus: 403, wantSlug: "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			ctx := logging.WithLogger(t.Context(), logging.New(&logs, logging.Options{Level: "debug"}))
			var got *auth.Claims
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = auth.ClaimsFromContext(r.Context())
				w.WriteHeader(http.StatusNoContent)
			})
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/events", nil)
			for _, v := range tc.authz {
				req.Header.Add("Authorization", v)
			}
			if tc.xsa != nil {
				req.Header[auth.ServerlessAuthorization] = tc.xsa
			}
			for k, vs := range tc.extra {
				req.Header[k] = vs
			}
			rec := httptest.NewRecorder()
			auth.RequireBearer(tc.v, next).ServeHTTP(rec, req)

			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantSlug == "" {
				if got == nil || got.Email != tc.wantEmail {
					t.Fatalf("next saw claims %+v, want email %s", got, tc.wantEmail)
				}
				return
			}
			if got != nil {
				t.Error("next handler called for a refused request")
			}
			if slug := problemType(t, rec); slug != tc.wantSlug {
				t.Errorf("problem type = %q, want %q", slug, tc.wantSlug)
			}
			for _, vs := range [][]string{tc.authz, tc.xsa} {
				for _, v := range vs {
					if tok := strings.TrimPrefix(v, "Bearer "); len(tok) > 16 && (strings.Contains(logs.String(), tok) || strings.Contains(rec.Body.String(), tok)) {
						t.Error("a token was logged or echoed")
					}
				}
			}
		})
	}
}

func TestCallerToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		header     map[string][]string
		wantToken  string
		wantHeader string
		wantOK     bool
	}{
		{name: "Authorization alone", header: map[string][]string{"Authorization": {"Bearer a"}}, wantToken: "a", wantHeader: "Authorization", wantOK: true},
		{name: "nothing", header: map[string][]string{}, wantHeader: "Authorization"},
		{name: "X-Serverless-Authorization alone", header: map[string][]string{auth.ServerlessAuthorization: {"Bearer x"}}, wantToken: "x", wantHeader: auth.ServerlessAuthorization, wantOK: true},
		{name: "both: X-Serverless-Authorization's", header: map[string][]string{"Authorization": {"Bearer a"}, auth.ServerlessAuthorization: {"bearer x"}}, wantToken: "x", wantHeader: auth.ServerlessAuthorization, wantOK: true},
		{name: "empty X-Serverless-Authorization: no fall back", header: map[string][]string{"Authorization": {"Bearer a"}, auth.ServerlessAuthorization: {""}}, wantHeader: auth.ServerlessAuthorization},
		{name: "repeated X-Serverless-Authorization", header: map[string][]string{"Authorization": {"Bearer a"}, auth.ServerlessAuthorization: {"Bearer x", "Bearer x"}}, wantHeader: auth.ServerlessAuthorization},
		{name: "non-Bearer X-Serverless-Authorization", header: map[string][]string{"Authorization": {"Bearer a"}, auth.ServerlessAuthorization: {"Basic x"}}, wantHeader: auth.ServerlessAuthorization},
		{name: "underscore spelling", header: map[string][]string{"Authorization": {"Bearer a"}, "X_serverless_authorization": {"Bearer x"}}, wantHeader: auth.ServerlessAuthorization},
		{name: "underscore spelling beside the real one", header: map[string][]string{auth.ServerlessAuthorization: {"Bearer x"}, "X_serverless_authorization": {"Bearer y"}}, wantHeader: auth.ServerlessAuthorization},
		{name: "a longer name is another header", header: map[string][]string{"Authorization": {"Bearer a"}, "X-Serverless-Authorization-Extra": {"Bearer x"}}, wantToken: "a", wantHeader: "Authorization", wantOK: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			for k, vs := range tc.header {
				r.Header[k] = vs
			}
			tok, header, ok := auth.CallerToken(r)
			if tok != tc.wantToken || header != tc.wantHeader || ok != tc.wantOK {
				t.Errorf("CallerToken = %q, %q, %v; want %q, %q, %v", tok, header, ok, tc.wantToken, tc.wantHeader, tc.wantOK)
			}
		})
	}
}
