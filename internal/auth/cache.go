package auth

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by their SHA-256 (the raw token is
// not kept) until they expire. When full it drops every entry: simple,
// bounded, and rare, as callers hold few tokens at a time.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]*Claims
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]*Claims)}
}

// get returns a copy of the claims of a token verified before, if it has
// not expired at now (go-oidc's rule: expired once exp is before now).
func (c *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	key := sha256.Sum256([]byte(raw))
	c.mu.RLock()
	claims, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if claims.Expiry.Before(now) {
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
		return nil, false
	}
	return claims.clone(), true
}

func (c *tokenCache) put(raw string, claims *Claims) {
	key := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[key] = claims.clone()
}

// clone copies c so that no caller can change what the cache holds.
func (c *Claims) clone() *Claims {
	cp := *c
	cp.Audience = slices.Clone(c.Audience)
	return &cp
}
