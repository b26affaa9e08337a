package auth_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"eventrelay/internal/auth"
)

const (
	googleAudience = "https://ingest-abc-ew.a.run.app"
	sourceSA       = "source@proj.iam.gserviceaccount.com"
)

// googleKey stands in for one of Google's signing keys.
var googleKey = sync.OnceValue(func() testKey {
	k := rsaKey()
	return testKey{priv: k.priv, alg: jose.RS256, kid: "google-1"}
})

// jwksServer serves keys as a JSON Web Key Set, each with the given alg
// string (which may be non-standard), and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
}

func newJWKSServer(tb testing.TB, alg string, keys ...testKey) *jwksServer {
	tb.Helper()
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		pub, ok := k.priv.Public().(*rsa.PublicKey)
		if !ok {
			tb.Fatalf("key %s is not RSA", k.kid)
		}
		enc := base64.RawURLEncoding
		doc.Keys = append(doc.Keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": alg, "kid": k.kid,
			"n": enc.EncodeToString(pub.N.Bytes()),
			"e": enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	body, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	tb.Cleanup(s.Close)
	return s
}

// googleSettings is what a Cloud Run ingest would be configured with.
func googleSettings(trustIAM bool) auth.Settings {
	return auth.Settings{
		Mode:             auth.ModeGoogle,
		Audience:         googleAudience,
		AllowedEmails:    []string{sourceSA, "Second@Proj.iam.gserviceaccount.com"},
		TrustCloudRunIAM: trustIAM,
	}
}

// newGoogleVerifier builds the verifier of googleSettings, its JWKS served
// by jwks instead of Google (the only difference from production).
func newGoogleVerifier(tb testing.TB, s auth.Settings, jwks *jwksServer) *auth.OIDCVerifier {
	tb.Helper()
	if err := s.Validate(); err != nil {
		tb.Fatalf("settings: %v", err)
	}
	cfg := s.OIDCConfig()
	if cfg.Issuer != auth.GoogleIssuer || cfg.JWKSURL != auth.GoogleJWKSURL {
		tb.Fatalf("google mode config = %+v, want Google's issuer and keys", cfg)
	}
	cfg.JWKSURL = jwks.URL
	v, err := auth.NewOIDCVerifier(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// googleClaims are a service account's ID token claims for googleAudience,
// as the metadata server issues them with format=full.
func googleClaims(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":            auth.GoogleIssuer,
		"aud":            googleAudience,
		"azp":            "1234567890",
		"sub":            "1234567890",
		"email":          sourceSA,
		"email_verified": true,
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// stripSignature is what Cloud Run forwards after its IAM check.
func stripSignature(tok string) string {
	return tok[:strings.LastIndex(tok, ".")+1] + auth.SignatureRemovedByGoogle
}

func TestGoogleMode(t *testing.T) {
	t.Parallel()
	now := time.Now()
	jwks := newJWKSServer(t, "RS256", googleKey())
	strict := newGoogleVerifier(t, googleSettings(false), jwks)
	trusting := newGoogleVerifier(t, googleSettings(true), jwks)
	g := func(o map[string]any) string { return sign(t, googleKey(), googleClaims(now, o)) }

	cases := []struct {
		name        string
		token       string
		wantErr     error  // nil: accepted by both verifiers
		wantTrusted error  // the trusting verifier's answer to a stripped token
		reason      string // in the error
		// trustedReason is in the trusting verifier's error for a stripped
		// token; the strict one always says it does not trust Cloud Run.
		trustedReason string
	}{
		{name: "service account token", token: g(nil)},
		{name: "issuer without scheme, as Google documents", token: g(map[string]any{"iss": "accounts.google.com"})},
		{name: "email in another case", token: g(map[string]any{"email": "SOURCE@proj.iam.gserviceaccount.com"})},
		{name: "second allowed email", token: g(map[string]any{"email": "second@proj.iam.gserviceaccount.com"})},
		{name: "email_verified as a string", token: g(map[string]any{"email_verified": "true"})},
		{name: "email not allowed", token: g(map[string]any{"email": "intruder@proj.iam.gserviceaccount.com"}), wantErr: auth.ErrForbidden, reason: "not on the allow-list"},
		{name: "email not verified", token: g(map[string]any{"email_verified": false}), wantErr: auth.ErrForbidden, reason: "not verified"},
		{name: "email_verified missing", token: g(map[string]any{"email_verified": nil}), wantErr: auth.ErrForbidden, reason: "not verified"},
		{name: "no email (format=standard)", token: g(map[string]any{"email": nil}), wantErr: auth.ErrForbidden, reason: `no "email" claim`},
		{name: "another issuer", token: g(map[string]any{"iss": "https://accounts.google.com.evil.test"}), wantErr: auth.ErrInvalidToken, reason: "different provider"},
		{name: "another audience", token: g(map[string]any{"aud": "https://dispatcher-abc-ew.a.run.app"}), wantErr: auth.ErrInvalidToken, reason: "expected audience"},
		{name: "expired", token: g(map[string]any{"exp": now.Add(-time.Minute).Unix()}), wantErr: auth.ErrTokenExpired, reason: "expired"},
		{name: "signed by a key Google does not publish", token: sign(t, testKey{priv: otherRSAKey().priv, alg: jose.RS256, kid: "google-1"}, googleClaims(now, nil)), wantErr: auth.ErrInvalidToken, reason: "verify signature"},
		{
			name: "signature removed by Cloud Run", token: stripSignature(g(nil)),
			wantErr: auth.ErrInvalidToken, wantTrusted: nil,
		},
		{
			name: "signature removed, claims for another audience", token: stripSignature(g(map[string]any{"aud": "https://dispatcher-abc-ew.a.run.app"})),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, trustedReason: "expected audience",
		},
		{
			name: "signature removed, expired", token: stripSignature(g(map[string]any{"exp": now.Add(-time.Minute).Unix()})),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrTokenExpired, trustedReason: "expired",
		},
		{
			name: "signature removed, another issuer", token: stripSignature(g(map[string]any{"iss": "https://evil.test"})),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, trustedReason: "different provider",
		},
		{
			name: "signature removed, email not allowed", token: stripSignature(g(map[string]any{"email": "intruder@proj.iam.gserviceaccount.com"})),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrForbidden, trustedReason: "not on the allow-list",
		},
		{
			name: "signature removed, alg none", token: stripSignature(rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, googleClaims(now, nil), func(string) []byte { return nil })),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, trustedReason: `"none"`,
		},
		{
			name: "signature removed, HS256", token: stripSignature(rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT"}, googleClaims(now, nil), hs256([]byte("k")))),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, trustedReason: `"HS256"`,
		},
		{
			name: "signature removed, ES256", token: stripSignature(sign(t, ecKey(), googleClaims(now, nil))),
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, trustedReason: `"ES256"`,
		},
		{
			name: "a forged signature is not a removed one", token: g(nil)[:strings.LastIndex(g(nil), ".")+1] + "U0lHTkFUVVJFX1JFTU9WRURfQllfR09PR0xF",
			wantErr: auth.ErrInvalidToken, wantTrusted: auth.ErrInvalidToken, reason: "verify signature",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stripped := strings.HasSuffix(tc.token, auth.SignatureRemovedByGoogle)
			strictReason := tc.reason
			if stripped {
				strictReason = "does not trust Cloud Run"
			}
			trusted, trustedReason := tc.wantErr, tc.reason
			if stripped {
				trusted, trustedReason = tc.wantTrusted, tc.trustedReason
			}
			for _, vc := range []struct {
				name    string
				v       *auth.OIDCVerifier
				wantErr error
				reason  string
			}{
				{"strict", strict, tc.wantErr, strictReason},
				{"trusting Cloud Run IAM", trusting, trusted, trustedReason},
			} {
				c, err := vc.v.Verify(t.Context(), tc.token)
				if vc.wantErr == nil {
					if err != nil {
						t.Fatalf("%s: Verify: %v", vc.name, err)
					}
					if !strings.EqualFold(c.Email, sourceSA) && !strings.HasPrefix(strings.ToLower(c.Email), "second@") {
						t.Errorf("%s: email = %q", vc.name, c.Email)
					}
					if got, want := c.SignatureRemovedByGoogle, stripped; got != want {
						t.Errorf("%s: SignatureRemovedByGoogle = %v, want %v", vc.name, got, want)
					}
					continue
				}
				if !errors.Is(err, vc.wantErr) {
					t.Fatalf("%s: Verify error = %v, want %v", vc.name, err, vc.wantErr)
				}
				if c != nil {
					t.Errorf("%s: claims %+v returned with an error", vc.name, c)
				}
				if !strings.Contains(err.Error(), vc.reason) {
					t.Errorf("%s: error %q does not say %q", vc.name, err, vc.reason)
				}
				if errors.Is(err, auth.ErrForbidden) && errors.Is(err, auth.ErrInvalidToken) {
					t.Errorf("%s: error %v is both forbidden and invalid", vc.name, err)
				}
			}
		})
	}
}

var otherRSAKey = sync.OnceValue(func() testKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return testKey{priv: k, alg: jose.RS256, kid: "other-rsa"}
})

// TestEmulatorJWKS: the Cloud Tasks emulator publishes its RSA key with
// alg "RSA256", which go-oidc ≥ 3.20 skips; the verifier reads it as RS256.
func TestEmulatorJWKS(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const issuer = "http://127.0.0.1:8980"
	key := testKey{priv: rsaKey().priv, alg: jose.RS256, kid: "cloudtasks-emulator-test"}
	for _, alg := range []string{"RSA256", "RS256", ""} {
		t.Run("alg "+alg, func(t *testing.T) {
			t.Parallel()
			jwks := newJWKSServer(t, alg, key)
			v, err := auth.NewVerifier(t.Context(), auth.Settings{
				Mode: auth.ModeOIDC, Issuer: issuer, JWKSURL: jwks.URL + "/jwks",
				Audience: "http://127.0.0.1:8081/tasks/events", AllowedEmails: []string{"tasks@emulator.test"},
			})
			if err != nil {
				t.Fatal(err)
			}
			claims := map[string]any{
				"iss": issuer, "aud": "http://127.0.0.1:8081/tasks/events", "sub": "tasks@emulator.test",
				"email": "tasks@emulator.test", "email_verified": true,
				"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
			}
			c, err := v.Verify(t.Context(), sign(t, key, claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.Email != "tasks@emulator.test" {
				t.Errorf("email = %q", c.Email)
			}
			// The rewritten key is still only an RSA key: an HMAC keyed with
			// it, or another alg, does not pass.
			pem := publicPEM(t, rsaKey().priv.Public())
			forged := rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims, hs256(pem))
			if _, err := v.Verify(t.Context(), forged); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("HS256 forgery: error %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestUnknownKeyIDsDoNotFetchAgain: a stream of tokens naming unknown key
// ids must not become a stream of requests to the issuer.
func TestUnknownKeyIDsDoNotFetchAgain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	jwks := newJWKSServer(t, "RS256", googleKey())
	v := newGoogleVerifier(t, googleSettings(false), jwks)
	if _, err := v.Verify(t.Context(), sign(t, googleKey(), googleClaims(now, nil))); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		k := testKey{priv: otherRSAKey().priv, alg: jose.RS256, kid: "unknown-" + string(rune('a'+i))}
		if _, err := v.Verify(t.Context(), sign(t, k, googleClaims(now, nil))); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("token %d with an unknown kid: error %v, want ErrInvalidToken", i, err)
		}
	}
	if n := jwks.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (unknown kids are answered from the last fetch)", n)
	}
}

// TestCheckRunsOnCacheHits: the allow-list and Check decide on every call,
// so a caller removed is refused at its next request, cached token or not.
func TestCheckRunsOnCacheHits(t *testing.T) {
	t.Parallel()
	var (
		calls  atomic.Int64
		refuse atomic.Bool
	)
	v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
		Issuer: testIssuer, Audience: testAudience, Keys: []crypto.PublicKey{ecKey().priv.Public()},
		AllowedEmails: []string{"source@example.test"},
		Check: func(context.Context, *auth.Claims) error {
			calls.Add(1)
			if refuse.Load() {
				return auth.ErrForbidden
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, ecKey(), baseClaims(time.Now(), nil))
	for i := range 3 {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("Check ran %d times for 3 calls (2 of them cache hits), want 3", n)
	}
	refuse.Store(true)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("after the caller was refused: error %v, want ErrForbidden from the cached token", err)
	}
	refuse.Store(false)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Errorf("after the caller was allowed again: %v", err)
	}
}

// TestTokenKinds: only ID tokens pass, not other tokens a trusted issuer
// signs.
func TestTokenKinds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v := newStaticVerifier(t, nil)
	withTyp := func(typ string) string {
		opts := &jose.SignerOptions{}
		if typ != "" {
			opts = opts.WithType(jose.ContentType(typ))
		}
		signer, err := jose.NewSigner(
			jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey().priv, KeyID: ecKey().kid}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign(mustJSON(t, baseClaims(now, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// signed signs valid claims with header k set to val; full selects the
	// JWS JSON serialization instead of the compact one.
	signed := func(k jose.HeaderKey, val any, full bool) string {
		signer, err := jose.NewSigner(
			jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey().priv, KeyID: ecKey().kid}},
			(&jose.SignerOptions{}).WithHeader(k, val))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := signer.Sign(mustJSON(t, baseClaims(now, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if full {
			return jws.FullSerialize()
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	withCty := func() string { return signed(jose.HeaderContentType, "JWT", false) }
	cases := []struct {
		name    string
		token   string
		wantErr error
		reason  string
	}{
		{name: "typ JWT", token: withTyp("JWT")},
		{name: "typ in lower case", token: withTyp("jwt")},
		{name: "no typ", token: withTyp("")},
		{name: "empty typ", token: signed(jose.HeaderType, "", false)},
		{name: "empty cty", token: signed(jose.HeaderContentType, "", false)},
		{name: "typ not a string", token: signed(jose.HeaderType, 1, false), wantErr: auth.ErrInvalidToken, reason: "typ"},
		{name: "JWS JSON serialization", token: signed(jose.HeaderType, "JWT", true), wantErr: auth.ErrInvalidToken, reason: "three parts"},
		{name: "access token (at+jwt)", token: withTyp("at+jwt"), wantErr: auth.ErrInvalidToken, reason: `typ "at+jwt"`},
		{name: "logout token", token: withTyp("logout+jwt"), wantErr: auth.ErrInvalidToken, reason: "typ"},
		{name: "nested token", token: withCty(), wantErr: auth.ErrInvalidToken, reason: "cty"},
		{name: "access token without aud", token: sign(t, ecKey(), baseClaims(now, map[string]any{"aud": nil, "scope": "openid"})), wantErr: auth.ErrInvalidToken, reason: "expected audience"},
		{name: "opaque access token", token: "ya29.a0AfH6SMBx3kQ-opaque-access-token", wantErr: auth.ErrInvalidToken, reason: "three parts"},
		{name: "header not base64url", token: "e30=.e30.c2ln", wantErr: auth.ErrInvalidToken, reason: "not base64url"},
		{name: "header not JSON", token: base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".e30.c2ln", wantErr: auth.ErrInvalidToken, reason: "malformed jwt"},
		{name: "too long", token: strings.Repeat("a", auth.MaxTokenBytes+1), wantErr: auth.ErrInvalidToken, reason: "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := v.Verify(t.Context(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Verify error = %v, want %v saying %q", err, tc.wantErr, tc.reason)
			}
		})
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	good := googleSettings(false)
	cases := []struct {
		name    string
		mod     func(*auth.Settings)
		wantErr []string
	}{
		{name: "google", mod: func(*auth.Settings) {}},
		{name: "google trusting Cloud Run IAM", mod: func(s *auth.Settings) { s.TrustCloudRunIAM = true }},
		{name: "google with Google's own issuer and keys spelled out", mod: func(s *auth.Settings) { s.Issuer, s.JWKSURL = auth.GoogleIssuer, auth.GoogleJWKSURL }},
		{name: "oidc", mod: func(s *auth.Settings) {
			s.Mode, s.Issuer, s.JWKSURL = auth.ModeOIDC, "http://127.0.0.1:8980", "http://127.0.0.1:8980/jwks"
		}},
		{name: "empty", mod: func(s *auth.Settings) { *s = auth.Settings{} }, wantErr: []string{"AUTH_MODE", "AUTH_AUDIENCE is required", "AUTH_ALLOWED_EMAILS is required"}},
		{name: "no allow-list", mod: func(s *auth.Settings) { s.AllowedEmails = nil }, wantErr: []string{"AUTH_ALLOWED_EMAILS is required"}},
		{name: "blank audience", mod: func(s *auth.Settings) { s.Audience = " " }, wantErr: []string{"AUTH_AUDIENCE is required"}},
		{name: "bad emails", mod: func(s *auth.Settings) { s.AllowedEmails = []string{"a", "@x", "a@", "a b@x", "a@b@c"} }, wantErr: []string{`"a" is not`, `"@x" is not`, `"a@" is not`, `"a b@x" is not`, `"a@b@c" is not`}},
		{name: "google with another issuer", mod: func(s *auth.Settings) { s.Issuer = "https://evil.test" }, wantErr: []string{"AUTH_ISSUER must be empty in google mode"}},
		{name: "google with other keys", mod: func(s *auth.Settings) { s.JWKSURL = "https://evil.test/jwks" }, wantErr: []string{"AUTH_JWKS_URL must be empty in google mode"}},
		{name: "oidc without issuer and keys", mod: func(s *auth.Settings) { s.Mode = auth.ModeOIDC }, wantErr: []string{"AUTH_ISSUER is required", "AUTH_JWKS_URL is required"}},
		{name: "oidc with a relative JWKS URL", mod: func(s *auth.Settings) { s.Mode, s.Issuer, s.JWKSURL = auth.ModeOIDC, "x", "/jwks" }, wantErr: []string{"absolute http(s) URL"}},
		{name: "oidc trusting Cloud Run IAM", mod: func(s *auth.Settings) {
			s.Mode, s.Issuer, s.JWKSURL, s.TrustCloudRunIAM = auth.ModeOIDC, "x", "http://x/jwks", true
		}, wantErr: []string{"AUTH_TRUST_CLOUD_RUN_IAM applies to google mode only"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := good
			s.AllowedEmails = append([]string(nil), good.AllowedEmails...)
			tc.mod(&s)
			err := s.Validate()
			_, newErr := auth.NewVerifier(t.Context(), s)
			if len(tc.wantErr) == 0 {
				if err != nil || newErr != nil {
					t.Fatalf("Validate = %v, NewVerifier error = %v", err, newErr)
				}
				return
			}
			if err == nil || newErr == nil {
				t.Fatalf("Validate = %v, NewVerifier error = %v; want errors", err, newErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestOIDCConfigTrustNeedsGoogle(t *testing.T) {
	t.Parallel()
	err := auth.OIDCConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://x/jwks", TrustCloudRunIAM: true}.Validate()
	if err == nil || !strings.Contains(err.Error(), "needs issuer "+auth.GoogleIssuer) {
		t.Errorf("Validate = %v, want the Google issuer demanded", err)
	}
}
