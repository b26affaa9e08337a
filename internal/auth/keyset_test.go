package auth

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

func TestNormaliseJWKS(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		doc      string
		wantOK   bool
		wantAlgs []string // of the keys go-jose reads from the result; nil: doc unchanged
	}{
		{name: "emulator's RSA256", doc: emulatorJWKS, wantOK: true, wantAlgs: []string{"RS256"}},
		{name: "standard RS256 unchanged", doc: strings.Replace(emulatorJWKS, "RSA256", "RS256", 1), wantOK: true},
		{name: "no alg unchanged", doc: strings.Replace(emulatorJWKS, `"alg":"RSA256",`, "", 1), wantOK: true},
		{name: "HS256 left alone (go-oidc skips it)", doc: strings.Replace(emulatorJWKS, "RSA256", "HS256", 1), wantOK: true},
		{name: "not JSON", doc: "<html>", wantOK: false},
		{name: "no keys", doc: `{"issuer":"x"}`, wantOK: false},
		{name: "alg not a string", doc: strings.Replace(emulatorJWKS, `"RSA256"`, `256`, 1), wantOK: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, ok := normaliseJWKS([]byte(tc.doc))
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if tc.wantAlgs == nil {
				if string(out) != tc.doc {
					t.Errorf("document changed:\n%s\nwant\n%s", out, tc.doc)
				}
				return
			}
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(out, &set); err != nil {
				t.Fatalf("normalised document does not parse: %v\n%s", err, out)
			}
			var algs []string
			for _, k := range set.Keys {
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

// countingTransport answers every request with body and counts them.
type countingTransport struct {
	calls atomic.Int64
	code  int
	body  string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return &http.Response{
		StatusCode: c.code, Header: http.Header{}, Request: r,
		Body: io.NopCloser(strings.NewReader(c.body)), ContentLength: int64(len(c.body)),
	}, nil
}

func TestJWKSTransport(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		clock = time.Unix(1_800_000_000, 0)
	)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	get := func(tb testing.TB, rt http.RoundTripper) (int, string, error) {
		tb.Helper()
		req := httptest.NewRequest(http.MethodGet, "https://keys.test/jwks", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			tb.Fatal(err)
		}
		if resp.ContentLength != int64(len(b)) {
			tb.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(b))
		}
		return resp.StatusCode, string(b), nil
	}

	t.Run("a good document is served again until the floor has passed", func(t *testing.T) {
		base := &countingTransport{code: 200, body: emulatorJWKS}
		rt := &jwksTransport{base: base, now: now}
		for range 5 {
			code, body, err := get(t, rt)
			if err != nil || code != 200 || !strings.Contains(body, `"RS256"`) || strings.Contains(body, "RSA256") {
				t.Fatalf("answer %d %q %v, want the normalised document", code, body, err)
			}
			advance(jwksMinRefresh / 10)
		}
		if n := base.calls.Load(); n != 1 {
			t.Errorf("%d fetches within the floor, want 1", n)
		}
		advance(jwksMinRefresh)
		if _, _, err := get(t, rt); err != nil {
			t.Fatal(err)
		}
		if n := base.calls.Load(); n != 2 {
			t.Errorf("%d fetches after the floor, want 2", n)
		}
	})
	t.Run("failures are not cached", func(t *testing.T) {
		base := &countingTransport{code: 500, body: "down"}
		rt := &jwksTransport{base: base, now: now}
		for range 3 {
			if code, _, err := get(t, rt); err != nil || code != 500 {
				t.Fatalf("answer %d %v, want the 500 passed on", code, err)
			}
		}
		base.code, base.body = 200, "not json"
		for range 2 {
			if code, body, err := get(t, rt); err != nil || code != 200 || body != "not json" {
				t.Fatalf("answer %d %q %v, want the document passed on", code, body, err)
			}
		}
		if n := base.calls.Load(); n != 5 {
			t.Errorf("%d fetches, want 5 (nothing good to serve again)", n)
		}
	})
	t.Run("an oversized document is refused", func(t *testing.T) {
		base := &countingTransport{code: 200, body: `{"keys":[` + strings.Repeat(" ", maxJWKSBytes) + `]}`}
		rt := &jwksTransport{base: base, now: now}
		if _, _, err := get(t, rt); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("error = %v, want the size refused", err)
		}
	})
}

// TestEmulatorJWKSLive reads the running Cloud Tasks emulator's key set
// through the transport and checks go-jose then sees an RS256 RSA key.
func TestEmulatorJWKSLive(t *testing.T) {
	t.Parallel()
	issuer := os.Getenv(testutil.CloudTasksOIDCIssuerEnv)
	if issuer == "" {
		testutil.Emulator(t, testutil.CloudTasksOIDCIssuerEnv)
	}
	resp, err := jwksClient(nil).Get(issuer + "/jwks")
	if err != nil {
		t.Fatalf("fetch the emulator's JWKS: %v", err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) == 0 {
		t.Fatal("no keys")
	}
	for _, k := range set.Keys {
		if k.Algorithm != "RS256" {
			t.Errorf("key %s alg %q, want RS256", k.KeyID, k.Algorithm)
		}
		if k.Key == nil || !k.IsPublic() {
			t.Errorf("key %s is not a public key", k.KeyID)
		}
	}
}

// FuzzNormaliseJWKS: any document comes back as it was or as a key set in
// which no key advertises RSA256 and every other member is kept; a second
// pass changes nothing.
func FuzzNormaliseJWKS(f *testing.F) {
	for _, seed := range []string{emulatorJWKS, `{"keys":[]}`, `{"keys":[{"alg":"RSA256"},{"alg":"RS256"}]}`, `{"keys":null}`, `[]`, `{`, `{"keys":[{"alg":"RSA256","alg":"x"}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, ok := normaliseJWKS(doc)
		if !ok {
			if !bytes.Equal(out, doc) {
				t.Fatalf("a document that is not a key set was changed")
			}
			return
		}
		again, ok2 := normaliseJWKS(out)
		if !ok2 || !bytes.Equal(again, out) {
			t.Fatalf("second pass changed %s into %s", out, again)
		}
		var set struct {
			Keys []map[string]json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(out, &set); err != nil {
			t.Fatalf("result is not a key set: %v", err)
		}
		var before struct {
			Keys []map[string]json.RawMessage `json:"keys"`
		}
		_ = json.Unmarshal(doc, &before)
		if len(before.Keys) != len(set.Keys) {
			t.Fatalf("%d keys became %d", len(before.Keys), len(set.Keys))
		}
		for i, k := range set.Keys {
			var alg string
			if json.Unmarshal(k["alg"], &alg) == nil && alg == "RSA256" {
				t.Fatalf("key %d still advertises RSA256", i)
			}
			if len(k) != len(before.Keys[i]) {
				t.Fatalf("key %d lost members", i)
			}
		}
	})
}
