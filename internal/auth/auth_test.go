package auth_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/logging"
)

const (
	testIssuer   = "https://issuer.test.invalid"
	testAudience = "https://ingest.test.invalid"
)

// testKey signs tokens the way a real issuer would, with any claims.
type testKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

var (
	ecKey = sync.OnceValue(func() testKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return testKey{priv: k, alg: jose.ES256, kid: "ec-1"}
	})
	rsaKey = sync.OnceValue(func() testKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return testKey{priv: k, alg: jose.RS256, kid: "rsa-1"}
	})
	otherKey = sync.OnceValue(func() testKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return testKey{priv: k, alg: jose.ES256, kid: "ec-1"} // same kid, other key
	})
)

func sign(tb testing.TB, k testKey, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatalf("marshal claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatalf("CompactSerialize: %v", err)
	}
	return tok
}

// rawToken assembles a compact JWS by hand, for algorithms go-jose will not
// produce ("none") or that must be refused (HMAC).
func rawToken(tb testing.TB, header, claims map[string]any, sig func(signingInput string) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(sig(input))
}

func hs256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// baseClaims are valid claims for testIssuer/testAudience; with overrides
// applied (a nil value deletes the claim).
func baseClaims(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":            testIssuer,
		"aud":            testAudience,
		"sub":            "source-app",
		"email":          "source@example.test",
		"email_verified": true,
		"iat":            now.Unix(),
		"nbf":            now.Unix(),
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

func newStaticVerifier(tb testing.TB, check func(context.Context, *auth.Claims) error) *auth.OIDCVerifier {
	tb.Helper()
	v, err := auth.NewOIDCVerifier(context.Background(), auth.OIDCConfig{
		Issuer:   testIssuer,
		Audience: testAudience,
		Keys:     []crypto.PublicKey{ecKey().priv.Public(), rsaKey().priv.Public()},
		Check:    check,
	})
	if err != nil {
		tb.Fatalf("NewOIDCVerifier: %v", err)
	}
	return v
}

func publicPEM(tb testing.TB, k crypto.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v := newStaticVerifier(t, nil)

	cases := []struct {
		name   string
		key    testKey
		claims map[string]any
		want   *auth.Claims
	}{
		{
			name:   "ES256",
			key:    ecKey(),
			claims: baseClaims(now, nil),
			want: &auth.Claims{
				Issuer: testIssuer, Subject: "source-app", Audience: []string{testAudience},
				Email: "source@example.test", EmailVerified: true,
				Expiry: time.Unix(now.Add(time.Hour).Unix(), 0), IssuedAt: time.Unix(now.Unix(), 0),
			},
		},
		{
			name:   "RS256",
			key:    rsaKey(),
			claims: baseClaims(now, nil),
			want: &auth.Claims{
				Issuer: testIssuer, Subject: "source-app", Audience: []string{testAudience},
				Email: "source@example.test", EmailVerified: true,
				Expiry: time.Unix(now.Add(time.Hour).Unix(), 0), IssuedAt: time.Unix(now.Unix(), 0),
			},
		},
		{
			name:   "audience among several, email_verified as a string, no email",
			key:    ecKey(),
			claims: baseClaims(now, map[string]any{"aud": []string{"other", testAudience}, "email_verified": "true", "email": nil, "iat": nil}),
			want: &auth.Claims{
				Issuer: testIssuer, Subject: "source-app", Audience: []string{"other", testAudience},
				EmailVerified: true, Expiry: time.Unix(now.Add(time.Hour).Unix(), 0),
			},
		},
		{
			name:   "nbf within go-oidc's clock-skew leeway",
			key:    ecKey(),
			claims: baseClaims(now, map[string]any{"nbf": now.Add(time.Minute).Unix(), "email_verified": false}),
			want: &auth.Claims{
				Issuer: testIssuer, Subject: "source-app", Audience: []string{testAudience},
				Email: "source@example.test", Expiry: time.Unix(now.Add(time.Hour).Unix(), 0),
				IssuedAt: time.Unix(now.Unix(), 0),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Verify(t.Context(), sign(t, tc.key, tc.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	now := time.Now()
	v := newStaticVerifier(t, nil)
	ecPub := ecKey().priv.Public()
	rsaPub := rsaKey().priv.Public()
	rsaDER, err := x509.MarshalPKIXPublicKey(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, ecKey(), baseClaims(now, nil))
	parts := strings.Split(valid, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString(mustJSON(t, baseClaims(now, map[string]any{"sub": "someone-else"})))

	cases := []struct {
		name    string
		token   string
		wantErr error
		reason  string // in the error, so each case fails for its own reason
	}{
		{name: "expired", token: sign(t, ecKey(), baseClaims(now, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix()})), wantErr: auth.ErrTokenExpired, reason: `expired at`},
		{name: "no exp", token: sign(t, ecKey(), baseClaims(now, map[string]any{"exp": nil})), wantErr: auth.ErrInvalidToken, reason: `expired at 0001`},
		{name: "not yet valid", token: sign(t, ecKey(), baseClaims(now, map[string]any{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), wantErr: auth.ErrInvalidToken, reason: `nbf`},
		{name: "wrong issuer", token: sign(t, ecKey(), baseClaims(now, map[string]any{"iss": "https://evil.test.invalid"})), wantErr: auth.ErrInvalidToken, reason: `different provider`},
		{name: "no issuer", token: sign(t, ecKey(), baseClaims(now, map[string]any{"iss": nil})), wantErr: auth.ErrInvalidToken, reason: `different provider`},
		{name: "wrong audience", token: sign(t, ecKey(), baseClaims(now, map[string]any{"aud": "https://other.test.invalid"})), wantErr: auth.ErrInvalidToken, reason: `expected audience`},
		{name: "no audience", token: sign(t, ecKey(), baseClaims(now, map[string]any{"aud": nil})), wantErr: auth.ErrInvalidToken, reason: `expected audience`},
		{name: "no subject", token: sign(t, ecKey(), baseClaims(now, map[string]any{"sub": nil})), wantErr: auth.ErrInvalidToken, reason: `"sub"`},
		{name: "unknown key", token: sign(t, otherKey(), baseClaims(now, nil)), wantErr: auth.ErrInvalidToken, reason: `verify signature`},
		{name: "dev issuer key not configured", token: mintDev(t), wantErr: auth.ErrInvalidToken, reason: `verify signature`},
		{name: "PS256 is not an accepted algorithm", token: sign(t, testKey{priv: rsaKey().priv, alg: jose.PS256, kid: "rsa-1"}, baseClaims(now, nil)), wantErr: auth.ErrInvalidToken, reason: `"PS256"`},
		{
			name:    "alg none",
			token:   rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, baseClaims(now, nil), func(string) []byte { return nil }),
			wantErr: auth.ErrInvalidToken,
			reason:  `"none"`,
		},
		{
			name:    "HS256 keyed with the RSA public key PEM",
			token:   rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, baseClaims(now, nil), hs256(publicPEM(t, rsaPub))),
			wantErr: auth.ErrInvalidToken,
			reason:  `"HS256"`,
		},
		{
			name:    "HS256 keyed with the EC public key PEM",
			token:   rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "ec-1"}, baseClaims(now, nil), hs256(publicPEM(t, ecPub))),
			wantErr: auth.ErrInvalidToken,
			reason:  `"HS256"`,
		},
		{
			name:    "HS256 keyed with the RSA public key DER",
			token:   rawToken(t, map[string]any{"alg": "HS256", "typ": "JWT"}, baseClaims(now, nil), hs256(rsaDER)),
			wantErr: auth.ErrInvalidToken,
			reason:  `"HS256"`,
		},
		{name: "payload swapped under a valid signature", token: parts[0] + "." + tamperedPayload + "." + parts[2], wantErr: auth.ErrInvalidToken, reason: `verify signature`},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + ".", wantErr: auth.ErrInvalidToken, reason: `verify signature`},
		{name: "SIGNATURE_REMOVED_BY_GOOGLE without trusting Cloud Run IAM", token: parts[0] + "." + parts[1] + ".SIGNATURE_REMOVED_BY_GOOGLE", wantErr: auth.ErrInvalidToken, reason: `does not trust Cloud Run`},
		{name: "garbage", token: "not-a-jwt", wantErr: auth.ErrInvalidToken, reason: `three parts`},
		{name: "three garbage parts", token: "a.b.c", wantErr: auth.ErrInvalidToken, reason: `malformed jwt`},
		{name: "empty", token: "", wantErr: auth.ErrInvalidToken, reason: `empty token`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Verify error %q does not say %q", err, tc.reason)
			}
			if got != nil {
				t.Errorf("Verify returned claims %+v with an error", got)
			}
			if errors.Is(err, auth.ErrKeysUnavailable) || errors.Is(err, auth.ErrForbidden) {
				t.Errorf("Verify error %v is not only invalid-token", err)
			}
		})
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mintDev mints a token from a fresh dev issuer for testIssuer's audience;
// its issuer and key are both unknown to the static verifier.
func mintDev(tb testing.TB) string {
	tb.Helper()
	iss, err := devissuer.LoadOrCreate(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := iss.Mint(testAudience, "s", "", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestVerifyCheck(t *testing.T) {
	t.Parallel()
	now := time.Now()
	token := sign(t, ecKey(), baseClaims(now, nil))
	errNotListed := errors.New("email not on the allow-list")

	cases := []struct {
		name    string
		check   func(context.Context, *auth.Claims) error
		wantErr error
	}{
		{name: "allowed", check: func(_ context.Context, c *auth.Claims) error {
			if c.Email != "source@example.test" {
				return errNotListed
			}
			return nil
		}},
		{name: "forbidden", check: func(context.Context, *auth.Claims) error {
			return errors.Join(auth.ErrForbidden, errNotListed)
		}, wantErr: auth.ErrForbidden},
		{name: "other error refuses the token", check: func(context.Context, *auth.Claims) error {
			return errNotListed
		}, wantErr: auth.ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newStaticVerifier(t, tc.check)
			got, err := v.Verify(t.Context(), token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			if (got != nil) != (tc.wantErr == nil) {
				t.Errorf("Verify claims = %+v, want claims only on success", got)
			}
		})
	}

	t.Run("check does not run for an invalid token", func(t *testing.T) {
		t.Parallel()
		called := false
		v := newStaticVerifier(t, func(context.Context, *auth.Claims) error { called = true; return nil })
		if _, err := v.Verify(t.Context(), "garbage"); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
		}
		if called {
			t.Error("Check ran for a token that failed the standard checks")
		}
	})
}

func TestOIDCConfigValidate(t *testing.T) {
	t.Parallel()
	ed, _, err := ed25519Key()
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := auth.OIDCConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://keys.test.invalid/jwks"}

	cases := []struct {
		name    string
		mod     func(*auth.OIDCConfig)
		wantErr []string
	}{
		{name: "remote keys", mod: func(*auth.OIDCConfig) {}},
		{name: "static keys", mod: func(c *auth.OIDCConfig) { c.JWKSURL = ""; c.Keys = []crypto.PublicKey{ecKey().priv.Public()} }},
		{name: "empty", mod: func(c *auth.OIDCConfig) { *c = auth.OIDCConfig{} }, wantErr: []string{"issuer is required", "audience is required", "JWKS URL or static keys are required"}},
		{name: "both key sources", mod: func(c *auth.OIDCConfig) { c.Keys = []crypto.PublicKey{ecKey().priv.Public()} }, wantErr: []string{"not both"}},
		{name: "relative JWKS URL", mod: func(c *auth.OIDCConfig) { c.JWKSURL = "/jwks" }, wantErr: []string{"absolute http(s) URL"}},
		{name: "bad key types", mod: func(c *auth.OIDCConfig) {
			c.JWKSURL = ""
			c.Keys = []crypto.PublicKey{ed, small.Public(), p384.Public(), "secret"}
		}, wantErr: []string{"key 0: unsupported key type", "key 1: RSA keys must be at least 2048 bits", "key 2: ECDSA keys must be on P-256", "key 3: unsupported key type string"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tc.mod(&cfg)
			err := cfg.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := auth.NewOIDCVerifier(t.Context(), cfg); err != nil {
					t.Fatalf("NewOIDCVerifier: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate error %q does not mention %q", err, want)
				}
			}
			if _, err := auth.NewOIDCVerifier(t.Context(), cfg); err == nil {
				t.Error("NewOIDCVerifier accepted an invalid config")
			}
		})
	}
}

// TestVerifyRemoteKeySet runs a verifier in "another process" against the
// dev issuer's JWKS served over HTTP.
func TestVerifyRemoteKeySet(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var fetches sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := fetches.LoadOrStore(r.URL.Path, new(int))
		*n.(*int)++
		iss.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// What the discovery document says is what a verifier is configured with.
	resp, err := srv.Client().Get(srv.URL + devissuer.DiscoveryPath)
	if err != nil {
		t.Fatal(err)
	}
	var disco struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disco)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(devissuer.IssuerID, disco.Issuer); diff != "" {
		t.Errorf("discovery issuer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(srv.URL+devissuer.JWKSPath, disco.JWKSURI); diff != "" {
		t.Errorf("discovery jwks_uri (-want +got):\n%s", diff)
	}

	v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
		Issuer:   devissuer.IssuerID,
		Audience: devissuer.DefaultAudience,
		JWKSURL:  disco.JWKSURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := v.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if c.Subject != devissuer.DefaultSubject || c.Email != devissuer.DefaultSourceEmail || !c.EmailVerified {
			t.Errorf("claims = %+v", c)
		}
	}
	n, _ := fetches.Load(devissuer.JWKSPath)
	if n == nil || *n.(*int) != 1 {
		t.Errorf("JWKS fetched %v times for three verifications of one key, want 1 (cached)", n)
	}

	// A token from another dev issuer (same iss, unknown key) is refused.
	if _, err := v.Verify(t.Context(), mintDevFor(t, devissuer.DefaultAudience)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Verify(token from another key) error = %v, want ErrInvalidToken", err)
	}
	// And a wrong audience still is, with remote keys too.
	other, err := iss.Mint("someone-else", devissuer.DefaultSubject, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), other); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Verify(wrong audience) error = %v, want ErrInvalidToken", err)
	}
}

func mintDevFor(tb testing.TB, audience string) string {
	tb.Helper()
	iss, err := devissuer.LoadOrCreate(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := iss.Mint(audience, devissuer.DefaultSubject, "", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// TestVerifyKeysUnavailable: a verifier must not call a token invalid when
// it could not check it; the middleware answers 503, not 401.
func TestVerifyKeysUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cases := []struct {
		name string
		url  string
	}{
		{name: "JWKS answers 500", url: srv.URL + devissuer.JWKSPath},
		{name: "JWKS unreachable", url: closedURL + devissuer.JWKSPath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
				Issuer: devissuer.IssuerID, Audience: devissuer.DefaultAudience, JWKSURL: tc.url,
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(t.Context(), mintDevFor(t, devissuer.DefaultAudience))
			if !errors.Is(err, auth.ErrKeysUnavailable) {
				t.Fatalf("Verify error = %v, want ErrKeysUnavailable", err)
			}
			if errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Verify error %v also claims the token is invalid", err)
			}

			rec := httptest.NewRecorder()
			var logs bytes.Buffer
			ctx := logging.WithLogger(t.Context(), logging.New(&logs, logging.Options{}))
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/events", nil)
			req.Header.Set("Authorization", "Bearer "+mintDevFor(t, devissuer.DefaultAudience))
			auth.RequireBearer(v, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("next handler called without verified claims")
			})).ServeHTTP(rec, req)
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Errorf("middleware answered %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
			}
			if got := problemType(t, rec); got != "auth-unavailable" {
				t.Errorf("problem type = %q, want auth-unavailable", got)
			}
			if !strings.Contains(logs.String(), `"severity":"ERROR"`) {
				t.Errorf("unavailable keys not logged at ERROR; logs: %s", logs.String())
			}
		})
	}
}

