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

// RequireBearer passes a request to next only with a bearer token v accepts,
// with the token's Claims in the request context (ClaimsFromContext).
// Otherwise it answers problem+json: 401 with a WWW-Authenticate: Bearer
// challenge for a missing, non-Bearer or invalid token, 403 for a caller a
// Check refused, 503 with Retry-After when the keys are unavailable. The
// token itself is never echoed nor logged.
func RequireBearer(v Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		logger := logging.FromContext(ctx)
		raw, ok := BearerToken(r)
		if !ok {
			logger.WarnContext(ctx, "request refused: no bearer token", "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`"`)
			serving.WriteProblem(w, http.StatusUnauthorized, SlugUnauthenticated, "Authentication required",
				"Send an ID token in an 'Authorization: Bearer <token>' header.", nil)
			return
		}
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

// BearerToken returns the token of the request's single
// "Authorization: Bearer <token>" header (the scheme is case-insensitive).
func BearerToken(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
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
// of dispatcher.Server.Authenticate.
func Middleware(v Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return RequireBearer(v, next) }
}
