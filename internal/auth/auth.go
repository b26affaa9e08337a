// Package auth verifies the bearer ID tokens callers present and guards HTTP
// handlers with them.
//
// A Verifier checks one raw token and returns its Claims. The OIDC
// implementation (NewOIDCVerifier) checks the header (typ JWT, RS256 or ES256
// only: never "none", never an HMAC), the signature, the issuer, the
// audience, the expiry and the not-before time, then who the caller is: the
// "email" claim must be on an allow-list and "email_verified" true. It
// verifies against a remote JWKS (production: Google's keys; locally: the
// Cloud Tasks emulator's or the dev issuer's) or against a static key set
// (the dev issuer in the same process). Rules beyond those plug in through
// OIDCConfig.Check.
//
// Settings is the AUTH_* configuration both services read, in one of two
// modes: ModeGoogle (Google-signed ID tokens; optionally trusting Cloud Run's
// IAM check for tokens whose signature Cloud Run removed) and ModeOIDC (any
// issuer with a JWKS). NewVerifier builds the verifier it describes.
//
// RequireBearer (and Middleware, its func(http.Handler) http.Handler form) is
// the HTTP middleware: it answers 401 problem+json for a missing or invalid
// token, 403 for a caller not allowed, and otherwise passes the request on
// with the Claims in its context (ClaimsFromContext). The token it verifies
// is the one Cloud Run checked: X-Serverless-Authorization's when the
// request carries that header (Authorization is then not read), else
// Authorization's (CallerToken). Tokens are never logged.
package auth

import (
	"context"
	"errors"
	"time"
)

// Claims are the verified claims of an ID token that the system uses.
type Claims struct {
	// Issuer is the "iss" claim.
	Issuer string
	// Subject is the "sub" claim: the caller's stable identifier.
	Subject string
	// Audience is the "aud" claim; it contains the configured audience.
	Audience []string
	// Email is the "email" claim; empty when the token has none.
	Email string
	// EmailVerified is the "email_verified" claim.
	EmailVerified bool
	// Expiry is the "exp" claim.
	Expiry time.Time
	// IssuedAt is the "iat" claim; zero when the token has none.
	IssuedAt time.Time
	// SignatureRemovedByGoogle is true for a token whose signature Cloud Run
	// replaced with SignatureRemovedByGoogle after checking it: only its
	// claims were checked here (OIDCConfig.TrustCloudRunIAM).
	SignatureRemovedByGoogle bool
}

// Verifier checks a raw bearer token.
type Verifier interface {
	// Verify returns the token's claims, or an error wrapping
	// ErrInvalidToken when the token must be refused, ErrForbidden when it
	// is valid but its holder is not allowed, or ErrKeysUnavailable when the
	// keys to check it could not be fetched.
	Verify(ctx context.Context, rawToken string) (*Claims, error)
}

var (
	// ErrInvalidToken: the token is malformed, badly signed, from another
	// issuer, for another audience, expired or not yet valid.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrTokenExpired is the ErrInvalidToken case of an expired token.
	ErrTokenExpired = wrapInvalid("token expired")
	// ErrForbidden: the token is valid but its holder is not allowed (email
	// not on the allow-list, email not verified, or a Check refused it).
	ErrForbidden = errors.New("auth: caller not allowed")
	// ErrKeysUnavailable: the key set could not be fetched, so the token
	// could be neither accepted nor refused. It is worth retrying.
	ErrKeysUnavailable = errors.New("auth: verification keys unavailable")
)

// wrapInvalid makes an error that errors.Is ErrInvalidToken.
func wrapInvalid(reason string) error {
	return &invalidError{reason: reason}
}

type invalidError struct{ reason string }

func (e *invalidError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }
func (e *invalidError) Unwrap() error { return ErrInvalidToken }

type claimsKey struct{}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims RequireBearer verified for this
// request, if any.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
