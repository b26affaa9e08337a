package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// SigningAlgorithms are the only signature algorithms a token may use. "none"
// and the HMAC family are never accepted: an HMAC "signed" with a public key
// would otherwise verify.
var SigningAlgorithms = []string{oidc.RS256, oidc.ES256}

// DefaultJWKSTimeout bounds one fetch of a remote key set.
const DefaultJWKSTimeout = 10 * time.Second

// MaxTokenBytes bounds the raw token: an ID token is about 1 KiB, and a
// larger one is refused before any decoding.
const MaxTokenBytes = 16 << 10

// OIDCConfig configures NewOIDCVerifier. Exactly one of JWKSURL and Keys is
// set.
type OIDCConfig struct {
	// Issuer is the exact "iss" a token must carry. GoogleIssuer also accepts
	// "accounts.google.com", which Google documents as an equivalent.
	Issuer string
	// Audience must be one of the token's "aud" values.
	Audience string
	// JWKSURL is a remote JSON Web Key Set, fetched on first use and again
	// when no key of the last fetch verifies a token (at most once every
	// jwksMinRefresh). Discovery is not used, so the issuer string need not
	// be the URL the keys are served from. Keys advertising the non-standard
	// alg "RSA256" (the Cloud Tasks emulator's) are read as RS256.
	JWKSURL string
	// Keys is a static key set (*rsa.PublicKey or P-256 *ecdsa.PublicKey),
	// for the dev issuer running in the same process, and for tests.
	Keys []crypto.PublicKey
	// AllowedEmails, when not empty, is the allow-list of callers: a token
	// is accepted only if its "email" claim is one of them (compared without
	// regard to case) and its "email_verified" claim is true; otherwise
	// Verify answers ErrForbidden. The check runs on every call, cached
	// token or not. Settings always sets it; only tests and tools leave it
	// empty.
	AllowedEmails []string
	// TrustCloudRunIAM accepts, besides Google-signed tokens, a token whose
	// signature is the literal SignatureRemovedByGoogle: what Cloud Run
	// forwards after its IAM invoker check verified the signature. Such a
	// token's claims are checked (issuer, audience, expiry, not-before,
	// subject, allow-list) but its signature cannot be. Only valid with
	// Issuer = GoogleIssuer, and only safe on a Cloud Run service that
	// requires authentication (no allUsers invoker): anyone reaching the
	// container directly could forge such a token.
	TrustCloudRunIAM bool
	// Check, when set, runs after every other check has passed, on every
	// call. An error wrapping ErrForbidden refuses the caller as not allowed
	// (403); any other error refuses the token as invalid (401).
	Check func(ctx context.Context, c *Claims) error
	// HTTPClient fetches the remote key set; nil uses a client with
	// DefaultJWKSTimeout.
	HTTPClient *http.Client
	// Now is the clock for the expiry checks; nil is time.Now.
	Now func() time.Time
	// CacheSize bounds how many verified tokens are remembered until they
	// expire, so that a caller reusing one token (as the source does) costs
	// one signature check, not one per request. The allow-list and Check
	// still run on every call. Zero means DefaultCacheSize; negative
	// disables the cache.
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
	for _, e := range c.AllowedEmails {
		if err := checkEmail(e); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TrustCloudRunIAM && c.Issuer != GoogleIssuer {
		errs = append(errs, fmt.Errorf("trusting Cloud Run IAM (signature removed by Google) needs issuer %s, not %q", GoogleIssuer, c.Issuer))
	}
	return errors.Join(errs...)
}

// checkEmail accepts what can be a service account or user email: one "@"
// with text on both sides, no blanks inside.
func checkEmail(e string) error {
	t := strings.TrimSpace(e)
	local, domain, ok := strings.Cut(t, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.ContainsAny(t, " \t\r\n") {
		return fmt.Errorf("allowed email %q is not an email address", e)
	}
	return nil
}

// OIDCVerifier verifies OIDC ID tokens: go-jose parses them, the key set
// finds the key that signed them, go-oidc checks their claims.
type OIDCVerifier struct {
	issuer string
	keys   keySet
	// claims is go-oidc's configuration for a token whose signature the key
	// set verified.
	claims *oidc.Config
	// platform checks the claims only, for tokens whose signature Cloud Run
	// removed; nil unless TrustCloudRunIAM.
	platform *oidc.IDTokenVerifier
	allowed  map[string]bool // lower-cased; empty: no allow-list
	check    func(ctx context.Context, c *Claims) error
	now      func() time.Time
	cache    *tokenCache // nil when disabled
}

var _ Verifier = (*OIDCVerifier)(nil)

// NewOIDCVerifier builds a verifier. ctx carries values only (the remote
// key set's requests are made with them); cancelling it does not stop the
// verifier.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("oidc verifier config: %w", err)
	}
	var keys keySet = staticKeys(cfg.Keys)
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: DefaultJWKSTimeout}
		}
		keys = newRemoteKeys(ctx, cfg.JWKSURL, client)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	ov := &OIDCVerifier{
		issuer: cfg.Issuer,
		keys:   keys,
		claims: &oidc.Config{ClientID: cfg.Audience, SupportedSigningAlgs: SigningAlgorithms, Now: cfg.Now},
		check:  cfg.Check,
		now:    now,
	}
	if cfg.TrustCloudRunIAM {
		// go-oidc still checks issuer, audience, expiry and not-before;
		// authenticate has already required the removed-signature marker
		// and an RS256 header before this verifier is used.
		ov.platform = oidc.NewVerifier(cfg.Issuer, nil, &oidc.Config{
			ClientID:                   cfg.Audience,
			SupportedSigningAlgs:       []string{oidc.RS256},
			Now:                        cfg.Now,
			InsecureSkipSignatureCheck: true,
		})
	}
	if len(cfg.AllowedEmails) > 0 {
		ov.allowed = make(map[string]bool, len(cfg.AllowedEmails))
		for _, e := range cfg.AllowedEmails {
			ov.allowed[strings.ToLower(strings.TrimSpace(e))] = true
		}
	}
	switch {
	case cfg.CacheSize == 0:
		ov.cache = newTokenCache(DefaultCacheSize)
	case cfg.CacheSize > 0:
		ov.cache = newTokenCache(cfg.CacheSize)
	}
	return ov, nil
}

