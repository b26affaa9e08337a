package dispatcher

import (
	"fmt"
	"net/http"
	"testing"
)

// FuzzTaskBody checks that no task body makes the dispatcher answer anything
// but 200: a body is either a valid event (delivered by the fake target) or
// permanently unparseable. A 5xx here would make the queue retry forever.
func FuzzTaskBody(f *testing.F) {
	h := newHarness(f, func(_ int, w http.ResponseWriter, r *http.Request) {
		respond(200, nil, receiptBody("fuzz", false))(0, w, r)
	})
	for _, seed := range []string{
		eventJSON("ev-1"),
		`{"id":"ev-2","name":"n","body":"b","timestamp":1767225600000}`,
		`{"id":"ev-3"}`,
		`{"id":3}`,
		`{"id":"a","id":"b"}`,
		`null`,
		``,
		"\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got := h.deliver(t, task{body: string(body)}); got.code != http.StatusOK {
			t.Errorf("body %q: answer = %d %v, want 200", body, got.code, got.body)
		}
	})
}

// BenchmarkDeliver measures the dispatcher's cost per task (handler, client,
// classification, two writes to the embedded status store) against a local
// fake target. Every iteration delivers a new event.
func BenchmarkDeliver(b *testing.B) {
	h := newHarness(b, respond(200, nil, receiptBody("ev-bench", false)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if got := h.deliver(b, task{body: eventJSON(fmt.Sprintf("ev-bench-%d", i))}); got.code != http.StatusOK {
			b.Fatalf("answer = %d", got.code)
		}
	}
}
