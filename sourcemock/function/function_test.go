package function_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"eventrelay/internal/serving"
	"eventrelay/sourcemock/function"
)

// TestRegistered serves the registered functions as funcframework does
// without FUNCTION_TARGET (each at /Name) and checks that SendEvents
// answers with sourcemock's problems: configured from the environment, it
// refuses a GET (405), or, with no INGEST_URL there, says it is
// misconfigured (500).
func TestRegistered(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	// funcframework cannot be stopped; the server ends with the test binary.
	go func() { _ = funcframework.StartHostPort("127.0.0.1", port) }()

	url := "http://127.0.0.1:" + port + "/" + function.Name
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err = http.Get(url)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("function server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer resp.Body.Close()

	var p serving.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("GET %s: status %d, body is not a problem: %v", url, resp.StatusCode, err)
	}
	want := map[int]string{
		http.StatusMethodNotAllowed:    serving.ProblemTypeBase + "method-not-allowed",
		http.StatusInternalServerError: serving.ProblemTypeBase + "misconfigured",
	}
	if w, ok := want[resp.StatusCode]; !ok || p.Type != w {
		t.Errorf("GET %s = %d %q, want 405 method-not-allowed or 500 misconfigured", url, resp.StatusCode, p.Type)
	}
}