// Verify checks rawToken's header, signature, issuer, audience, expiry and
// not-before time (go-oidc allows five minutes of clock skew on the latter)
// and subject, then who holds it: the allow-list and the configured Check.
// A token that passed the first group before is answered from the cache
// until its expiry, but the second group runs on every call, so removing an
// email from the allow-list takes effect at the next request.
func (v *OIDCVerifier) Verify(ctx context.Context, rawToken string) (*Claims, error) {
	if rawToken == "" {
		return nil, wrapInvalid("empty token")
	}
	if len(rawToken) > MaxTokenBytes {
		return nil, wrapInvalid(fmt.Sprintf("token longer than %d bytes", MaxTokenBytes))
	}
	var c *Claims
	if v.cache != nil {
		c, _ = v.cache.get(rawToken, v.now())
	}
	if c == nil {
		var err error
		if c, err = v.authenticate(ctx, rawToken); err != nil {
			return nil, err
		}
		if v.cache != nil {
			v.cache.put(rawToken, c)
		}
	}
	if err := v.authorize(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// authenticate runs the checks that depend on the token alone (the ones
// whose result may be cached).
func (v *OIDCVerifier) authenticate(ctx context.Context, rawToken string) (*Claims, error) {
	removed := strings.HasSuffix(rawToken, "."+SignatureRemovedByGoogle)
	if removed && v.platform == nil {
		return nil, wrapInvalid("signature removed by Google, and this service does not trust Cloud Run's IAM check")
	}
	algs := SigningAlgorithms
	if removed {
		algs = []string{oidc.RS256} // what Google signs with
	}
	jws, err := parseIDToken(rawToken, algs)
	if err != nil {
		return nil, err
	}
	verifier := v.platform
	if !removed {
		key, err := v.keys.verifyingKey(ctx, jws)
		if err != nil {
			return nil, err
		}
		// go-oidc checks the claims, and the signature again with that key.
		verifier = oidc.NewVerifier(v.issuer, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{key}}, v.claims)
	}
	tok, err := verifier.Verify(ctx, rawToken)
	if err != nil {
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
	return &Claims{
		Issuer:                   tok.Issuer,
		Subject:                  tok.Subject,
		Audience:                 tok.Audience,
		Email:                    extra.Email,
		EmailVerified:            bool(extra.EmailVerified),
		Expiry:                   tok.Expiry,
		IssuedAt:                 tok.IssuedAt,
		SignatureRemovedByGoogle: removed,
	}, nil
}

// authorize decides whether the holder of an authentic token may call: the
// allow-list, then Check. It runs on every request, cache hit or not.
func (v *OIDCVerifier) authorize(ctx context.Context, c *Claims) error {
	if len(v.allowed) > 0 {
		switch {
		case c.Email == "":
			return fmt.Errorf(`%w: the token has no "email" claim (request it with the email included)`, ErrForbidden)
		case !v.allowed[strings.ToLower(c.Email)]:
			return fmt.Errorf("%w: email %q is not on the allow-list", ErrForbidden, c.Email)
		case !c.EmailVerified:
			return fmt.Errorf("%w: email %q is not verified", ErrForbidden, c.Email)
		}
	}
	if v.check != nil {
		if err := v.check(ctx, c); err != nil {
			if errors.Is(err, ErrForbidden) {
				return err
			}
			return fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
	}
	return nil
}

// parseIDToken parses a compact JWS signed with one of algs and checks that
// its header is an ID token's: typ "JWT" or none, and no cty. An access
// token in JWT form ("at+jwt", RFC 9068) or a nested token is refused, so
// that no other kind of token signed by a trusted issuer passes as an ID
// token. The signature is not checked here.
func parseIDToken(raw string, algs []string) (*jose.JSONWebSignature, error) {
	accepted := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		accepted[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(raw, accepted)
	if err != nil {
		if alg, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, wrapInvalid(fmt.Sprintf("alg %q is not accepted (only %s)", alg.Got, strings.Join(algs, ", ")))
		}
		if _, ok := errors.AsType[base64.CorruptInputError](err); ok {
			return nil, wrapInvalid(fmt.Sprintf("malformed jwt: a part is not base64url (%v)", err))
		}
		return nil, wrapInvalid("malformed jwt: " + err.Error())
	}
	h := jws.Signatures[0].Header // a compact JWS has exactly one
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		if s, isString := typ.(string); !isString || s != "" && !strings.EqualFold(s, "JWT") {
			return nil, wrapInvalid(fmt.Sprintf("typ %q is not an ID token's (JWT)", typ))
		}
	}
	if cty, ok := h.ExtraHeaders[jose.HeaderContentType]; ok && cty != "" {
		return nil, wrapInvalid("nested tokens (cty) are not ID tokens")
	}
	return jws, nil
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
