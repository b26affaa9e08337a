package testutil_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/testutil"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	t.Run("returns once the condition holds", func(t *testing.T) {
		t.Parallel()
		calls := 0
		testutil.WaitFor(t, time.Minute, "the third call", func() bool {
			calls++
			return calls == 3
		})
		if calls != 3 {
			t.Errorf("condition called %d times, want 3", calls)
		}
	})
	t.Run("fails naming what it waited for", func(t *testing.T) {
		t.Parallel()
		rec := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testutil.WaitFor(rec, 20*time.Millisecond, "a condition that never holds", func() bool { return false })
		}()
		<-done
		if !strings.Contains(rec.msg, "a condition that never holds") || !strings.Contains(rec.msg, "20ms") {
			t.Errorf("Fatalf message = %q, want it to name the condition and the timeout", rec.msg)
		}
	})
}
