// Package devissuer is the local development OIDC issuer that relayctl dev
// runs, so that ingest checks real signed tokens on a developer's machine.
//
// NOT FOR PRODUCTION. Anyone who can read the data directory can mint tokens
// that a service configured with this issuer accepts. In the cloud, ingest
// trusts Google-signed ID tokens instead.
//
// The issuer keeps one ECDSA P-256 private key in DIR/dev-issuer-key.pem
// (mode 0600), created on first use, so tokens survive restarts and
// `relayctl token --data DIR` can mint one without the server running. Its
// identifier is the fixed string IssuerID, not derived from any address. It
// serves an OpenID discovery document and its JWKS (Handler); a verifier in
// another process uses the JWKS URL with the fixed IssuerID (go-oidc's
// discovery would demand that the issuer equal the URL it fetched).
package devissuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"eventrelay/internal/auth"
	"eventrelay/internal/serving"
)

const (
	// IssuerID is the dev issuer's "iss" (auth.DevIssuer, which verifiers
	// configured with it warn about).
	IssuerID = auth.DevIssuer
	// DefaultAudience is the audience dev tokens are minted for and the
	// audience ingest expects locally.
	DefaultAudience = "eventrelay-ingest"
	// DefaultSubject and DefaultSourceEmail identify the source app in dev
	// tokens.
	DefaultSubject     = "dev-source"
	DefaultSourceEmail = "source@dev-issuer.eventrelay.invalid"
	// DispatcherAudience is the audience of the tokens the local queue
	// sends the dispatcher, and the audience the local dispatcher expects.
	DispatcherAudience = "eventrelay-dispatcher"
	// InvokerSubject and InvokerEmail identify the local queue in its
	// tokens, as Cloud Tasks' token service account does in the cloud.
	InvokerSubject = "dev-queue"
	InvokerEmail   = "queue@dev-issuer.eventrelay.invalid"
	// DefaultTTL is how long a minted dev token is valid.
	DefaultTTL = 12 * time.Hour
	// KeyFile is the private key's file name inside the data directory.
	KeyFile = "dev-issuer-key.pem"
	// DiscoveryPath and JWKSPath are the paths Handler serves.
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// Issuer is the dev issuer: it mints dev ID tokens with one private key and
// serves the matching public keys.
type Issuer struct {
	key    crypto.Signer
	alg    jose.SignatureAlgorithm
	keyID  string
	signer jose.Signer
}

// LoadOrCreate loads the issuer key from dir/KeyFile, creating dir (0700)
// and a new P-256 key (0600) when there is none. Two processes racing to
// create it end up with the same key: the file appears atomically and the
// loser loads the winner's. Existing RSA (2048 bits or more) keys load too.
func LoadOrCreate(dir string) (*Issuer, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = create(dir, path)
	}
	if err != nil {
		return nil, fmt.Errorf("dev issuer key %s: %w", path, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("dev issuer key %s: %w", path, err)
	}
	iss, err := newIssuer(key)
	if err != nil {
		return nil, fmt.Errorf("dev issuer key %s: %w", path, err)
	}
	return iss, nil
}

// create writes a new key to a temporary file and links it into place, which
// fails if another process got there first; then the existing file is read.
func create(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	tmp, err := os.CreateTemp(dir, KeyFile+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chmod key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, fmt.Errorf("install key file: %w", err)
	}
	return data, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

func newIssuer(key crypto.Signer) (*Issuer, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key must be on P-256")
		}
		alg = jose.ES256
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("RSA key must be at least 2048 bits")
		}
		alg = jose.RS256
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	pub := jose.JSONWebKey{Key: key.Public()}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return &Issuer{key: key, alg: alg, keyID: kid, signer: signer}, nil
}

// KeyID is the "kid" of the issuer's key: its RFC 7638 SHA-256 thumbprint.
func (i *Issuer) KeyID() string { return i.keyID }

// Mint returns a signed ID token for audience, valid for ttl from now, with
// iss, aud, sub, email, email_verified=true, iat, nbf, exp and a kid header.
func (i *Issuer) Mint(audience, subject, email string, ttl time.Duration) (string, error) {
	return i.MintAt(time.Now(), audience, subject, email, ttl)
}

// MintAt is Mint with the token issued at now instead of the current time;
// tests use it for expired and not-yet-valid tokens.
func (i *Issuer) MintAt(now time.Time, audience, subject, email string, ttl time.Duration) (string, error) {
	if audience == "" || subject == "" {
		return "", errors.New("mint dev token: audience and subject are required")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint dev token: ttl must be > 0, got %v", ttl)
	}
	now = now.Truncate(time.Second)
	std := jwt.Claims{
		Issuer:    IssuerID,
		Subject:   subject,
		Audience:  jwt.Audience{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(ttl)),
		ID:        tokenID(),
	}
	extra := map[string]any{"email": email, "email_verified": true}
	tok, err := jwt.Signed(i.signer).Claims(std).Claims(extra).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint dev token: %w", err)
	}
	return tok, nil
}

// tokenID is a random "jti" so that two tokens minted in the same second
// differ.
func tokenID() string { return rand.Text() }

// TokenSource returns a function that hands out a token for audience,
// subject and email, minting a new one (valid for ttl) when none is held or
// the one held has less than a quarter of ttl left. It is safe for
// concurrent use; the local queue calls it before every delivery.
func (i *Issuer) TokenSource(audience, subject, email string, ttl time.Duration) func(context.Context) (string, error) {
	var (
		mu     sync.Mutex
		tok    string
		expiry time.Time
	)
	return func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if tok != "" && expiry.Sub(now) > ttl/4 {
			return tok, nil
		}
		t, err := i.MintAt(now, audience, subject, email, ttl)
		if err != nil {
			return "", err
		}
		tok, expiry = t, now.Truncate(time.Second).Add(ttl)
		return tok, nil
	}
}

// PublicKeys returns the key a static-key-set verifier needs.
func (i *Issuer) PublicKeys() []crypto.PublicKey {
	return []crypto.PublicKey{i.key.Public()}
}

// JWKS returns the issuer's public JSON Web Key Set.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key:       i.key.Public(),
		KeyID:     i.keyID,
		Algorithm: string(i.alg),
		Use:       "sig",
	}}}
}

// Handler serves the OpenID discovery document at DiscoveryPath and the
// JWKS at JWKSPath. The discovery document names the fixed IssuerID and a
// jwks_uri on the host the request came to.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		serving.WriteJSON(w, http.StatusOK, i.JWKS())
	})
	mux.HandleFunc("GET "+DiscoveryPath, func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		serving.WriteJSON(w, http.StatusOK, map[string]any{
			"issuer":                                IssuerID,
			"jwks_uri":                              scheme + "://" + r.Host + JWKSPath,
			"id_token_signing_alg_values_supported": []string{string(i.alg)},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	return mux
}

// LogNotForProduction logs, at WARN, that the dev issuer is in use
// (auth.WarnDevIssuer). Call it once when starting anything that serves or
// trusts dev tokens without auth.NewVerifier, which warns by itself.
func LogNotForProduction(ctx context.Context) { auth.WarnDevIssuer(ctx) }
