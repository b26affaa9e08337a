// Package authtest mints ID tokens for tests, good ones and every kind of
// bad one, and builds the verifier a service would run with, in each auth
// mode. The attack suites of ingest and the dispatcher share its table
// (Attacks), so both doors are tried with the same keys.
//
// Nothing here reaches the network: the Google mode's verifier has the
// settings a Cloud Run service would have, with the test key injected in
// place of Google's JWKS URL.
package authtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"eventrelay/internal/auth"
)

// Key is a signing key with the alg and kid its tokens carry.
type Key struct {
	Priv crypto.Signer
	Alg  jose.SignatureAlgorithm
	KID  string
}

// Keys made once per test binary: RSA generation is slow.
var (
	googleKey = sync.OnceValue(func() Key { return Key{Priv: mustRSA(), Alg: jose.RS256, KID: "google-test-1"} })
	oidcKey   = sync.OnceValue(func() Key { return Key{Priv: mustEC(), Alg: jose.ES256, KID: "oidc-test-1"} })
	// strangerRSA and strangerEC sign with the kid of the real keys: the
	// "unknown key" attack.
	strangerRSA = sync.OnceValue(func() Key { return Key{Priv: mustRSA(), Alg: jose.RS256, KID: "google-test-1"} })
	strangerEC  = sync.OnceValue(func() Key { return Key{Priv: mustEC(), Alg: jose.ES256, KID: "oidc-test-1"} })
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEC() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// OIDCIssuer is the issuer of the oidc mode's tokens.
const OIDCIssuer = "http://127.0.0.1:8980"

// Issuer is one auth mode as a service is configured with it, and the
// issuer its tokens come from.
type Issuer struct {
	// Name names the mode in test names.
	Name string
	// Settings are the service's AUTH_* settings.
	Settings auth.Settings
	key      Key
	stranger Key
}

// Modes returns the three ways a service can be configured: google,
// google trusting Cloud Run's IAM check, and oidc (the Cloud Tasks
// emulator's or the dev issuer's kind). audience is the service's own;
// allowed is its allow-list.
func Modes(audience string, allowed ...string) []*Issuer {
	google := auth.Settings{Mode: auth.ModeGoogle, Audience: audience, AllowedEmails: allowed}
	trusting := google
	trusting.TrustCloudRunIAM = true
	return []*Issuer{
		{Name: "google", Settings: google, key: googleKey(), stranger: strangerRSA()},
		{Name: "google trusting Cloud Run IAM", Settings: trusting, key: googleKey(), stranger: strangerRSA()},
		{Name: "oidc", Settings: auth.Settings{
			Mode: auth.ModeOIDC, Issuer: OIDCIssuer, JWKSURL: OIDCIssuer + "/jwks",
			Audience: audience, AllowedEmails: allowed,
		}, key: oidcKey(), stranger: strangerEC()},
	}
}

// Verifier is the verifier the service runs with, except that it holds the
// issuer's public key instead of fetching it from the JWKS URL.
func (i *Issuer) Verifier(tb testing.TB) *auth.OIDCVerifier {
	tb.Helper()
	if err := i.Settings.Validate(); err != nil {
		tb.Fatalf("authtest: settings of mode %s: %v", i.Name, err)
	}
	cfg := i.Settings.OIDCConfig()
	cfg.JWKSURL = ""
	cfg.Keys = []crypto.PublicKey{i.key.Priv.Public()}
	v, err := auth.NewOIDCVerifier(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("authtest: verifier of mode %s: %v", i.Name, err)
	}
	return v
}

// Claims are valid claims for the service: its issuer and audience, the
// first allowed email, verified, issued now for an hour. overrides replace
// claims; a nil value removes one.
func (i *Issuer) Claims(overrides map[string]any) map[string]any {
	now := time.Now()
	email := ""
	if len(i.Settings.AllowedEmails) > 0 {
		email = i.Settings.AllowedEmails[0]
	}
	c := map[string]any{
		"iss":            i.Settings.OIDCConfig().Issuer,
		"aud":            i.Settings.Audience,
		"sub":            "100000000000000000001",
		"azp":            "100000000000000000001",
		"email":          email,
		"email_verified": true,
		"iat":            now.Unix(),
		"nbf":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Token is a valid token for the service, with overrides applied to its
// claims (see Claims).
func (i *Issuer) Token(tb testing.TB, overrides map[string]any) string {
	tb.Helper()
	return Sign(tb, i.key, "JWT", i.Claims(overrides))
}

// Sign signs claims with k, with typ (none when empty) in the header.
func Sign(tb testing.TB, k Key, typ string, claims map[string]any) string {
	tb.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.KID}}, opts)
	if err != nil {
		tb.Fatalf("authtest: signer: %v", err)
	}
	jws, err := signer.Sign(mustJSON(tb, claims))
	if err != nil {
		tb.Fatalf("authtest: sign: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatalf("authtest: serialize: %v", err)
	}
	return s
}

// Raw assembles a compact JWS by hand, for what no library will sign
// ("none", an HMAC keyed with a public key).
func Raw(tb testing.TB, header, claims map[string]any, sig func(signingInput string) []byte) string {
	tb.Helper()
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(mustJSON(tb, header)) + "." + enc.EncodeToString(mustJSON(tb, claims))
	return input + "." + enc.EncodeToString(sig(input))
}

// HS256 signs with an HMAC keyed with key.
func HS256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// StripSignature is what Cloud Run forwards after its IAM check.
func StripSignature(tok string) string {
	return tok[:strings.LastIndex(tok, ".")+1] + auth.SignatureRemovedByGoogle
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("authtest: marshal: %v", err)
	}
	return b
}

