package ingest_test

import (
	"net/http"
	"testing"
)

// FuzzEventsBody: whatever an authenticated caller sends, the answer is a
// 202 or a 4xx, never a 5xx or a panic, and only a 202 leaves a task.
func FuzzEventsBody(f *testing.F) {
	for _, seed := range []string{
		eventJSON("seed"),
		`{"id":"a","name":"n","body":"b","timestamp":"2026-01-01T00:00:00Z"}`,
		`{"id":"","name":"","body":"","timestamp":0}`,
		`{"id":"a","id":"a"}`,
		`[]`, `null`, `"x"`, ``, `{`, `{}{}`,
		"{\"id\":\"\x00\"}",
	} {
		f.Add(seed)
	}
	h := newHarness(f, nil)
	tok := token(f)
	f.Fuzz(func(t *testing.T, body string) {
		before := len(h.queue.Tasks())
		rec := h.do(newRequest(t, body, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }))
		switch {
		case rec.Code == http.StatusAccepted:
			decodeAccepted(t, rec)
		case rec.Code == http.StatusBadRequest || rec.Code == http.StatusRequestEntityTooLarge:
			decodeProblem(t, rec)
			if after := len(h.queue.Tasks()); after != before {
				t.Errorf("a refused body left a task")
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}
