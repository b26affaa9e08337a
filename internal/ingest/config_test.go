package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth/devissuer"
	"eventrelay/internal/ingest"
	"eventrelay/internal/logging"
)

func TestNewConfig(t *testing.T) {
	t.Parallel()
	auth := map[string]string{
		"AUTH_ISSUER":   "https://accounts.google.com",
		"AUTH_AUDIENCE": "https://ingest.example.test",
		"AUTH_JWKS_URL": "https://www.googleapis.com/oauth2/v3/certs",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range auth {
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
			name: "defaults",
			env:  with(nil),
			want: ingest.Config{
				Port: "8080", AuthIssuer: auth["AUTH_ISSUER"], AuthAudience: auth["AUTH_AUDIENCE"], AuthJWKSURL: auth["AUTH_JWKS_URL"],
				EnqueueTimeout: 250 * time.Millisecond, StatusTimeout: 100 * time.Millisecond,
			},
		},
		{
			name: "everything set",
			env:  with(map[string]string{"PORT": "9000", "ENQUEUE_TIMEOUT": "300ms", "STATUS_TIMEOUT": "50ms"}),
			want: ingest.Config{
				Port: "9000", AuthIssuer: auth["AUTH_ISSUER"], AuthAudience: auth["AUTH_AUDIENCE"], AuthJWKSURL: auth["AUTH_JWKS_URL"],
				EnqueueTimeout: 300 * time.Millisecond, StatusTimeout: 50 * time.Millisecond,
			},
		},
		{
			name:    "no auth settings",
			env:     map[string]string{},
			wantErr: []string{"issuer is required", "audience is required", "JWKS URL"},
		},
		{
			name:    "relative JWKS URL",
			env:     with(map[string]string{"AUTH_JWKS_URL": "certs"}),
			wantErr: []string{"absolute http(s) URL"},
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
			if diff := cmp.Diff(tc.want.AuthJWKSURL, got.OIDC().JWKSURL); diff != "" {
				t.Errorf("OIDC JWKS URL (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDevIssuerWarning(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		issuer   string
		wantWarn bool
	}{
		{name: "dev issuer", issuer: devissuer.IssuerID, wantWarn: true},
		{name: "google", issuer: "https://accounts.google.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			ctx := logging.WithLogger(context.Background(), logging.New(logs, logging.Options{}))
			cfg := testConfig()
			cfg.AuthIssuer = tc.issuer
			if _, err := ingest.NewServer(ctx, cfg, &fakeQueue{}, &fakeStore{}, stubVerifier{}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(logs.String(), "NOT FOR PRODUCTION"); got != tc.wantWarn {
				t.Errorf("warned = %v, want %v; logs: %s", got, tc.wantWarn, logs)
			}
		})
	}
}
