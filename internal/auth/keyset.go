package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	// jwksMinRefresh is the shortest time between two fetches of a remote
	// key set. A token naming a key id the last fetch did not have calls
	// for a new fetch; without a floor, a stream of forged tokens would turn
	// into a stream of requests to the issuer. Issuers publish a new key
	// well before signing with it, so the floor never delays a real
	// rotation.
	jwksMinRefresh = 30 * time.Second
	// maxJWKSBytes bounds a key set document (Google's is about 2 KiB).
	maxJWKSBytes = 1 << 20
)

// errNoKey: the signature is not one of the key set's.
var errNoKey = wrapInvalid("failed to verify signature: no key of the issuer's verifies it")

// keySet finds the key that signed a token.
type keySet interface {
	// verifyingKey returns the key that verifies jws's signature, or an
	// error wrapping ErrInvalidToken when none does, or ErrKeysUnavailable
	// when the keys could not be fetched.
	verifyingKey(ctx context.Context, jws *jose.JSONWebSignature) (crypto.PublicKey, error)
}

// staticKeys is a key set given in the configuration; every key is tried.
type staticKeys []crypto.PublicKey

func (s staticKeys) verifyingKey(_ context.Context, jws *jose.JSONWebSignature) (crypto.PublicKey, error) {
	for _, k := range s {
		if _, err := jws.Verify(k); err == nil {
			return k, nil
		}
	}
	return nil, errNoKey
}

// remoteKeys is an issuer's JSON Web Key Set, fetched from its URL and kept
// in memory. A token is checked against the keys of the last fetch with its
// kid (all of them when it has none); when none verifies it, the set is
// fetched again, unless the last fetch is less than jwksMinRefresh old.
// Concurrent callers share one fetch. A failed fetch keeps the keys of the
// last good one and is not remembered: the next token tries again.
type remoteKeys struct {
	url    string
	client *http.Client
	ctx    context.Context // the fetches' values; never cancelled
	now    func() time.Time

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	fetchedAt time.Time // of keys; zero before the first good fetch
	fetching  *keyFetch // the fetch under way, if any
}

// keyFetch is one fetch of the key set; keys and err are set before done
// is closed.
type keyFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

func newRemoteKeys(ctx context.Context, url string, client *http.Client) *remoteKeys {
	return &remoteKeys{url: url, client: client, ctx: context.WithoutCancel(ctx), now: time.Now}
}

func (r *remoteKeys) verifyingKey(ctx context.Context, jws *jose.JSONWebSignature) (crypto.PublicKey, error) {
	kid := jws.Signatures[0].Header.KeyID
	r.mu.Lock()
	keys := r.keys
	fresh := !r.fetchedAt.IsZero() && r.now().Sub(r.fetchedAt) < jwksMinRefresh
	r.mu.Unlock()
	if k, ok := verifyingKey(keys, kid, jws); ok {
		return k, nil
	}
	if fresh {
		return nil, errNoKey
	}
	keys, err := r.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	if k, ok := verifyingKey(keys, kid, jws); ok {
		return k, nil
	}
	return nil, errNoKey
}

// verifyingKey returns the key of keys, with the id kid unless kid is
// empty, that verifies jws.
func verifyingKey(keys []jose.JSONWebKey, kid string, jws *jose.JSONWebSignature) (crypto.PublicKey, bool) {
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if _, err := jws.Verify(k.Key); err == nil {
			return k.Key, true
		}
	}
	return nil, false
}

// fetch returns the keys of a new fetch, joining the one under way if any.
// It stops waiting when ctx ends; the fetch goes on for the next caller.
func (r *remoteKeys) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	r.mu.Lock()
	f := r.fetching
	if f == nil {
		f = &keyFetch{done: make(chan struct{})}
		r.fetching = f
		go r.run(f)
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.keys, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *remoteKeys) run(f *keyFetch) {
	f.keys, f.err = r.get()
	r.mu.Lock()
	if f.err == nil {
		r.keys, r.fetchedAt = f.keys, r.now()
	}
	r.fetching = nil
	r.mu.Unlock()
	close(f.done)
}

// get requests the key set document and reads it.
func (r *remoteKeys) get() ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("get key set: %w", err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get key set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read key set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get key set: %s", resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// jwkAlgorithms are the algorithms a key may advertise and be read: those
// go-jose verifies. Keys advertising another (say ES256K) are skipped.
var jwkAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// parseJWKS reads a JSON Web Key Set. As RFC 7517 §5 asks, a key of a type
// go-jose does not support is skipped rather than failing the set, and so
// is a key advertising an algorithm not in jwkAlgorithms; any other bad key
// fails it. A key advertising alg "RSA256", the Cloud Tasks emulator's name
// for RS256, is read as RS256: it is still an RSA key, and only RS256 and
// ES256 tokens are accepted anyway. A document without "keys" is a set
// without keys.
func parseJWKS(doc []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for i, raw := range set.Keys {
		var meta struct {
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("key set: key %d: %w", i, err)
		}
		if meta.Alg == "RSA256" {
			meta.Alg = string(jose.RS256)
		}
		if meta.Alg != "" && !slices.Contains(jwkAlgorithms, jose.SignatureAlgorithm(meta.Alg)) {
			continue
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("key set: key %d: %w", i, err)
		}
		k.Algorithm = meta.Alg
		keys = append(keys, k)
	}
	return keys, nil
}
