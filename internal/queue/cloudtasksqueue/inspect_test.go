package cloudtasksqueue_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"eventrelay/internal/queue"
)

// TestTaskExists_errorsAreNotNo checks that TaskExists answers an error,
// never false, when it cannot ask: a refused connection fails at once with
// Unavailable (the client's default retries of GetTask would turn it into
// a deadline), a server that never answers is given up on the call's own
// deadline (the caller's context has none), and a bad name makes no call.
func TestTaskExists_errorsAreNotNo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		endpoint func(testing.TB) string
		task     string
		wantCode codes.Code // the gRPC code in the chain; OK: none
	}{
		{name: "dead endpoint", endpoint: deadEndpoint, task: queue.TaskName("evt-1"), wantCode: codes.Unavailable},
		{name: "server never answers", endpoint: silentEndpoint, task: queue.TaskName("evt-1"), wantCode: codes.DeadlineExceeded},
		{name: "invalid name", endpoint: silentEndpoint, task: "a/b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := newQueue(t, options(tc.endpoint(t), "events", "http://127.0.0.1:1/tasks"))
			ok, err := q.TaskExists(context.Background(), tc.task)
			if err == nil {
				t.Fatalf("TaskExists(%s) = %v, nil; want an error", tc.task, ok)
			}
			if ok {
				t.Errorf("TaskExists(%s) = true with error %v, want false", tc.task, err)
			}
			if got := status.Code(err); tc.wantCode != codes.OK && got != tc.wantCode {
				t.Errorf("gRPC code = %v, want %v (error %v)", got, tc.wantCode, err)
			}
		})
	}
}
