package ingest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth"
	"eventrelay/internal/ingest"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	authEnv := map[string]string{
		"AUTH_AUDIENCE":       "https://ingest.example.test",
		"AUTH_ALLOWED_EMAILS": "source@p.iam.gserviceaccount.com,Other@P.iam.gserviceaccount.com",
	}
	googleAuth := auth.Settings{
		Mode:          auth.ModeGoogle,
		Audience:      "https://ingest.example.test",
		AllowedEmails: []string{"source@p.iam.gserviceaccount.com", "Other@P.iam.gserviceaccount.com"},
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range authEnv {
			m[k] = v
		}
		for k, v := range extra {
			if v == "<unset>" {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		return m
	}

	cases := []struct {
		name    string
		env     map[string]string
		want    ingest.Config
		wantErr []string
	}{
		{
			name: "defaults: google mode",
			env:  with(nil),
			want: ingest.Config{
				Port: "8080", Auth: googleAuth,
				EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond,
			},
		},
		{
			name: "google mode trusting Cloud Run IAM",
			env:  with(map[string]string{"AUTH_TRUST_CLOUD_RUN_IAM": "true"}),
			want: ingest.Config{
				Port: "8080", Auth: func() auth.Settings { s := googleAuth; s.TrustCloudRunIAM = true; return s }(),
				EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond,
			},
		},
		{
			name: "oidc mode, everything set",
			env: with(map[string]string{
				"AUTH_MODE": "oidc", "AUTH_ISSUER": "http://127.0.0.1:8980", "AUTH_JWKS_URL": "http://127.0.0.1:8980/jwks",
				"PORT": "9000", "ENQUEUE_TIMEOUT": "300ms", "STATUS_TIMEOUT": "50ms",
			}),
			want: ingest.Config{
				Port: "9000",
				Auth: auth.Settings{
					Mode: auth.ModeOIDC, Audience: googleAuth.Audience, AllowedEmails: googleAuth.AllowedEmails,
					Issuer: "http://127.0.0.1:8980", JWKSURL: "http://127.0.0.1:8980/jwks",
				},
				EnqueueTimeout: 300 * time.Millisecond, StatusTimeout: 50 * time.Millisecond,
			},
		},
		{
			name:    "no auth settings",
			env:     map[string]string{},
			wantErr: []string{"AUTH_AUDIENCE is required", "AUTH_ALLOWED_EMAILS is required"},
		},
		{
			name:    "oidc mode without issuer or keys",
			env:     with(map[string]string{"AUTH_MODE": "oidc"}),
			wantErr: []string{"AUTH_ISSUER is required", "AUTH_JWKS_URL is required"},
		},
		{
			name:    "relative JWKS URL",
			env:     with(map[string]string{"AUTH_MODE": "oidc", "AUTH_ISSUER": "http://x", "AUTH_JWKS_URL": "certs"}),
			wantErr: []string{"absolute http(s) URL"},
		},
		{
			name:    "another issuer in google mode",
			env:     with(map[string]string{"AUTH_ISSUER": "https://evil.example"}),
			wantErr: []string{"AUTH_ISSUER must be empty in google mode"},
		},
		{
			name:    "Cloud Run IAM trust outside google mode",
			env:     with(map[string]string{"AUTH_MODE": "oidc", "AUTH_ISSUER": "http://x", "AUTH_JWKS_URL": "http://x/jwks", "AUTH_TRUST_CLOUD_RUN_IAM": "true"}),
			wantErr: []string{"AUTH_TRUST_CLOUD_RUN_IAM applies to google mode only"},
		},
		{
			name:    "unknown mode",
			env:     with(map[string]string{"AUTH_MODE": "none"}),
			wantErr: []string{`AUTH_MODE must be "google" or "oidc", got "none"`},
		},
		{
			name:    "not an email",
			env:     with(map[string]string{"AUTH_ALLOWED_EMAILS": "source"}),
			wantErr: []string{`allowed email "source" is not an email address`},
		},
		{
			name:    "bad port and deadlines, all reported",
			env:     with(map[string]string{"PORT": "http", "ENQUEUE_TIMEOUT": "600ms", "STATUS_TIMEOUT": "-1s"}),
			wantErr: []string{"PORT", "ENQUEUE_TIMEOUT", "STATUS_TIMEOUT"},
		},
		{
			name:    "unparseable duration",
			env:     with(map[string]string{"ENQUEUE_TIMEOUT": "soon"}),
			wantErr: []string{"EnqueueTimeout", "invalid duration"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ingest.NewConfig(t.Context(), envconfig.MapLookuper(tc.env))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("NewConfig = %+v, want an error", got)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("NewConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if _, err := auth.NewVerifier(t.Context(), got.Auth); err != nil {
				t.Errorf("NewVerifier(valid settings): %v", err)
			}
		})
	}
}
