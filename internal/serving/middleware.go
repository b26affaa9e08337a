package serving

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"eventrelay/internal/logging"
)

// Recover turns a panic in h into a logged 500 problem, so that no input can
// crash a service. When h had already started its answer, the 500 cannot be
// sent: the panic is logged and the connection aborted, so the client sees a
// broken answer rather than a 2xx followed by a problem. The log line has the
// panic value, the stack and the path; never the body or headers.
// http.ErrAbortHandler is re-raised as net/http expects.
func Recover(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &recoverWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logging.FromContext(r.Context()).ErrorContext(r.Context(), "handler panicked",
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()), "path", r.URL.Path,
				"answer_started", rw.wrote)
			if rw.wrote {
				panic(http.ErrAbortHandler)
			}
			WriteProblem(w, http.StatusInternalServerError, SlugInternal, "Internal error", "", nil)
		}()
		h.ServeHTTP(rw, r)
	})
}

// recoverWriter remembers whether the answer has started.
type recoverWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *recoverWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true // 1xx answers are not the answer
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recoverWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush passes a flush on, for handlers that test for http.Flusher.
func (w *recoverWriter) Flush() {
	w.wrote = true
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recoverWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