func TestVerifyCache(t *testing.T) {
	t.Parallel()
	start := time.Now()
	var (
		mu    sync.Mutex
		clock = start
	)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	setClock := func(t time.Time) { mu.Lock(); clock = t; mu.Unlock() }

	for _, size := range []int{0, 2, -1} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
				Issuer: testIssuer, Audience: testAudience, Keys: []crypto.PublicKey{ecKey().priv.Public()},
				Now: now, CacheSize: size,
			})
			if err != nil {
				t.Fatal(err)
			}
			setClock(start)
			tokens := make([]string, 3)
			for i := range tokens {
				tokens[i] = sign(t, ecKey(), baseClaims(start, map[string]any{"sub": fmt.Sprintf("caller-%d", i), "exp": start.Add(time.Minute).Unix()}))
			}
			for round := range 2 { // the second round may come from the cache
				for i, tok := range tokens {
					c, err := v.Verify(t.Context(), tok)
					if err != nil {
						t.Fatalf("round %d token %d: %v", round, i, err)
					}
					if want := fmt.Sprintf("caller-%d", i); c.Subject != want {
						t.Errorf("round %d: subject %q, want %q", round, c.Subject, want)
					}
					// A caller scribbling on its claims changes nothing for the next.
					c.Subject, c.Audience[0] = "changed", "changed"
				}
			}
			// Once expired, a token is refused, cached or not.
			setClock(start.Add(2 * time.Minute))
			for i, tok := range tokens {
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrTokenExpired) {
					t.Errorf("token %d after expiry: error %v, want ErrTokenExpired", i, err)
				}
			}
		})
	}
}
