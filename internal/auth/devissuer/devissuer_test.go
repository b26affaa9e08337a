package devissuer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/auth"
	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/logging"
	"eventrelay/internal/testutil"
)

func load(tb testing.TB, dir string) *devissuer.Issuer {
	tb.Helper()
	a, err := devissuer.LoadOrCreate(dir)
	if err != nil {
		tb.Fatalf("LoadOrCreate(%s): %v", dir, err)
	}
	return a
}

func staticVerifier(tb testing.TB, a *devissuer.Issuer) auth.Verifier {
	tb.Helper()
	v, err := auth.NewOIDCVerifier(context.Background(), auth.OIDCConfig{
		Issuer: devissuer.IssuerID, Audience: devissuer.DefaultAudience, Keys: a.PublicKeys(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// decodePart decodes one base64url part of a compact JWS into a map.
func decodePart(tb testing.TB, tok string, i int) map[string]any {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("token has %d parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestMint(t *testing.T) {
	t.Parallel()
	a := load(t, t.TempDir())
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	tok, err := a.MintAt(now, devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	header := decodePart(t, tok, 0)
	if diff := cmp.Diff(map[string]any{"alg": "ES256", "kid": a.KeyID(), "typ": "JWT"}, header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	claims := decodePart(t, tok, 1)
	if jti, _ := claims["jti"].(string); jti == "" {
		t.Error("no jti")
	}
	delete(claims, "jti")
	want := map[string]any{
		"iss":            devissuer.IssuerID,
		"aud":            devissuer.DefaultAudience,
		"sub":            devissuer.DefaultSubject,
		"email":          devissuer.DefaultSourceEmail,
		"email_verified": true,
		"iat":            float64(now.Unix()),
		"nbf":            float64(now.Unix()),
		"exp":            float64(now.Add(time.Hour).Unix()),
	}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	// A token minted now verifies; two minted in the same second differ.
	tok1, err := a.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, devissuer.DefaultTTL)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := a.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, devissuer.DefaultTTL)
	if err != nil {
		t.Fatal(err)
	}
	if tok1 == tok2 {
		t.Error("two minted tokens are identical")
	}
	c, err := staticVerifier(t, a).Verify(t.Context(), tok1)
	if err != nil {
		t.Fatalf("Verify(minted token): %v", err)
	}
	if c.Issuer != devissuer.IssuerID || c.Email != devissuer.DefaultSourceEmail || !c.EmailVerified {
		t.Errorf("claims = %+v", c)
	}
}

func TestMintRefusesBadArguments(t *testing.T) {
	t.Parallel()
	a := load(t, t.TempDir())
	cases := []struct {
		name              string
		audience, subject string
		ttl               time.Duration
	}{
		{name: "no audience", subject: "s", ttl: time.Hour},
		{name: "no subject", audience: "a", ttl: time.Hour},
		{name: "zero ttl", audience: "a", subject: "s"},
		{name: "negative ttl", audience: "a", subject: "s", ttl: -time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tok, err := a.Mint(tc.audience, tc.subject, "", tc.ttl); err == nil {
				t.Errorf("Mint = %q, nil; want an error", tok)
			}
		})
	}
}

func TestLoadOrCreatePersists(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "nested")
	first := load(t, dir)

	fi, err := os.Stat(filepath.Join(dir, devissuer.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	tok, err := first.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// A restart (a new LoadOrCreate) keeps the key: old tokens still verify.
	second := load(t, dir)
	if first.KeyID() != second.KeyID() {
		t.Errorf("key id changed across loads: %s then %s", first.KeyID(), second.KeyID())
	}
	if _, err := staticVerifier(t, second).Verify(t.Context(), tok); err != nil {
		t.Errorf("token minted before the restart refused after it: %v", err)
	}
	// Another directory is another key.
	if other := load(t, t.TempDir()); other.KeyID() == first.KeyID() {
		t.Error("two data directories share a key")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file (no temporary files left)", len(entries))
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := devissuer.LoadOrCreate(dir)
			if err != nil {
				t.Errorf("LoadOrCreate: %v", err)
				return
			}
			ids[i] = a.KeyID()
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("loader %d got key %q, loader 0 got %q", i, id, ids[0])
		}
	}
	if final := load(t, dir); final.KeyID() != ids[0] {
		t.Errorf("key on disk %q is not the one the loaders use %q", final.KeyID(), ids[0])
	}
}

func TestLoadOrCreateRefusesBadKeyFiles(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, err := x509.MarshalPKCS8PrivateKey(small)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{name: "not PEM", data: []byte("hello")},
		{name: "wrong PEM type", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}})},
		{name: "corrupt DER", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})},
		{name: "RSA too small", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: smallDER})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, devissuer.KeyFile)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := devissuer.LoadOrCreate(dir); err == nil {
				t.Fatal("LoadOrCreate accepted a bad key file")
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Error("LoadOrCreate overwrote an existing key file")
			}
		})
	}
}

