package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// SigningAlgorithms are the only signature algorithms a token may use. "none"
// and the HMAC family are never accepted: an HMAC "signed" with a public key
// would otherwise verify.
var SigningAlgorithms = []string{oidc.RS256, oidc.ES256}

// DefaultJWKSTimeout bounds one fetch of a remote key set.
const DefaultJWKSTimeout = 10 * time.Second

// OIDCConfig configures NewOIDCVerifier. Exactly one of JWKSURL and Keys is
// set.
type OIDCConfig struct {
	// Issuer is the exact "iss" a token must carry.
	Issuer string
	// Audience must be one of the token's "aud" values.
	Audience string
	// JWKSURL is a remote JSON Web Key Set, fetched on first use and again
	// whenever a token names a key id not seen before. Discovery is not used,
	// so the issuer string need not be the URL the keys are served from.
	JWKSURL string
	// Keys is a static key set (*rsa.PublicKey or P-256 *ecdsa.PublicKey),
	// for the dev issuer running in the same process.
	Keys []crypto.PublicKey
	// Check, when set, runs after every standard check has passed. An error
	// wrapping ErrForbidden refuses the caller as not allowed (403); any other
	// error refuses the token as invalid (401). It is the seam for caller
	// rules such as an email allow-list.
	Check func(ctx context.Context, c *Claims) error
	// HTTPClient fetches the remote key set; nil uses a client with
	// DefaultJWKSTimeout.
	HTTPClient *http.Client
	// Now is the clock for the expiry checks; nil is time.Now.
	Now func() time.Time
	// CacheSize bounds how many verified tokens are remembered until they
	// expire, so that a caller reusing one token (as the source does) costs
	// one signature check, not one per request. Zero means
	// DefaultCacheSize; negative disables the cache.
	CacheSize int
}

// DefaultCacheSize is OIDCConfig.CacheSize's default.
const DefaultCacheSize = 1024

// Validate reports every problem in c.
func (c OIDCConfig) Validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	switch {
	case c.JWKSURL == "" && len(c.Keys) == 0:
		errs = append(errs, errors.New("a JWKS URL or static keys are required"))
	case c.JWKSURL != "" && len(c.Keys) > 0:
		errs = append(errs, errors.New("set a JWKS URL or static keys, not both"))
	case c.JWKSURL != "":
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("JWKS URL %q must be an absolute http(s) URL", c.JWKSURL))
		}
	}
	for i, k := range c.Keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			if k == nil || k.N.BitLen() < 2048 {
				errs = append(errs, fmt.Errorf("key %d: RSA keys must be at least 2048 bits", i))
			}
		case *ecdsa.PublicKey:
			if k == nil || k.Curve != elliptic.P256() {
				errs = append(errs, fmt.Errorf("key %d: ECDSA keys must be on P-256", i))
			}
		default:
			errs = append(errs, fmt.Errorf("key %d: unsupported key type %T", i, k))
		}
	}
	return errors.Join(errs...)
}

// OIDCVerifier verifies OIDC ID tokens with go-oidc.
type OIDCVerifier struct {
	verifier *oidc.IDTokenVerifier
	check    func(ctx context.Context, c *Claims) error
	now      func() time.Time
	cache    *tokenCache // nil when disabled
}

var _ Verifier = (*OIDCVerifier)(nil)

// NewOIDCVerifier builds a verifier. ctx carries configuration only (go-oidc
// uses it for the key set's HTTP client); cancelling it does not stop the
// verifier.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("oidc verifier config: %w", err)
	}
	var keys oidc.KeySet
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: DefaultJWKSTimeout}
		}
		keys = oidc.NewRemoteKeySet(oidc.ClientContext(ctx, client), cfg.JWKSURL)
	} else {
		keys = &oidc.StaticKeySet{PublicKeys: cfg.Keys}
	}
	v := oidc.NewVerifier(cfg.Issuer, probingKeySet{inner: keys}, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: SigningAlgorithms,
		Now:                  cfg.Now,
	})
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ov := &OIDCVerifier{verifier: v, check: cfg.Check, now: now}
	switch {
	case cfg.CacheSize == 0:
		ov.cache = newTokenCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		ov.cache = newTokenCache(cfg.CacheSize)
	}
	return ov, nil
}

// Verify checks rawToken's signature, issuer, audience, expiry and
// not-before time (go-oidc allows five minutes of clock skew on the latter),
// then the configured Check. A token that passed before is answered from the
// cache until its expiry.
func (v *OIDCVerifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" {
		return nil, wrapInvalid("empty token")
	}
	if v.cache != nil {
		if c, ok := v.cache.get(rawToken, v.now()); ok {
			return c, nil
		}
	}
	c, err := v.verify(ctx, rawToken)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(rawToken, c)
	}
	return c.clone(), nil
}

func (v *OIDCVerifier) verify(ctx context.Context, rawToken string) (*Claims, error) {
	var keyErr error
	tok, err := v.verifier.Verify(context.WithValue(ctx, keyErrKey{}, &keyErr), rawToken)
	if err != nil {
		if keyErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, keyErr)
		}
		if expired, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			return nil, fmt.Errorf("%w at %s", ErrTokenExpired, expired.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var extra struct {
		Email         string   `json:"email"`
		EmailVerified flexBool `json:"email_verified"`
	}
	if err := tok.Claims(&extra); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if tok.Subject == "" {
		return nil, wrapInvalid(`no "sub" claim`)
	}
	c := &Claims{
		Issuer:        tok.Issuer,
		Subject:       tok.Subject,
		Audience:      tok.Audience,
		Email:         extra.Email,
		EmailVerified: bool(extra.EmailVerified),
		Expiry:        tok.Expiry,
		IssuedAt:      tok.IssuedAt,
	}
	if v.check != nil {
		if err := v.check(ctx, c); err != nil {
			if errors.Is(err, ErrForbidden) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
	}
	return c, nil
}

// keyErrKey carries, through go-oidc, a slot where probingKeySet records a
// failure to fetch keys; go-oidc flattens the key set's error into text.
type keyErrKey struct{}

// probingKeySet tells "the keys could not be fetched" (worth a retry, 503)
// apart from "no key verifies this token" (401).
type probingKeySet struct{ inner oidc.KeySet }

func (k probingKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.inner.VerifySignature(ctx, jwt)
	// go-oidc's RemoteKeySet reports a failed or cancelled fetch as
	// "fetching keys ..." (TestVerifyKeysUnavailable pins this).
	if err != nil && strings.HasPrefix(err.Error(), "fetching keys") {
		if slot, ok := ctx.Value(keyErrKey{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

// flexBool reads a JSON boolean, or the strings "true"/"false" that some
// issuers send for email_verified.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch strings.Trim(string(data), `"`) {
	case "true":
		*b = true
	case "false", "null", "":
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

var _ json.Unmarshaler = (*flexBool)(nil)
