package auth_test

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"eventrelay/internal/auth"
)

// FuzzVerify: whatever string arrives as a token, Verify returns claims or
// an error of one of its kinds, never panics, and accepts only what a
// trusted key signed (or, trusting Cloud Run's IAM, what carries the
// removed-signature marker) with the configured issuer, audience and an
// allowed, verified email.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	gk := googleKey()
	cfg := googleSettings(true).OIDCConfig()
	cfg.JWKSURL = ""
	cfg.Keys = []crypto.PublicKey{gk.priv.Public(), ecKey().priv.Public()}
	cfg.CacheSize = -1 // every input goes through the whole verification
	v, err := auth.NewOIDCVerifier(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	good := sign(f, gk, googleClaims(now, nil))
	for _, seed := range []string{
		good,
		stripSignature(good),
		sign(f, ecKey(), googleClaims(now, nil)),
		sign(f, gk, googleClaims(now, map[string]any{"email": "x@y"})),
		sign(f, gk, googleClaims(now, map[string]any{"aud": "other"})),
		sign(f, gk, googleClaims(now, map[string]any{"exp": now.Add(-time.Hour).Unix()})),
		rawToken(f, map[string]any{"alg": "none"}, googleClaims(now, nil), func(string) []byte { return nil }),
		rawToken(f, map[string]any{"alg": "HS256", "typ": "JWT"}, googleClaims(now, nil), hs256(publicPEM(f, gk.priv.Public()))),
		"", ".", "..", "a.b.c", "e30.e30.", "e30.e30." + auth.SignatureRemovedByGoogle,
		"eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCJ9.e30.sig",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			if c != nil {
				t.Fatalf("claims %+v with error %v", c, err)
			}
			switch {
			case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrForbidden):
			default:
				t.Fatalf("error %v is neither invalid-token nor forbidden (static keys: never unavailable)", err)
			}
			return
		}
		if c.Issuer != auth.GoogleIssuer && c.Issuer != "accounts.google.com" {
			t.Fatalf("accepted issuer %q", c.Issuer)
		}
		if !strings.EqualFold(c.Email, sourceSA) && !strings.EqualFold(c.Email, "second@proj.iam.gserviceaccount.com") || !c.EmailVerified {
			t.Fatalf("accepted email %q (verified %v)", c.Email, c.EmailVerified)
		}
		if !c.Expiry.After(time.Now().Add(-time.Minute)) {
			t.Fatalf("accepted an expired token: %v", c.Expiry)
		}
		parts := strings.Split(tok, ".")
		if c.SignatureRemovedByGoogle != (parts[len(parts)-1] == auth.SignatureRemovedByGoogle) {
			t.Fatalf("SignatureRemovedByGoogle = %v for %q", c.SignatureRemovedByGoogle, tok)
		}
		if !c.SignatureRemovedByGoogle {
			// A signed token must verify with a trusted key, directly.
			jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
			if err != nil {
				t.Fatalf("accepted a token go-jose cannot parse: %v", err)
			}
			if _, err := jws.Verify(gk.priv.Public()); err != nil {
				if _, err := jws.Verify(ecKey().priv.Public()); err != nil {
					t.Fatalf("accepted a token no trusted key signed")
				}
			}
		}
	})
}

// FuzzBearerToken: whatever the Authorization header holds, BearerToken
// returns a non-empty token without blanks that the header contains, or
// nothing.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer abc", "Bearer  abc ", "Basic abc", "Bearer", "Bearer a b", "Bearer\tabc", "", " Bearer x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, err := http.NewRequest(http.MethodPost, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header["Authorization"] = []string{header}
		tok, ok := auth.BearerToken(r)
		if !ok {
			if tok != "" {
				t.Fatalf("token %q without ok", tok)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t") || !strings.Contains(header, tok) {
			t.Fatalf("header %q gave token %q", header, tok)
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(header), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("header %q with scheme %q gave a token", header, scheme)
		}
	})
}

// FuzzCallerToken: whatever Authorization holds, a request carrying
// X-Serverless-Authorization gets its token from that header alone: the
// answer is the same without Authorization, and a token returned is in
// X-Serverless-Authorization.
func FuzzCallerToken(f *testing.F) {
	for _, seed := range [][2]string{
		{"Bearer a.b.c", "Bearer x.y.z"}, {"Bearer a.b.c", ""}, {"Bearer a.b.c", "Basic eA=="},
		{"Bearer a.b." + auth.SignatureRemovedByGoogle, "Bearer"}, {"", "Bearer x"}, {"Bearer a", " bearer  x "},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, authz, xsa string) {
		with := httptest.NewRequest(http.MethodPost, "/", nil)
		with.Header["Authorization"] = []string{authz}
		with.Header[auth.ServerlessAuthorization] = []string{xsa}
		without := httptest.NewRequest(http.MethodPost, "/", nil)
		without.Header[auth.ServerlessAuthorization] = []string{xsa}

		tok, header, ok := auth.CallerToken(with)
		tok2, header2, ok2 := auth.CallerToken(without)
		if tok != tok2 || header != header2 || ok != ok2 {
			t.Fatalf("Authorization %q changed the answer for X-Serverless-Authorization %q: %q %q %v, alone %q %q %v", authz, xsa, tok, header, ok, tok2, header2, ok2)
		}
		if header != auth.ServerlessAuthorization {
			t.Fatalf("token read from %q, want %s", header, auth.ServerlessAuthorization)
		}
		if ok && (tok == "" || !strings.Contains(xsa, tok)) {
			t.Fatalf("token %q is not X-Serverless-Authorization's %q", tok, xsa)
		}
	})
}
