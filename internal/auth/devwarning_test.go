package auth_test

import (
	"bytes"
	"strings"
	"testing"

	"eventrelay/internal/auth"
	"eventrelay/internal/logging"
)

// TestNewVerifierWarnsOfTheDevIssuer: a service configured to trust the dev
// issuer says, once at WARN, that it is not for production; any other
// issuer is silent.
func TestNewVerifierWarnsOfTheDevIssuer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		settings auth.Settings
		wantWarn bool
	}{
		{name: "dev issuer", wantWarn: true, settings: auth.Settings{
			Mode: auth.ModeOIDC, Issuer: auth.DevIssuer, JWKSURL: "http://127.0.0.1:1/jwks",
			Audience: "eventrelay-ingest", AllowedEmails: []string{"source@dev-issuer.eventrelay.invalid"},
		}},
		{name: "another oidc issuer", settings: auth.Settings{
			Mode: auth.ModeOIDC, Issuer: "http://127.0.0.1:8980", JWKSURL: "http://127.0.0.1:8980/jwks",
			Audience: "https://dispatcher.example", AllowedEmails: []string{"tasks@p.iam.gserviceaccount.com"},
		}},
		{name: "google", settings: auth.Settings{
			Mode: auth.ModeGoogle, Audience: "https://ingest.example", AllowedEmails: []string{"source@p.iam.gserviceaccount.com"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			ctx := logging.WithLogger(t.Context(), logging.New(&logs, logging.Options{}))
			if _, err := auth.NewVerifier(ctx, tc.settings); err != nil {
				t.Fatal(err)
			}
			got := strings.Count(logs.String(), "NOT FOR PRODUCTION")
			want := 0
			if tc.wantWarn {
				want = 1
			}
			if got != want {
				t.Errorf("warned %d times, want %d; logs: %s", got, want, logs.String())
			}
			if tc.wantWarn && !strings.Contains(logs.String(), `"severity":"WARNING"`) {
				t.Errorf("log = %s, want a WARNING", logs.String())
			}
		})
	}
}
