package targetmock

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"eventrelay/internal/serving"
)

// TestFallbacksAreProblems: the target double answers unknown paths and
// methods with problem+json like the services, not net/http's text.
func TestFallbacksAreProblems(t *testing.T) {
	t.Parallel()
	tt := newTarget(t, nil, nil)
	cases := []struct {
		method, path string
		wantStatus   int
		wantSlug     string
		wantAllow    string
	}{
		{method: http.MethodGet, path: "/graphql", wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "POST"},
		{method: http.MethodPut, path: "/graphql", wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "POST"},
		{method: http.MethodPost, path: "/health", wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "GET, HEAD"},
		{method: http.MethodDelete, path: "/admin/faults", wantStatus: 405, wantSlug: serving.SlugMethodNotAllowed, wantAllow: "GET, HEAD, POST"},
		{method: http.MethodGet, path: "/nope", wantStatus: 404, wantSlug: serving.SlugNotFound},
		{method: http.MethodPost, path: "/graphql/x", wantStatus: 404, wantSlug: serving.SlugNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, tt.url+tc.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p serving.Problem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || p.Type != serving.ProblemTypeBase+tc.wantSlug ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s %+v, want %d %s", resp.StatusCode, resp.Header.Get("Content-Type"), p, tc.wantStatus, tc.wantSlug)
			}
			if got := resp.Header.Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
		})
	}
}
