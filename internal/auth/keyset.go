package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

const (
	// jwksMinRefresh is the shortest time between two fetches of a remote
	// key set. go-oidc fetches again for every token naming an unknown key
	// id; without a floor, a stream of forged tokens would turn into a
	// stream of requests to the issuer. Issuers publish a new key well
	// before signing with it, so the floor never delays a real rotation.
	jwksMinRefresh = 30 * time.Second
	// maxJWKSBytes bounds a key set document (Google's is about 2 KiB).
	maxJWKSBytes = 1 << 20
)

// jwksClient returns the HTTP client a remote key set fetches with: base (or
// a client with DefaultJWKSTimeout) with its transport wrapped by a
// jwksTransport. base is copied, not modified.
func jwksClient(base *http.Client) *http.Client {
	c := &http.Client{Timeout: DefaultJWKSTimeout}
	if base != nil {
		cp := *base
		c = &cp
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = &jwksTransport{base: rt, now: time.Now}
	return c
}

// jwksTransport sits under go-oidc's remote key set and adjusts what it
// reads:
//
//   - the document is at most maxJWKSBytes;
//   - a key advertising alg "RSA256" is rewritten to "RS256". The Cloud
//     Tasks emulator publishes its RSA key with that non-standard name, and
//     go-oidc ≥ 3.20 skips keys whose alg it does not know, so without this
//     no emulator token would verify. Nothing else about the key changes:
//     it is still an RSA key, and only RS256 signatures verify with it;
//   - a good document is served again, without a request, for
//     jwksMinRefresh after it was fetched.
type jwksTransport struct {
	base http.RoundTripper
	now  func() time.Time

	mu     sync.Mutex
	last   []byte // the last good document, normalised; nil before one
	lastAt time.Time
}

func (t *jwksTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	last, fresh := t.last, t.last != nil && t.now().Sub(t.lastAt) < jwksMinRefresh
	t.mu.Unlock()
	if fresh {
		return &http.Response{
			Status:        "200 OK",
			StatusCode:    http.StatusOK,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(last)),
			ContentLength: int64(len(last)),
			Request:       req,
		}, nil
	}

	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read key set: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	body, ok := normaliseJWKS(body)
	if ok {
		t.mu.Lock()
		t.last, t.lastAt = body, t.now()
		t.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// normaliseJWKS rewrites alg "RSA256" to "RS256" in every key of a JSON Web
// Key Set. ok is false when doc is not a key set; doc is then returned as is
// (go-oidc reports it).
func normaliseJWKS(doc []byte) (out []byte, ok bool) {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil || set.Keys == nil {
		return doc, false
	}
	changed := false
	for _, k := range set.Keys {
		var alg string
		if json.Unmarshal(k["alg"], &alg) == nil && alg == "RSA256" {
			k["alg"] = json.RawMessage(`"RS256"`)
			changed = true
		}
	}
	if !changed {
		return doc, true
	}
	b, err := json.Marshal(set)
	if err != nil {
		return doc, true
	}
	return b, true
}
