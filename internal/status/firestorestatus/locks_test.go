package firestorestatus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestKeyLocksSerialise checks that callers of one key run one at a time
// and that other keys are not held up.
func TestKeyLocksSerialise(t *testing.T) {
	t.Parallel()
	var (
		k       keyLocks
		wg      sync.WaitGroup
		mu      sync.Mutex
		inside  = map[string]int{}
		maxSeen = map[string]int{}
	)
	for i := range 40 {
		key := []string{"a", "b"}[i%2]
		wg.Go(func() {
			unlock, err := k.lock(t.Context(), key)
			if err != nil {
				t.Errorf("lock: %v", err)
				return
			}
			mu.Lock()
			inside[key]++
			maxSeen[key] = max(maxSeen[key], inside[key])
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside[key]--
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	for _, key := range []string{"a", "b"} {
		if maxSeen[key] != 1 {
			t.Errorf("key %s: %d callers inside at once, want 1", key, maxSeen[key])
		}
	}
	if len(k.m) != 0 {
		t.Errorf("%d keys left in the map after every unlock, want 0", len(k.m))
	}
}

// TestKeyLocksContext checks that a waiter gives up with its context and
// leaves the lock usable.
func TestKeyLocksContext(t *testing.T) {
	t.Parallel()
	var k keyLocks
	unlock, err := k.lock(t.Context(), "held")
	if err != nil {
		t.Fatalf("lock: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "held"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lock of a held key with an expiring context: %v, want DeadlineExceeded", err)
	}
	unlock()
	again, err := k.lock(t.Context(), "held")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
	if len(k.m) != 0 {
		t.Errorf("%d keys left in the map, want 0", len(k.m))
	}
}
