package warmup_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"eventrelay/internal/auth"
	"eventrelay/internal/engines"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
	"eventrelay/internal/wiring/warmup"
)

var fast = serving.WarmupOptions{AttemptTimeout: 5 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}

func load(t *testing.T, env map[string]string) engines.Config {
	t.Helper()
	var c engines.Config
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatalf("load config: %v", err)
	}
	return c
}

func queueConfig(name string) queue.Config {
	return queue.Config{Name: name, MaxDispatchesPerSecond: 10, MaxBurstSize: 1, MaxConcurrentDispatches: 10,
		DispatchDeadline: 15 * time.Second, Retry: queue.RetryConfig{MaxAttempts: -1, MinBackoff: time.Second, MaxBackoff: time.Minute}}
}

// runUntilReady runs a warm-up of steps and fails t unless it is ready
// within 10 s.
func runUntilReady(t *testing.T, steps ...serving.WarmupStep) {
	t.Helper()
	w := serving.NewWarmup(fast, steps...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	select {
	case <-w.Done():
	case <-ctx.Done():
		t.Fatalf("not ready; pending %v", w.Pending())
	}
}

func TestEmbeddedEnginesWarmUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := load(t, map[string]string{
		"QUEUE_DB": filepath.Join(dir, "q.db"), "STATUS_DB": filepath.Join(dir, "s.db"), "QUEUE_SHARDS": "2",
	})
	store, err := engines.OpenStatus(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	q, err := engines.OpenQueue(t.Context(), c, queueConfig("events"), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	runUntilReady(t, warmup.Queue(q.Controller), warmup.Status(store))
}

// failingStore fails Get until ok is set, then answers ErrNotFound.
type failingStore struct {
	status.Store
	ok    atomic.Bool
	calls atomic.Int32
}

func (f *failingStore) Get(ctx context.Context, id string) (status.Record, error) {
	f.calls.Add(1)
	if !f.ok.Load() {
		return status.Record{}, errors.New("store unavailable")
	}
	return status.Record{}, status.ErrNotFound
}

func TestStatusStepRetriesUntilTheStoreAnswers(t *testing.T) {
	t.Parallel()
	s := &failingStore{}
	w := serving.NewWarmup(fast, warmup.Status(s))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the failing step was not retried")
		}
		time.Sleep(time.Millisecond)
	}
	if w.Ready() {
		t.Fatal("ready while the store fails")
	}
	s.ok.Store(true)
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready after the store recovered (ErrNotFound must count as success)")
	}
}

func TestVerifierStepFetchesTheKeys(t *testing.T) {
	t.Parallel()
	var fetches atomic.Int32
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	defer jwks.Close()
	v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{
		Issuer: "https://issuer.example", Audience: "eventrelay-test", JWKSURL: jwks.URL, HTTPClient: jwks.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	step := warmup.Verifier(v)
	if err := step.Do(t.Context()); err == nil || !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("with the key set down: %v, want an error wrapping ErrKeysUnavailable", err)
	}
	up.Store(true)
	if err := step.Do(t.Context()); err != nil {
		t.Fatalf("with the key set up: %v", err)
	}
	before := fetches.Load()
	if before != 2 {
		t.Errorf("%d fetches, want 2 (one per attempt)", before)
	}
}

func TestVerifierStepWithStaticKeysIsImmediate(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewOIDCVerifier(t.Context(), auth.OIDCConfig{Issuer: "https://issuer.example", Audience: "a",
		Keys: []crypto.PublicKey{key.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := warmup.Verifier(v).Do(t.Context()); err != nil {
		t.Errorf("static keys: %v, want nil (nothing to fetch)", err)
	}
}

func TestTargetStep(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer plain.Close()
	if err := warmup.Target(plain.URL + "/graphql").Do(t.Context()); err != nil {
		t.Errorf("http target: %v", err)
	}

	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
	defer tlsSrv.Close()
	// The test server's certificate is not in the system roots: the
	// handshake, which the step does, must fail on it.
	if err := warmup.Target(tlsSrv.URL + "/graphql").Do(t.Context()); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Errorf("https target with an untrusted certificate: %v, want a TLS handshake error", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := warmup.Target("http://" + addr + "/graphql").Do(t.Context()); err == nil {
		t.Error("closed port: nil, want a dial error")
	}
	if !warmup.Target(plain.URL).Optional {
		t.Error("the target step must be optional")
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the target received %d HTTP requests, want 0", n)
	}
}

func TestGCPEnginesWarmUpOnTheEmulators(t *testing.T) {
	t.Parallel()
	tasks := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	testutil.Emulator(t, testutil.FirestoreEmulatorEnv)
	c := load(t, map[string]string{
		"QUEUE_ENGINE": "cloudtasks", "STATUS_ENGINE": "firestore", "GOOGLE_CLOUD_PROJECT": "eventrelay-test",
		"QUEUE_LOCATION": "us-central1", "CLOUD_TASKS_EMULATOR_HOST": tasks, "QUEUE_SHARDS": "2",
		"TASKS_SERVICE_ACCOUNT": "tasks@eventrelay-test.iam.gserviceaccount.com", "FIRESTORE_COLLECTION": "warmup-test",
	})
	store, err := engines.OpenStatus(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	name := "warmup-" + strings.ReplaceAll(time.Now().UTC().Format("150405.000000000"), ".", "-")
	q, err := engines.OpenQueue(t.Context(), c, queueConfig(name), "http://127.0.0.1:1/tasks/events")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	// The queues do not exist yet: GetQueue fails and the warm-up waits.
	w := serving.NewWarmup(fast, warmup.Queue(q.Controller), warmup.Status(store))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	for got := w.Pending(); len(got) != 1 || got[0] != warmup.StepQueue; got = w.Pending() {
		if ctx.Err() != nil {
			t.Fatalf("pending %v before the queues exist, want [%s] (Firestore's ErrNotFound is success)", got, warmup.StepQueue)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w.Ready() {
		t.Fatal("ready before the queues exist")
	}
	if err := q.EnsureQueues(t.Context()); err != nil {
		t.Fatalf("EnsureQueues: %v", err)
	}
	select {
	case <-w.Done():
	case <-ctx.Done():
		t.Fatalf("not ready after the queues were created; pending %v", w.Pending())
	}
}
