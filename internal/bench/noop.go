package bench

import (
	"context"
	"io"
	"net/http"

	"eventrelay/internal/serving"
)

// noopServer serves a handler that reads the body and answers 202 with a
// small JSON body, on the same server settings as ingest (package serving):
// what the HTTP stack, the loopback and the load generator cost on their
// own, measured in the same run as ingest so that the two compare on a
// machine whose load from elsewhere changes.
func noopServer(ctx context.Context) (url string, stop func(), err error) {
	srv, err := serving.New("127.0.0.1:0", serving.Timeouts{})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, http.HandlerFunc(noop))
	}()
	return srv.URL(), func() { cancel(); <-done }, nil
}

var noopAnswer = []byte(`{"status":"queued"}` + "\n")

func noop(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(noopAnswer)
}
