package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/testutil"
)

// emulatorJWKS is the Cloud Tasks emulator's key set as it serves it
// (github.com/aertje/cloud-tasks-emulator oidc.go): a 2048-bit RSA key
// with the non-standard alg "RSA256".
const emulatorJWKS = `{"keys":[{"alg":"RSA256","e":"AQAB","kid":"cloudtasks-emulator-test","kty":"RSA",` +
	`"n":"vhHj4zZSEg7q1-BdSbzSivtmn4EWF_PZIF7gAH-4iqm7v22MN-2wvnmpNLQG_-LeJ5M39kDHWt2ei3HEsxPxbEeeHRzCm23AgXDGTkjuUUXi7GP1nQmWcZnyckD0jr8kZO789pauck61GvnQhtdl4mP3JCCXPI0dJvbkr76ni-hMnjpB7GyChEglIArshTNPwhHm-6M0c4R3uVvzQUpuE7CEcisNH1u8HM0aOnQKXYc42a3P4yllpD70jNt008StXyyIIwN4LFT9-5vM9FrBEpY4k9EAggU2R7FEodnky6e8grPV2b0z2eRLu4jgITPMzyyqYc6LccEPsn99XqkF1w",` +
	`"use":"sig"}]}`

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		doc      string
		wantAlgs []string // of the keys read, in order
		wantErr  bool
	}{
		{name: "emulator's RSA256 read as RS256", doc: emulatorJWKS, wantAlgs: []string{"RS256"}},
		{name: "standard RS256", doc: strings.Replace(emulatorJWKS, "RSA256", "RS256", 1), wantAlgs: []string{"RS256"}},
		{name: "no alg", doc: strings.Replace(emulatorJWKS, `"alg":"RSA256",`, "", 1), wantAlgs: []string{""}},
		{name: "HS256 skipped", doc: strings.Replace(emulatorJWKS, "RSA256", "HS256", 1), wantAlgs: []string{}},
		{name: "ES256K skipped", doc: strings.Replace(emulatorJWKS, "RSA256", "ES256K", 1), wantAlgs: []string{}},
		{
			name:     "unsupported key type skipped, the others kept",
			doc:      `{"keys":[{"kty":"OKP","crv":"X448","x":"AAAA"},` + strings.TrimPrefix(emulatorJWKS, `{"keys":[`),
			wantAlgs: []string{"RS256"},
		},
		{name: "no keys member: no keys", doc: `{"issuer":"x"}`, wantAlgs: []string{}},
		{name: "empty set", doc: `{"keys":[]}`, wantAlgs: []string{}},
		{name: "not JSON", doc: "<html>", wantErr: true},
		{name: "alg not a string", doc: strings.Replace(emulatorJWKS, `"RSA256"`, `256`, 1), wantErr: true},
		{name: "bad RSA modulus", doc: strings.Replace(emulatorJWKS, `"n":"vhHj`, `"n":"!!!`, 1), wantErr: true},
		{name: "no key type", doc: `{"keys":[{"alg":"RS256","e":"AQAB"}]}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keys, err := parseJWKS([]byte(tc.doc))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseJWKS error = %v, want an error: %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			algs := []string{}
			for _, k := range keys {
				algs = append(algs, k.Algorithm)
				if !k.Valid() || !k.IsPublic() {
					t.Errorf("key %s is not a valid public key", k.KeyID)
				}
			}
			if diff := cmp.Diff(tc.wantAlgs, algs); diff != "" {
				t.Errorf("algs (-want +got):\n%s", diff)
			}
		})
	}
}

// keyServer serves body with code and counts the requests; while hold is
// set, requests wait until it is closed.
type keyServer struct {
	*httptest.Server
	requests atomic.Int64

	mu   sync.Mutex
	code int
	body string
	hold chan struct{}
}

func newKeyServer(t *testing.T, code int, body string) *keyServer {
	t.Helper()
	s := &keyServer{code: code, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("key set requested with Cache-Control %q, want no-cache", r.Header.Get("Cache-Control"))
		}
		s.mu.Lock()
		code, body, hold := s.code, s.body, s.hold
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *keyServer) set(code int, body string) {
	s.mu.Lock()
	s.code, s.body = code, body
	s.mu.Unlock()
}

// signedBy returns a token signed by key with kid, parsed.
func signedBy(t *testing.T, key *ecdsa.PrivateKey, kid string) *jose.JSONWebSignature {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// jwksOf is the key set document of the public halves of keys, by kid.
func jwksOf(t *testing.T, keys map[string]*ecdsa.PrivateKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRemoteKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := newECKey(t), newECKey(t)
	// remote returns a key set on srv whose clock the test moves.
	remote := func(srv *keyServer) (*remoteKeys, func(time.Duration)) {
		var (
			mu    sync.Mutex
			clock = time.Unix(1_800_000_000, 0)
		)
		r := newRemoteKeys(t.Context(), srv.URL, srv.Client())
		r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
		return r, func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	}
	// verify runs verifyingKey and classifies its answer.
	verify := func(t *testing.T, r *remoteKeys, jws *jose.JSONWebSignature) string {
		t.Helper()
		_, err := r.verifyingKey(t.Context(), jws)
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, ErrKeysUnavailable) && !errors.Is(err, ErrInvalidToken):
			return "unavailable"
		case errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrKeysUnavailable):
			return "invalid"
		}
		t.Fatalf("verifyingKey error %v is neither invalid nor unavailable alone", err)
		return ""
	}

	t.Run("a good set is used until the floor has passed", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
		r, advance := remote(srv)
		for range 5 {
			if got := verify(t, r, signedBy(t, k1, "k1")); got != "ok" {
				t.Fatalf("token of a published key: %s, want ok", got)
			}
			advance(jwksMinRefresh / 10)
		}
		// A key the issuer publishes now is not seen within the floor.
		srv.set(http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2}))
		if got := verify(t, r, signedBy(t, k2, "k2")); got != "invalid" {
			t.Errorf("token of an unknown kid within the floor: %s, want invalid", got)
		}
		if got := verify(t, r, signedBy(t, k2, "k1")); got != "invalid" {
			t.Errorf("token of another key under a known kid within the floor: %s, want invalid", got)
		}
		if n := srv.requests.Load(); n != 1 {
			t.Errorf("%d fetches within the floor, want 1", n)
		}
		advance(jwksMinRefresh)
		if got := verify(t, r, signedBy(t, k2, "k2")); got != "ok" {
			t.Errorf("token of a new key after the floor: %s, want ok", got)
		}
		if got := verify(t, r, signedBy(t, k2, "")); got != "ok" {
			t.Errorf("token without kid: %s, want ok (every key tried)", got)
		}
		if n := srv.requests.Load(); n != 2 {
			t.Errorf("%d fetches after the floor, want 2", n)
		}
	})

	t.Run("failures are unavailable and not remembered", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusInternalServerError, "down")
		r, _ := remote(srv)
		for range 3 {
			if got := verify(t, r, signedBy(t, k1, "k1")); got != "unavailable" {
				t.Fatalf("with the key set answering 500: %s, want unavailable", got)
			}
		}
		srv.set(http.StatusOK, "not json")
		if got := verify(t, r, signedBy(t, k1, "k1")); got != "unavailable" {
			t.Errorf("with a key set that is not JSON: %s, want unavailable", got)
		}
		srv.set(http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
		if got := verify(t, r, signedBy(t, k1, "k1")); got != "ok" {
			t.Errorf("once the key set is back: %s, want ok", got)
		}
		if n := srv.requests.Load(); n != 5 {
			t.Errorf("%d fetches, want 5 (one per call until one succeeded)", n)
		}
	})

	t.Run("a failure keeps the keys of the last good fetch", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
		r, advance := remote(srv)
		if got := verify(t, r, signedBy(t, k1, "k1")); got != "ok" {
			t.Fatalf("first token: %s, want ok", got)
		}
		advance(jwksMinRefresh)
		srv.set(http.StatusServiceUnavailable, "")
		if got := verify(t, r, signedBy(t, k2, "k2")); got != "unavailable" {
			t.Errorf("unknown kid with the key set down: %s, want unavailable", got)
		}
		if got := verify(t, r, signedBy(t, k1, "k1")); got != "ok" {
			t.Errorf("known key with the key set down: %s, want ok", got)
		}
	})

	t.Run("an oversized set is refused", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusOK, `{"keys":[`+strings.Repeat(" ", maxJWKSBytes)+`]}`)
		r, _ := remote(srv)
		_, err := r.verifyingKey(t.Context(), signedBy(t, k1, "k1"))
		if !errors.Is(err, ErrKeysUnavailable) || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("error = %v, want keys unavailable, the size refused", err)
		}
	})

	t.Run("concurrent callers share one fetch", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
		hold := make(chan struct{})
		srv.mu.Lock()
		srv.hold = hold
		srv.mu.Unlock()
		r, _ := remote(srv)
		const callers = 8
		var wg sync.WaitGroup
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { _, errs[i] = r.verifyingKey(t.Context(), signedBy(t, k1, "k1")) })
		}
		testutil.WaitFor(t, 10*time.Second, "the fetch to start", func() bool { return srv.requests.Load() == 1 })
		close(hold)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
		}
		if n := srv.requests.Load(); n != 1 {
			t.Errorf("%d fetches for %d concurrent callers, want 1", n, callers)
		}
	})

	t.Run("a caller whose context ends stops waiting", func(t *testing.T) {
		t.Parallel()
		srv := newKeyServer(t, http.StatusOK, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
		hold := make(chan struct{})
		srv.mu.Lock()
		srv.hold = hold
		srv.mu.Unlock()
		t.Cleanup(func() { close(hold) })
		r, _ := remote(srv)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := r.verifyingKey(ctx, signedBy(t, k1, "k1"))
		if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want keys unavailable, the context cancelled", err)
		}
	})
}

// TestEmulatorJWKSLive reads the running Cloud Tasks emulator's key set
// and checks it yields an RS256 RSA public key.
func TestEmulatorJWKSLive(t *testing.T) {
	t.Parallel()
	issuer := os.Getenv(testutil.CloudTasksOIDCIssuerEnv)
	if issuer == "" {
		testutil.Emulator(t, testutil.CloudTasksOIDCIssuerEnv)
	}
	keys, err := newRemoteKeys(t.Context(), issuer+"/jwks", &http.Client{Timeout: DefaultJWKSTimeout}).fetch(t.Context())
	if err != nil {
		t.Fatalf("fetch the emulator's JWKS: %v", err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys")
	}
	for _, k := range keys {
		if k.Algorithm != "RS256" {
			t.Errorf("key %s alg %q, want RS256", k.KeyID, k.Algorithm)
		}
		if k.Key == nil || !k.IsPublic() {
			t.Errorf("key %s is not a public key", k.KeyID)
		}
	}
}

// FuzzParseJWKS: any document yields an error or keys that each hold a key
// and advertise no algorithm or one go-jose verifies (never RSA256), at
// most one per key in the document.
func FuzzParseJWKS(f *testing.F) {
	for _, seed := range []string{emulatorJWKS, `{"keys":[]}`, `{"keys":[{"alg":"RSA256"},{"alg":"RS256"}]}`, `{"keys":null}`, `[]`, `{`, `{"keys":[{"alg":"RSA256","alg":"x"}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := parseJWKS(doc)
		if err != nil {
			return
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatalf("read a key set json cannot read: %v", err)
		}
		if len(keys) > len(set.Keys) {
			t.Fatalf("%d keys read from %d", len(keys), len(set.Keys))
		}
		for i, k := range keys {
			if k.Key == nil {
				t.Fatalf("key %d holds no key", i)
			}
			if k.Algorithm != "" && !slices.Contains(jwkAlgorithms, jose.SignatureAlgorithm(k.Algorithm)) {
				t.Fatalf("key %d advertises %q", i, k.Algorithm)
			}
		}
	})
}