// PublicPEM is the PEM of k's public key: what an attacker keys an HMAC
// with in the algorithm-confusion attack.
func PublicPEM(tb testing.TB, k Key) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.Priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ServerlessAuthorization is the header Cloud Run checks instead of
// Authorization when a request carries it (auth.ServerlessAuthorization).
const ServerlessAuthorization = "X-Serverless-Authorization"

// Attack is one request a stranger may send, and the answer it must get.
type Attack struct {
	Name string
	// Authorization holds the Authorization header values to send; nil
	// sends none.
	Authorization []string
	// Header holds more headers to send (X-Serverless-Authorization among
	// them), by canonical name.
	Header http.Header
	// WantStatus and WantSlug are the answer: 401 or 403 and its problem
	// slug (auth.Slug*).
	WantStatus int
	WantSlug   string
	// Secrets must not appear in any log line: the token and its parts.
	Secrets []string
}

// Attacks returns every token attack on a service configured as i.
// otherAudience is the audience of the other door (the dispatcher's URL for
// ingest and the reverse): its tokens are valid Google tokens for the wrong
// service.
func (i *Issuer) Attacks(tb testing.TB, otherAudience string) []Attack {
	tb.Helper()
	now := time.Now()
	valid := i.Token(tb, nil)
	parts := strings.Split(valid, ".")
	otherClaims := i.Claims(map[string]any{"sub": "someone-else", "email": "intruder@attacker.example"})
	swapped := parts[0] + "." + base64.RawURLEncoding.EncodeToString(mustJSON(tb, otherClaims)) + "." + parts[2]
	bearer := func(tok string) []string { return []string{"Bearer " + tok} }
	invalid := func(name, tok string) Attack {
		return Attack{Name: name, Authorization: bearer(tok), WantStatus: 401, WantSlug: auth.SlugInvalidToken}
	}
	forbidden := func(name, tok string) Attack {
		return Attack{Name: name, Authorization: bearer(tok), WantStatus: 403, WantSlug: auth.SlugForbidden}
	}
	unauthenticated := func(name string, values []string) Attack {
		return Attack{Name: name, Authorization: values, WantStatus: 401, WantSlug: auth.SlugUnauthenticated}
	}
	hdr := map[string]any{"alg": string(i.key.Alg), "typ": "JWT", "kid": i.key.KID}
	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range m {
			out[kk] = vv
		}
		out[k] = v
		return out
	}
	attacks := []Attack{
		unauthenticated("no token", nil),
		unauthenticated("Basic scheme", []string{"Basic dXNlcjpwYXNzd29yZA=="}),
		unauthenticated("token without a scheme", []string{valid}),
		unauthenticated("two Authorization headers", []string{"Bearer " + valid, "Bearer " + valid}),
		unauthenticated("two tokens in one header", []string{"Bearer " + valid + " " + valid}),
		unauthenticated("empty bearer", []string{"Bearer "}),
		{
			Name: "X-CloudTasks-* headers are not identity", WantStatus: 401, WantSlug: auth.SlugUnauthenticated,
			Header: http.Header{
				"X-Cloudtasks-Queuename": {"events"}, "X-Cloudtasks-Taskname": {"ev-1"},
				"X-Cloudtasks-Taskretrycount": {"0"}, "X-Cloudtasks-Taskexecutioncount": {"0"},
			},
		},
		invalid("garbage token", "garbage"),
		invalid("three garbage parts", "a.b.c"),
		invalid("oversized token", strings.Repeat("A", auth.MaxTokenBytes+1)),
		invalid("alg none", Raw(tb, map[string]any{"alg": "none", "typ": "JWT"}, i.Claims(nil), func(string) []byte { return nil })),
		invalid("alg none, capitalised", Raw(tb, map[string]any{"alg": "None", "typ": "JWT"}, i.Claims(nil), func(string) []byte { return nil })),
		invalid("HS256 keyed with the public key", Raw(tb, with(hdr, "alg", "HS256"), i.Claims(nil), HS256(PublicPEM(tb, i.key)))),
		invalid("wrong issuer", i.Token(tb, map[string]any{"iss": "https://accounts.google.com.attacker.example"})),
		invalid("no issuer", i.Token(tb, map[string]any{"iss": nil})),
		invalid("wrong audience", i.Token(tb, map[string]any{"aud": "https://attacker.example"})),
		invalid("the other service's audience", i.Token(tb, map[string]any{"aud": otherAudience})),
		invalid("no audience", i.Token(tb, map[string]any{"aud": nil})),
		invalid("expired", i.Token(tb, map[string]any{"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix()})),
		invalid("not yet valid", i.Token(tb, map[string]any{"nbf": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})),
		invalid("no subject", i.Token(tb, map[string]any{"sub": nil})),
		invalid("signed by an unknown key", Sign(tb, i.stranger, "JWT", i.Claims(nil))),
		invalid("payload swapped under a valid signature", swapped),
		invalid("access token (opaque)", "ya29.a0AfH6SMC-this-is-an-opaque-google-access-token"),
		invalid("access token (JWT, typ at+jwt)", Sign(tb, i.key, "at+jwt", i.Claims(map[string]any{"scope": "openid email"}))),
		invalid("access token (JWT, no aud)", i.Token(tb, map[string]any{"aud": nil, "scope": "openid email"})),
		forbidden("email not allowed", i.Token(tb, map[string]any{"email": "intruder@attacker.example"})),
		forbidden("email not verified", i.Token(tb, map[string]any{"email_verified": false})),
		forbidden("no email claim", i.Token(tb, map[string]any{"email": nil})),
		forbidden("another service account, with X-CloudTasks-* headers", i.Token(tb, map[string]any{"email": "other-sa@attacker.example"})),
	}
	attacks = append(attacks, i.serverlessAttacks(tb, valid, otherAudience)...)
	if i.Settings.TrustCloudRunIAM {
		attacks = append(attacks,
			forbidden("signature removed, email not allowed", StripSignature(i.Token(tb, map[string]any{"email": "intruder@attacker.example"}))),
			invalid("signature removed, other service's audience", StripSignature(i.Token(tb, map[string]any{"aud": otherAudience}))),
			invalid("signature removed, expired", StripSignature(i.Token(tb, map[string]any{"exp": now.Add(-time.Minute).Unix()}))),
			invalid("signature removed, alg none", StripSignature(Raw(tb, map[string]any{"alg": "none"}, i.Claims(nil), func(string) []byte { return nil }))),
			invalid("signature removed, HS256", StripSignature(Raw(tb, with(hdr, "alg", "HS256"), i.Claims(nil), HS256([]byte("x"))))),
		)
	} else {
		attacks = append(attacks, invalid("signature removed by Google (not trusted here)", StripSignature(valid)))
	}
	for n := range attacks {
		a := &attacks[n]
		if a.Header == nil {
			a.Header = http.Header{}
		}
		if strings.HasPrefix(a.Name, "another service account, with X-CloudTasks") {
			a.Header.Set("X-Cloudtasks-Queuename", "events")
			a.Header.Set("X-Cloudtasks-Taskname", "ev-1")
		}
		values := append([]string(nil), a.Authorization...)
		for k, vs := range a.Header {
			if strings.Contains(strings.ToLower(k), "authorization") {
				values = append(values, vs...)
			}
		}
		for _, v := range values {
			tok := strings.TrimSpace(strings.TrimPrefix(v, "Bearer "))
			if len(tok) < 16 {
				continue
			}
			a.Secrets = append(a.Secrets, tok)
			for _, p := range strings.Split(tok, ".") {
				if len(p) >= 16 {
					a.Secrets = append(a.Secrets, p)
				}
			}
		}
	}
	return attacks
}

// serverlessAttacks are the requests that carry X-Serverless-Authorization.
// Behind Cloud Run, that header, when present, is the one whose token Cloud
// Run checked (and whose signature it removed); Authorization is forwarded
// as the caller sent it. So each attack puts a token that would pass on its
// own in Authorization (unsigned and allowed, or signed and allowed) beside
// an X-Serverless-Authorization that must not pass; valid is a signed,
// allowed token.
func (i *Issuer) serverlessAttacks(tb testing.TB, valid, otherAudience string) []Attack {
	tb.Helper()
	unsigned := StripSignature(valid) // what Cloud Run would forward for the allowed caller
	intruder := map[string]any{"sub": "200000000000000000002", "email": "intruder@attacker.example"}
	unsignedIntruder := StripSignature(i.Token(tb, intruder))
	signedIntruder := i.Token(tb, intruder)
	otherService := StripSignature(i.Token(tb, map[string]any{"aud": otherAudience}))

	// A token without a signature is read by its claims only when Cloud Run's
	// IAM check is trusted; otherwise it is refused as invalid.
	unsignedStatus, unsignedSlug := 401, auth.SlugInvalidToken
	if i.Settings.TrustCloudRunIAM {
		unsignedStatus, unsignedSlug = 403, auth.SlugForbidden
	}
	attack := func(name, authz string, xsa []string, status int, slug string) Attack {
		return Attack{
			Name:          name,
			Authorization: []string{"Bearer " + authz},
			Header:        http.Header{ServerlessAuthorization: xsa},
			WantStatus:    status,
			WantSlug:      slug,
		}
	}
	aliased := attack("unsigned allowed Authorization beside X_Serverless_Authorization (underscores)", unsigned, nil, 401, auth.SlugUnauthenticated)
	aliased.Header = http.Header{"X_serverless_authorization": {"Bearer " + unsignedIntruder}}
	return []Attack{
		attack("unsigned allowed Authorization beside X-Serverless-Authorization naming someone else",
			unsigned, []string{"Bearer " + unsignedIntruder}, unsignedStatus, unsignedSlug),
		attack("unsigned allowed Authorization beside a signed X-Serverless-Authorization of an account not allowed",
			unsigned, []string{"Bearer " + signedIntruder}, 403, auth.SlugForbidden),
		attack("signed allowed Authorization beside a signed X-Serverless-Authorization of an account not allowed",
			valid, []string{"Bearer " + signedIntruder}, 403, auth.SlugForbidden),
		attack("unsigned allowed Authorization beside X-Serverless-Authorization for the other service",
			unsigned, []string{"Bearer " + otherService}, 401, auth.SlugInvalidToken),
		attack("unsigned allowed Authorization beside an empty X-Serverless-Authorization",
			unsigned, []string{""}, 401, auth.SlugUnauthenticated),
		attack("unsigned allowed Authorization beside a Basic X-Serverless-Authorization",
			unsigned, []string{"Basic dXNlcjpwYXNzd29yZA=="}, 401, auth.SlugUnauthenticated),
		attack("unsigned allowed Authorization beside X-Serverless-Authorization without a scheme",
			unsigned, []string{unsigned}, 401, auth.SlugUnauthenticated),
		attack("unsigned allowed Authorization beside an empty bearer X-Serverless-Authorization",
			unsigned, []string{"Bearer "}, 401, auth.SlugUnauthenticated),
		attack("unsigned allowed Authorization beside a garbage X-Serverless-Authorization",
			unsigned, []string{"Bearer garbage"}, 401, auth.SlugInvalidToken),
		attack("signed allowed Authorization beside a garbage X-Serverless-Authorization",
			valid, []string{"Bearer a.b.c"}, 401, auth.SlugInvalidToken),
		attack("unsigned allowed Authorization beside two X-Serverless-Authorization headers",
			unsigned, []string{"Bearer " + unsigned, "Bearer " + unsigned}, 401, auth.SlugUnauthenticated),
		attack("unsigned allowed Authorization beside two tokens in one X-Serverless-Authorization",
			unsigned, []string{"Bearer " + unsigned + " " + unsigned}, 401, auth.SlugUnauthenticated),
		aliased,
	}
}

// Accept is a request a service configured as an Issuer must let in.
type Accept struct {
	Name string
	// Header holds the credential headers to send (Authorization,
	// X-Serverless-Authorization), by canonical name.
	Header http.Header
}

// Accepts returns the ways the allowed caller may present itself, in this
// mode: a signed token in Authorization or X-Serverless-Authorization (the
// latter decides, whatever Authorization holds), and, trusting Cloud Run's
// IAM check, the token as Cloud Run forwards it (signature removed) in
// either header.
func (i *Issuer) Accepts(tb testing.TB) []Accept {
	tb.Helper()
	valid := i.Token(tb, nil)
	accepts := []Accept{
		{Name: "signed token in Authorization", Header: http.Header{"Authorization": {"Bearer " + valid}}},
		{Name: "signed token in X-Serverless-Authorization", Header: http.Header{ServerlessAuthorization: {"Bearer " + valid}}},
		{Name: "signed token in X-Serverless-Authorization, the application's own credential in Authorization", Header: http.Header{
			ServerlessAuthorization: {"Bearer " + valid}, "Authorization": {"Bearer not-a-jwt"},
		}},
		{Name: "signed token in X-Serverless-Authorization, Basic Authorization", Header: http.Header{
			ServerlessAuthorization: {"Bearer " + valid}, "Authorization": {"Basic dXNlcjpwYXNzd29yZA=="},
		}},
		{Name: "the same signed token in both headers", Header: http.Header{
			ServerlessAuthorization: {"Bearer " + valid}, "Authorization": {"Bearer " + valid},
		}},
	}
	if i.Settings.TrustCloudRunIAM {
		unsigned := StripSignature(valid)
		accepts = append(accepts,
			Accept{Name: "signature removed, in Authorization (plain Cloud Run)", Header: http.Header{"Authorization": {"Bearer " + unsigned}}},
			Accept{Name: "signature removed, in X-Serverless-Authorization", Header: http.Header{ServerlessAuthorization: {"Bearer " + unsigned}}},
			Accept{Name: "signature removed, the same token in both headers", Header: http.Header{
				ServerlessAuthorization: {"Bearer " + unsigned}, "Authorization": {"Bearer " + unsigned},
			}},
			Accept{Name: "signature removed in X-Serverless-Authorization, the application's own credential in Authorization", Header: http.Header{
				ServerlessAuthorization: {"Bearer " + unsigned}, "Authorization": {"Bearer not-a-jwt"},
			}},
			Accept{Name: "signature removed in X-Serverless-Authorization, someone else's unsigned token in Authorization", Header: http.Header{
				ServerlessAuthorization: {"Bearer " + unsigned},
				"Authorization":         {"Bearer " + StripSignature(i.Token(tb, map[string]any{"email": "intruder@attacker.example"}))},
			}},
		)
	}
	return accepts
}

// ValidAuthorization is the Authorization header of a request the service
// accepts: signed, or (trusting Cloud Run's IAM) as Cloud Run forwards it.
func (i *Issuer) ValidAuthorization(tb testing.TB) string {
	tb.Helper()
	tok := i.Token(tb, nil)
	if i.Settings.TrustCloudRunIAM {
		tok = StripSignature(tok)
	}
	return "Bearer " + tok
}
