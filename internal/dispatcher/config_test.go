package dispatcher

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth"
)

func loadConfig(t testing.TB, env map[string]string) (Config, error) {
	t.Helper()
	var c Config
	err := envconfig.ProcessWith(context.Background(), &envconfig.Config{
		Target:   &c,
		Lookuper: envconfig.MapLookuper(env),
	})
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	got, err := loadConfig(t, map[string]string{
		"TARGET_URL":          "http://127.0.0.1:8082/graphql",
		"AUTH_AUDIENCE":       "https://dispatcher.example.test",
		"AUTH_ALLOWED_EMAILS": "tasks@p.iam.gserviceaccount.com",
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := Config{
		Brand:         "testBrand",
		TargetURL:     "http://127.0.0.1:8082/graphql",
		TargetTimeout: 10 * time.Second,
		Port:          "8081",
		Auth: auth.Settings{
			Mode:          auth.ModeGoogle,
			Audience:      "https://dispatcher.example.test",
			AllowedEmails: []string{"tasks@p.iam.gserviceaccount.com"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	got, err := loadConfig(t, map[string]string{
		"TARGET_URL":     "https://target.example/graphql",
		"BRAND":          "otherBrand",
		"TARGET_TIMEOUT": "2s",
		"PORT":           "9000",
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got.Brand != "otherBrand" || got.TargetTimeout != 2*time.Second || got.Port != "9000" {
		t.Errorf("config = %+v, want the environment's values", got)
	}
}

func TestConfigTargetURLRequired(t *testing.T) {
	t.Parallel()
	if _, err := loadConfig(t, map[string]string{}); err == nil {
		t.Error("load without TARGET_URL succeeded, want an error")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := func() Config {
		return Config{
			Brand:         "testBrand",
			TargetURL:     "http://127.0.0.1:8082/graphql",
			TargetTimeout: time.Second,
			Port:          "8081",
			Auth: auth.Settings{
				Mode:          auth.ModeGoogle,
				Audience:      "https://dispatcher.example.test",
				AllowedEmails: []string{"tasks@p.iam.gserviceaccount.com"},
			},
		}
	}
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr []string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no port is fine", mutate: func(c *Config) { c.Port = "" }},
		{name: "empty brand", mutate: func(c *Config) { c.Brand = " " }, wantErr: []string{"BRAND"}},
		{name: "no target", mutate: func(c *Config) { c.TargetURL = "" }, wantErr: []string{"TARGET_URL is required"}},
		{name: "relative target", mutate: func(c *Config) { c.TargetURL = "/graphql" }, wantErr: []string{"absolute"}},
		{name: "odd scheme", mutate: func(c *Config) { c.TargetURL = "ftp://x/graphql" }, wantErr: []string{"absolute"}},
		{name: "zero timeout", mutate: func(c *Config) { c.TargetTimeout = 0 }, wantErr: []string{"TARGET_TIMEOUT"}},
		{name: "bad port", mutate: func(c *Config) { c.Port = "http" }, wantErr: []string{"PORT"}},
		{name: "no auth", mutate: func(c *Config) { c.Auth = auth.Settings{} }, wantErr: []string{"AUTH_MODE", "AUTH_AUDIENCE", "AUTH_ALLOWED_EMAILS"}},
		{name: "no invoker email", mutate: func(c *Config) { c.Auth.AllowedEmails = nil }, wantErr: []string{"AUTH_ALLOWED_EMAILS is required"}},
		{
			name:    "every problem is reported",
			mutate:  func(c *Config) { c.Brand = ""; c.TargetURL = ""; c.TargetTimeout = -1 },
			wantErr: []string{"BRAND", "TARGET_URL", "TARGET_TIMEOUT"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors mentioning %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