func TestLoadOrCreateRSAKey(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devissuer.KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	a := load(t, dir)
	tok, err := a.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if alg := decodePart(t, tok, 0)["alg"]; alg != "RS256" {
		t.Errorf("alg = %v, want RS256", alg)
	}
	if _, err := staticVerifier(t, a).Verify(t.Context(), tok); err != nil {
		t.Errorf("Verify(RS256 dev token): %v", err)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	a := load(t, t.TempDir())
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	get := func(t *testing.T, method, path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		return resp, buf.Bytes()
	}

	t.Run("discovery", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, http.MethodGet, devissuer.DiscoveryPath)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"issuer":                                devissuer.IssuerID,
			"jwks_uri":                              srv.URL + devissuer.JWKSPath,
			"id_token_signing_alg_values_supported": []any{"ES256"},
			"response_types_supported":              []any{"id_token"},
			"subject_types_supported":               []any{"public"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discovery (-want +got):\n%s", diff)
		}
	})
	t.Run("jwks", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, http.MethodGet, devissuer.JWKSPath)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status = %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 {
			t.Fatalf("JWKS has %d keys, want 1", len(set.Keys))
		}
		k := set.Keys[0]
		if k.KeyID != a.KeyID() || k.Algorithm != "ES256" || k.Use != "sig" || !k.IsPublic() {
			t.Errorf("JWK = kid %q alg %q use %q public %v", k.KeyID, k.Algorithm, k.Use, k.IsPublic())
		}
		if strings.Contains(string(body), `"d"`) {
			t.Error("JWKS leaks the private key")
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		t.Parallel()
		if resp, _ := get(t, http.MethodGet, "/token"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status = %d, want 404", resp.StatusCode)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		t.Parallel()
		if resp, _ := get(t, http.MethodPost, devissuer.JWKSPath); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status = %d, want 405", resp.StatusCode)
		}
	})
}

func TestLogNotForProduction(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	ctx := logging.WithLogger(t.Context(), logging.New(&logs, logging.Options{}))
	devissuer.LogNotForProduction(ctx)
	if !strings.Contains(logs.String(), `"severity":"WARNING"`) || !strings.Contains(logs.String(), "NOT FOR PRODUCTION") {
		t.Errorf("log = %s, want a WARNING saying NOT FOR PRODUCTION", logs.String())
	}
}

func TestTokenSource(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
		Issuer: devissuer.IssuerID, Audience: devissuer.DispatcherAudience, Keys: iss.PublicKeys(),
		AllowedEmails: []string{devissuer.InvokerEmail},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("reuses the token while it is fresh", func(t *testing.T) {
		t.Parallel()
		src := iss.TokenSource(devissuer.DispatcherAudience, devissuer.InvokerSubject, devissuer.InvokerEmail, time.Hour)
		var wg sync.WaitGroup
		toks := make([]string, 8)
		for i := range toks {
			wg.Go(func() {
				tok, err := src(t.Context())
				if err != nil {
					t.Error(err)
				}
				toks[i] = tok
			})
		}
		wg.Wait()
		for i, tok := range toks {
			if tok != toks[0] {
				t.Errorf("token %d differs from token 0: a fresh token was minted again", i)
			}
		}
		c, err := v.Verify(t.Context(), toks[0])
		if err != nil {
			t.Fatalf("the dispatcher's verifier refuses the queue's token: %v", err)
		}
		if c.Subject != devissuer.InvokerSubject || c.Email != devissuer.InvokerEmail {
			t.Errorf("claims = %+v", c)
		}
	})
	t.Run("mints again when little time is left", func(t *testing.T) {
		t.Parallel()
		// The source hands a token out again while more than a quarter of
		// its life is left, and mints a new one after that: with a 2 s
		// lifetime (exp in whole seconds), within 1.5 s.
		const ttl = 2 * time.Second
		src := iss.TokenSource(devissuer.DispatcherAudience, devissuer.InvokerSubject, devissuer.InvokerEmail, ttl)
		first, err := src(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(t.Context(), first)
		if err != nil {
			t.Fatalf("first token refused: %v", err)
		}
		exp := c.Expiry
		var second string
		testutil.WaitFor(t, 10*time.Second, "a new token", func() bool {
			asked := time.Now()
			tok, err := src(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tok != first {
				second = tok
				return true
			}
			// The source decided after asked: it saw at most this much left.
			if left := exp.Sub(asked); left <= ttl/4 {
				t.Fatalf("the token was handed out again with %v of its %v left, want a new one from %v left", left, ttl, ttl/4)
			}
			return false
		})
		// The source decided before now: it saw at least this much left.
		if left := exp.Sub(time.Now()); left > ttl/4 {
			t.Errorf("a new token was minted with %v of the last one's %v left, want the last one handed out until %v left", left, ttl, ttl/4)
		}
		if _, err := v.Verify(t.Context(), second); err != nil {
			t.Errorf("new token refused: %v", err)
		}
	})
	t.Run("a token for ingest does not pass the dispatcher", func(t *testing.T) {
		t.Parallel()
		tok, err := iss.Mint(devissuer.DefaultAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("ingest token at the dispatcher: %v, want ErrInvalidToken", err)
		}
		tok, err = iss.Mint(devissuer.DispatcherAudience, devissuer.DefaultSubject, devissuer.DefaultSourceEmail, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrForbidden) {
			t.Errorf("source's email at the dispatcher: %v, want ErrForbidden", err)
		}
	})
}
