package serving

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"eventrelay/internal/logging"
)

// Recover turns a panic in h into a logged 500 problem, so that no input can
// crash a service. http.ErrAbortHandler is re-raised as net/http expects.
func Recover(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logging.FromContext(r.Context()).ErrorContext(r.Context(), "handler panicked",
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()), "path", r.URL.Path)
			WriteProblem(w, http.StatusInternalServerError, "internal", "Internal error", "", nil)
		}()
		h.ServeHTTP(w, r)
	})
}
