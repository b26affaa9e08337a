// Package warmup builds the warm-up steps (serving.WarmupStep) of ingest
// and the dispatcher: each opens and exercises one client with a cheap
// call, so that the connection, the credentials' token and the keys are in
// place before the startup probe passes and the first request on a new
// instance costs no more than any other.
//
//   - Queue: Control, which on Cloud Tasks is GetQueue on every shard (the
//     same gRPC client as CreateTask, so it dials and fetches the token);
//     on the embedded engine a read of each shard's control row.
//   - Status: Get of an event id no source sends; ErrNotFound is success.
//   - Verifier: Verify of a made-up token whose signature no key matches,
//     which fetches the issuer's JWKS (static keys: nothing to fetch); only
//     an error wrapping auth.ErrKeysUnavailable is a failure.
//   - Target: a TCP connection and, for https, a TLS handshake to the
//     target's host, then closed: no HTTP request reaches the target, so
//     its rate limit never counts a warm-up. Optional: the target is a
//     third party, and its outage must not keep dispatchers from starting.
package warmup

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"eventrelay/internal/auth"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

// Step names, as logs and the probe's answer show them.
const (
	StepQueue    = "queue"
	StepStatus   = "status"
	StepVerifier = "verifier-keys"
	StepTarget   = "target"
)

// ProbeEventID is the id the status step reads: never a real event's in
// practice, and a record found under it is a success all the same.
const ProbeEventID = "eventrelay-warmup-probe"

// Queue reads c's dispatch settings (every shard's).
func Queue(c queue.Controller) serving.WarmupStep {
	return serving.WarmupStep{Name: StepQueue, Do: func(ctx context.Context) error {
		_, err := c.Control(ctx)
		return err
	}}
}

// Status reads ProbeEventID from s.
func Status(s status.Store) serving.WarmupStep {
	return serving.WarmupStep{Name: StepStatus, Do: func(ctx context.Context) error {
		if _, err := s.Get(ctx, ProbeEventID); err != nil && !errors.Is(err, status.ErrNotFound) {
			return err
		}
		return nil
	}}
}

// probeToken is a well-formed ES256 JWT with a key id no issuer publishes
// and an all-zero signature: the verifier parses it, fetches its key set
// to look for the key, and refuses it.
var probeToken = func() string {
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"ES256","kid":"eventrelay-warmup","typ":"JWT"}`))
	claims := enc([]byte(`{"iss":"eventrelay-warmup","sub":"eventrelay-warmup","aud":"eventrelay-warmup","exp":1}`))
	return header + "." + claims + "." + enc(make([]byte, 64))
}()

// Verifier makes v fetch its issuer's keys.
func Verifier(v auth.Verifier) serving.WarmupStep {
	return serving.WarmupStep{Name: StepVerifier, Do: func(ctx context.Context) error {
		_, err := v.Verify(ctx, probeToken)
		switch {
		case err == nil:
			return errors.New("the verifier accepted the warm-up probe token")
		case errors.Is(err, auth.ErrKeysUnavailable):
			return err
		}
		return nil // refused with the keys in hand
	}}
}

// Target connects to targetURL's host (TCP, and TLS for https) and closes
// the connection. It is Optional.
func Target(targetURL string) serving.WarmupStep {
	return serving.WarmupStep{Name: StepTarget, Optional: true, Do: func(ctx context.Context) error {
		u, err := url.Parse(targetURL)
		if err != nil {
			return fmt.Errorf("target url: %w", err)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
		if err != nil {
			return fmt.Errorf("dial target: %w", err)
		}
		defer conn.Close()
		if u.Scheme != "https" {
			return nil
		}
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		} else {
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake with target: %w", err)
		}
		return tc.Close()
	}}
}
