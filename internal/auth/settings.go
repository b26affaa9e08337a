package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"eventrelay/internal/logging"
)

// Google's issuer and key set, the ones ModeGoogle trusts.
const (
	// GoogleIssuer is the "iss" of Google-signed ID tokens. Google also
	// issues "accounts.google.com" (no scheme); go-oidc accepts both for it.
	GoogleIssuer = "https://accounts.google.com"
	// GoogleJWKSURL is where Google publishes the keys of its ID tokens.
	GoogleJWKSURL = "https://www.googleapis.com/oauth2/v3/certs"
	// SignatureRemovedByGoogle is what Cloud Run puts in place of an ID
	// token's signature after its IAM invoker check verified it.
	SignatureRemovedByGoogle = "SIGNATURE_REMOVED_BY_GOOGLE"
)

// DevIssuer is the "iss" of the local development issuer
// (internal/auth/devissuer), which relayctl dev runs and a service may be
// pointed at in oidc mode on a developer's machine. The .invalid top-level
// domain never resolves, so it cannot be mistaken for a real issuer.
// NewVerifier warns (WarnDevIssuer) when it is the configured issuer.
const DevIssuer = "https://dev-issuer.eventrelay.invalid"

// WarnDevIssuer logs, at WARN with the logger of ctx, that the dev issuer
// is trusted: anyone who can read its key file can mint tokens a verifier
// configured with it accepts.
func WarnDevIssuer(ctx context.Context) {
	logging.FromContext(ctx).WarnContext(ctx,
		"dev OIDC issuer in use: NOT FOR PRODUCTION; anyone who can read its key file can mint accepted tokens",
		"issuer", DevIssuer)
}

// Mode selects who issues the tokens a service accepts.
type Mode string

const (
	// ModeGoogle accepts ID tokens signed by Google (GoogleIssuer, keys at
	// GoogleJWKSURL): the source's service account on ingest, Cloud Tasks'
	// token service account on the dispatcher.
	ModeGoogle Mode = "google"
	// ModeOIDC accepts ID tokens from any issuer with a JWKS (AUTH_ISSUER,
	// AUTH_JWKS_URL): the Cloud Tasks emulator, the dev issuer.
	ModeOIDC Mode = "oidc"
)

// Settings is the AUTH_* configuration of a service that requires ID
// tokens; ingest and the dispatcher embed it in their Config. The claim
// rules are the same in both modes: issuer, audience, expiry, not-before,
// subject, and an email on AllowedEmails with email_verified true.
type Settings struct {
	// Mode is "google" (the default) or "oidc".
	Mode Mode `env:"AUTH_MODE, default=google"`
	// Audience must be one of the token's "aud" values: the service's URL,
	// or the custom audience callers request tokens for.
	Audience string `env:"AUTH_AUDIENCE"`
	// AllowedEmails are the callers: the source's service accounts on
	// ingest, the Cloud Tasks token service account on the dispatcher.
	// Comma-separated; required.
	AllowedEmails []string `env:"AUTH_ALLOWED_EMAILS"`
	// TrustCloudRunIAM (google mode only) also accepts tokens whose
	// signature Cloud Run replaced with SignatureRemovedByGoogle after its
	// IAM check, checking their claims only. Turn it on only for a Cloud Run
	// service that requires authentication; see docs/security.md.
	TrustCloudRunIAM bool `env:"AUTH_TRUST_CLOUD_RUN_IAM, default=false"`
	// Issuer (oidc mode only) is the exact "iss" of accepted tokens.
	Issuer string `env:"AUTH_ISSUER"`
	// JWKSURL (oidc mode only) is the issuer's key set.
	JWKSURL string `env:"AUTH_JWKS_URL"`
}

// Validate reports every problem in s, naming the variables.
func (s Settings) Validate() error {
	var errs []error
	switch s.Mode {
	case ModeGoogle:
		if s.Issuer != "" && s.Issuer != GoogleIssuer {
			errs = append(errs, fmt.Errorf("AUTH_ISSUER must be empty in google mode (the issuer is %s), got %q", GoogleIssuer, s.Issuer))
		}
		if s.JWKSURL != "" && s.JWKSURL != GoogleJWKSURL {
			errs = append(errs, fmt.Errorf("AUTH_JWKS_URL must be empty in google mode (the keys are at %s), got %q", GoogleJWKSURL, s.JWKSURL))
		}
	case ModeOIDC:
		if s.Issuer == "" {
			errs = append(errs, errors.New("AUTH_ISSUER is required in oidc mode"))
		}
		if s.JWKSURL == "" {
			errs = append(errs, errors.New("AUTH_JWKS_URL is required in oidc mode"))
		} else if u, err := url.Parse(s.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("AUTH_JWKS_URL must be an absolute http(s) URL, got %q", s.JWKSURL))
		}
		if s.TrustCloudRunIAM {
			errs = append(errs, errors.New("AUTH_TRUST_CLOUD_RUN_IAM applies to google mode only"))
		}
	default:
		errs = append(errs, fmt.Errorf("AUTH_MODE must be %q or %q, got %q", ModeGoogle, ModeOIDC, s.Mode))
	}
	if strings.TrimSpace(s.Audience) == "" {
		errs = append(errs, errors.New("AUTH_AUDIENCE is required"))
	}
	if len(s.AllowedEmails) == 0 {
		errs = append(errs, errors.New("AUTH_ALLOWED_EMAILS is required: the emails of the callers allowed in"))
	}
	for _, e := range s.AllowedEmails {
		if err := checkEmail(e); err != nil {
			errs = append(errs, fmt.Errorf("AUTH_ALLOWED_EMAILS: %w", err))
		}
	}
	return errors.Join(errs...)
}

// OIDCConfig is the verifier configuration s describes (Google's issuer and
// key set filled in for google mode).
func (s Settings) OIDCConfig() OIDCConfig {
	c := OIDCConfig{
		Issuer:           s.Issuer,
		Audience:         strings.TrimSpace(s.Audience),
		JWKSURL:          s.JWKSURL,
		TrustCloudRunIAM: s.TrustCloudRunIAM,
	}
	for _, e := range s.AllowedEmails {
		c.AllowedEmails = append(c.AllowedEmails, strings.ToLower(strings.TrimSpace(e)))
	}
	if s.Mode == ModeGoogle {
		c.Issuer, c.JWKSURL = GoogleIssuer, GoogleJWKSURL
	}
	return c
}

// NewVerifier validates s and builds its verifier. A verifier that trusts
// the dev issuer (AUTH_ISSUER=DevIssuer) says so once, at WARN, with the
// logger of ctx.
func NewVerifier(ctx context.Context, s Settings) (*OIDCVerifier, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("auth settings: %w", err)
	}
	v, err := NewOIDCVerifier(ctx, s.OIDCConfig())
	if err != nil {
		return nil, err
	}
	if s.Issuer == DevIssuer {
		WarnDevIssuer(ctx)
	}
	return v, nil
}
