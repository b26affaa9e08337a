package auth

import (
	"errors"
	"net/http"
	"strings"

	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
)

// Problem slugs RequireBearer answers with (appended to
// serving.ProblemTypeBase). They are stable: clients and alerts match on them.
const (
	// SlugUnauthenticated: 401, no "Authorization: Bearer" token.
	SlugUnauthenticated = "unauthenticated"
	// SlugInvalidToken: 401, the token was refused.
	SlugInvalidToken = "invalid-token"
	// SlugForbidden: 403, the token is valid but its holder is not allowed.
	SlugForbidden = "forbidden"
	// SlugAuthUnavailable: 503, the keys to check the token could not be
	// fetched.
	SlugAuthUnavailable = "auth-unavailable"
)

// Realm is the realm named in WWW-Authenticate challenges.
const Realm = "eventrelay"

// ServerlessAuthorization is the header Cloud Run checks instead of
// Authorization when a request carries it: Cloud Run verifies the ID token
// there (and removes its signature) and forwards Authorization as the caller
// sent it. When it is present, it is the caller's credential and
// Authorization is not read.
const ServerlessAuthorization = "X-Serverless-Authorization"

// RequireBearer passes a request to next only with a bearer token v accepts,
// with the token's Claims in the request context (ClaimsFromContext). The
// token is the one CallerToken picks: X-Serverless-Authorization's when the
// request carries that header, else Authorization's. Otherwise it answers
// problem+json: 401 with a WWW-Authenticate: Bearer challenge for a missing,
// non-Bearer or invalid token, 403 for a caller not allowed, 503 with
// Retry-After when the keys are unavailable. The token itself is never
// echoed nor logged.
func RequireBearer(v Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		logger := logging.FromContext(ctx)
		raw, header, ok := CallerToken(r)
		if !ok {
			logger.WarnContext(ctx, "request refused: no bearer token", "path", r.URL.Path, "header", header)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`"`)
			detail := "Send an ID token in an 'Authorization: Bearer <token>' header."
			if header != "Authorization" {
				detail = "The request carries " + ServerlessAuthorization + ": it must be a single header 'Bearer <token>', and it alone identifies the caller."
			}
			serving.WriteProblem(w, http.StatusUnauthorized, SlugUnauthenticated, "Authentication required", detail, nil)
			return
		}
		logger = logger.With("header", header)
		claims, err := v.Verify(ctx, raw)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(WithClaims(ctx, claims)))
		case errors.Is(err, ErrKeysUnavailable):
			logger.ErrorContext(ctx, "cannot verify bearer token: keys unavailable", "path", r.URL.Path, "error", err)
			w.Header().Set("Retry-After", "1")
			serving.WriteProblem(w, http.StatusServiceUnavailable, SlugAuthUnavailable, "Authentication unavailable",
				"The keys to verify the token could not be fetched; retry shortly.", nil)
		case errors.Is(err, ErrForbidden):
			logger.WarnContext(ctx, "request refused: caller not allowed", "path", r.URL.Path, "error", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="insufficient_scope"`)
			serving.WriteProblem(w, http.StatusForbidden, SlugForbidden, "Caller not allowed",
				"The token is valid but its holder may not call this service.", nil)
		default:
			logger.WarnContext(ctx, "request refused: invalid bearer token", "path", r.URL.Path, "error", err)
			detail := "The token is not valid for this service."
			if errors.Is(err, ErrTokenExpired) {
				detail = "The token has expired."
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="invalid_token"`)
			serving.WriteProblem(w, http.StatusUnauthorized, SlugInvalidToken, "Invalid token", detail, nil)
		}
	})
}

// CallerToken returns the bearer token that identifies the caller and the
// name of the header it was read from.
//
// When the request carries X-Serverless-Authorization, Cloud Run checked the
// token in that header, not the one in Authorization (which it forwards
// untouched, so anyone may have written it): the token is that header's, and
// Authorization is not read. The header must then be a single
// "Bearer <token>"; anything else (empty, another scheme, repeated) is no
// token, never a fall back to Authorization. A header whose name differs
// from X-Serverless-Authorization only in case or in '_' for '-' (which a
// proxy might treat as the same header) counts as present and yields no
// token. Otherwise the token is the single "Authorization: Bearer <token>"
// header's (BearerToken).
func CallerToken(r *http.Request) (token, header string, ok bool) {
	values, present, aliased := serverlessValues(r.Header)
	switch {
	case aliased:
		return "", ServerlessAuthorization, false
	case present:
		token, ok = bearer(values)
		return token, ServerlessAuthorization, ok
	}
	token, ok = BearerToken(r)
	return token, "Authorization", ok
}

// serverlessValues returns the X-Serverless-Authorization values of h,
// whether the header is present (even empty), and whether a spelling of it
// other than the canonical one is present.
func serverlessValues(h http.Header) (values []string, present, aliased bool) {
	for k, vs := range h {
		if k == ServerlessAuthorization {
			values, present = vs, true
			continue
		}
		if len(k) == len(ServerlessAuthorization) && strings.EqualFold(strings.ReplaceAll(k, "_", "-"), ServerlessAuthorization) {
			aliased = true
		}
	}
	return values, present, aliased
}

// BearerToken returns the token of the request's single
// "Authorization: Bearer <token>" header (the scheme is case-insensitive).
// It does not look at X-Serverless-Authorization: use CallerToken to learn
// who called.
func BearerToken(r *http.Request) (string, bool) {
	return bearer(r.Header.Values("Authorization"))
}

// bearer returns the token of a single "Bearer <token>" header value.
func bearer(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// Middleware is RequireBearer as a func(http.Handler) http.Handler, the form
// of dispatcher.Options.Authenticate.
func Middleware(v Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return RequireBearer(v, next) }
}
