package cloudtasksqueue_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/cloudtasksqueue"
	"eventrelay/internal/queue/queuetest"
	"eventrelay/internal/testutil"
)

const (
	project  = "eventrelay-test"
	location = "us-central1"
)

// queueID returns a queue id unique to the test and the run: the emulator
// remembers every queue and task name it has seen.
func queueID(t testing.TB) string {
	t.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	s := []byte(t.Name())
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			s[i] = '-'
		}
	}
	if len(s) > 80 {
		s = s[len(s)-80:]
	}
	return strings.Trim(string(s), "-") + "-" + hex.EncodeToString(r[:])
}

// options returns Options for queue id on the emulator at host.
func options(host, id, target string) cloudtasksqueue.Options {
	return cloudtasksqueue.Options{
		Project:          project,
		Location:         location,
		Queue:            id,
		Target:           target,
		DispatchDeadline: 10 * time.Second,
		Endpoint:         host,
	}
}

// newQueue opens a Queue on o and closes it when the test ends.
func newQueue(t testing.TB, o cloudtasksqueue.Options) *cloudtasksqueue.Queue {
	t.Helper()
	q, err := cloudtasksqueue.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

// ensured opens a Queue on o, creates its emulator queue with cfg (whose
// Name becomes o.Queue) and deletes that queue when the test ends, so the
// emulator stops retrying its tasks.
func ensured(t testing.TB, o cloudtasksqueue.Options, cfg queue.Config) *cloudtasksqueue.Queue {
	t.Helper()
	cfg.Name = o.Queue
	q := newQueue(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.EnsureQueue(ctx, cfg); err != nil {
		t.Fatalf("EnsureQueue: %v", err)
	}
	t.Cleanup(func() {
		if _, ok := everPaused.Load(q); ok {
			// A paused queue is not retrying anything, and deleting it
			// would hang (see everPaused).
			t.Logf("not deleting %s: the emulator hangs deleting a queue that was ever paused", q.Name())
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.DeleteQueue(ctx); err != nil {
			t.Errorf("DeleteQueue: %v", err)
		}
	})
	return q
}

// everPaused holds the queues a test paused. The emulator v1.2.0 stops a
// paused queue's workers with a cancel message they pass on to each other,
// and the last one leaves it in the channel: its DeleteQueue (and a second
// PauseQueue) then block on that full channel forever, and after
// ResumeQueue the new workers find it and stop at once.
var everPaused sync.Map

// pause pauses q, remembering it in everPaused.
func pause(ctx context.Context, q *cloudtasksqueue.Queue, by string) error {
	everPaused.Store(q, true)
	return q.Pause(ctx, by)
}

// emulatorQueue adapts a Queue to the conformance suite: it hides Stats,
// which the emulator cannot answer (TestStats), its Pause goes through
// pause, and it passes TaskExists on.
type emulatorQueue struct{ q *cloudtasksqueue.Queue }

func (e emulatorQueue) Enqueue(ctx context.Context, t queue.Task) error { return e.q.Enqueue(ctx, t) }

func (e emulatorQueue) Control(ctx context.Context) (queue.Control, error) { return e.q.Control(ctx) }

func (e emulatorQueue) SetRate(ctx context.Context, r float64, by string) error {
	return e.q.SetRate(ctx, r, by)
}

func (e emulatorQueue) Pause(ctx context.Context, by string) error { return pause(ctx, e.q, by) }

func (e emulatorQueue) Resume(ctx context.Context, by string) error { return e.q.Resume(ctx, by) }

func (e emulatorQueue) TaskExists(ctx context.Context, name string) (bool, error) {
	return e.q.TaskExists(ctx, name)
}

// emulatorCapabilities is what the Cloud Tasks emulator v1.2.0 does. What
// it does not (the package doc says more): FIFO, its tasks race for the
// dispatcher, in order mostly but not under load (nor does Google promise
// order); Backoff, retries are timed from the previous schedule time, so a
// timed-out attempt is retried at once; ExecutionCount, it counts 5xx and
// timeouts; RetryAfter, ignored; Restart, a shared emulator cannot be
// restarted by a test; Resume, its PauseQueue stops dispatching, but after
// ResumeQueue the queue stops again at once (see everPaused); SetRate, it
// does not implement UpdateQueue (TestSetRate_emulatorUnimplemented).
var emulatorCapabilities = queuetest.Capabilities{
	RateLimit:          true,
	MaxConcurrent:      true,
	MaxAttempts:        true,
	DedupAfterDelivery: true,
	Control:            true,
}

func TestConformance(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, cfg queue.Config, target string) queue.Queue {
			o := options(host, cfg.Name, target)
			o.DispatchDeadline = cfg.DispatchDeadline
			return emulatorQueue{ensured(t, o, cfg)}
		},
		Capabilities: emulatorCapabilities,
	})
}

// recorder is a target that records each request and answers 200, after
// waiting for hold when it is non-nil.
type recorder struct {
	srv  *httptest.Server
	hold chan struct{}

	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	at     time.Time
	header http.Header
	body   []byte
}

func newRecorder(t testing.TB, hold chan struct{}) *recorder {
	t.Helper()
	rc := &recorder{hold: hold}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, recorded{at: at, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if rc.hold != nil {
			select {
			case <-rc.hold:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *recorder) URL() string { return rc.srv.URL + "/tasks/events" }

func (rc *recorder) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := slices.Clone(rc.reqs)
	slices.SortFunc(out, func(a, b recorded) int { return a.at.Compare(b.at) })
	return out
}

// waitTimeout bounds every wait for the emulator: a guard against a hang,
// not a speed assertion.
const waitTimeout = 30 * time.Second

func enqueue(t testing.TB, q queue.Queue, task queue.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, task); err != nil {
		t.Fatalf("Enqueue(%s) = %v, want nil", task.Name, err)
	}
}

func TestNew_rejectsBadOptions(t *testing.T) {
	t.Parallel()
	valid := func() cloudtasksqueue.Options {
		return cloudtasksqueue.Options{
			Project: "p", Location: "europe-west1", Queue: "events",
			Target:              "https://dispatcher.example/tasks/events",
			ServiceAccountEmail: "ingest@p.iam.gserviceaccount.com",
			DispatchDeadline:    30 * time.Second,
			ClientOptions:       []option.ClientOption{option.WithoutAuthentication()},
		}
	}
	cases := []struct {
		name    string
		edit    func(*cloudtasksqueue.Options)
		wantErr bool
	}{
		{name: "valid on Google", edit: func(*cloudtasksqueue.Options) {}},
		{name: "valid on the emulator with a short deadline", edit: func(o *cloudtasksqueue.Options) {
			o.Endpoint, o.DispatchDeadline = "127.0.0.1:1", 200*time.Millisecond
		}},
		{name: "no project", edit: func(o *cloudtasksqueue.Options) { o.Project = "" }, wantErr: true},
		{name: "no location", edit: func(o *cloudtasksqueue.Options) { o.Location = "" }, wantErr: true},
		{name: "queue id with an underscore", edit: func(o *cloudtasksqueue.Options) { o.Queue = "my_events" }, wantErr: true},
		{name: "queue id too long", edit: func(o *cloudtasksqueue.Options) { o.Queue = strings.Repeat("q", 101) }, wantErr: true},
		{name: "target not http", edit: func(o *cloudtasksqueue.Options) { o.Target = "ftp://x/y" }, wantErr: true},
		{name: "target without host", edit: func(o *cloudtasksqueue.Options) { o.Target = "/tasks/events" }, wantErr: true},
		{name: "audience without service account", edit: func(o *cloudtasksqueue.Options) {
			o.ServiceAccountEmail, o.Audience = "", "https://dispatcher.example"
		}, wantErr: true},
		{name: "no dispatch deadline", edit: func(o *cloudtasksqueue.Options) { o.DispatchDeadline = 0 }, wantErr: true},
		{name: "deadline below Google's 15s", edit: func(o *cloudtasksqueue.Options) { o.DispatchDeadline = 14 * time.Second }, wantErr: true},
		{name: "deadline above Google's 30m", edit: func(o *cloudtasksqueue.Options) { o.DispatchDeadline = 31 * time.Minute }, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := valid()
			tc.edit(&o)
			q, err := cloudtasksqueue.New(context.Background(), o)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New(%+v) error = %v, want error: %v", o, err, tc.wantErr)
			}
			if q != nil {
				if err := q.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

func TestRequest(t *testing.T) {
	t.Parallel()
	const target = "https://dispatcher.example/tasks/events"
	name := queue.TaskName("0f8fad5b-d9cb-469f-a165-70867728950e")
	task := queue.Task{
		Name: name,
		Body: []byte(`{"id":"0f8fad5b-d9cb-469f-a165-70867728950e"}`),
		Header: http.Header{
			"Traceparent":           {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"tracestate":            {"a=1", "b=2"}, // not canonical, two values
			"Content-Type":          {"text/plain"},
			"X-Cloudtasks-Taskname": {"forged"},
			"Authorization":         {"Bearer forged"},
		},
	}
	cases := []struct {
		name           string
		email, aud     string
		wantToken      *taskspb.OidcToken
		wantAuthHeader bool
	}{
		{name: "token for the audience", email: "sa@p.iam.gserviceaccount.com", aud: "https://dispatcher.example",
			wantToken: &taskspb.OidcToken{ServiceAccountEmail: "sa@p.iam.gserviceaccount.com", Audience: "https://dispatcher.example"}},
		{name: "audience defaults to the target", email: "sa@p.iam.gserviceaccount.com",
			wantToken: &taskspb.OidcToken{ServiceAccountEmail: "sa@p.iam.gserviceaccount.com", Audience: target}},
		{name: "no token, the task's Authorization passes", wantAuthHeader: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := newQueue(t, cloudtasksqueue.Options{
				Project: "p", Location: "l", Queue: "events", Target: target,
				ServiceAccountEmail: tc.email, Audience: tc.aud,
				DispatchDeadline: 45 * time.Second,
				Endpoint:         "127.0.0.1:1", // never dialled
			})
			headers := map[string]string{
				"Content-Type": "application/json",
				"Traceparent":  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"Tracestate":   "a=1, b=2",
			}
			if tc.wantAuthHeader {
				headers["Authorization"] = "Bearer forged"
			}
			hr := &taskspb.HttpRequest{Url: target, HttpMethod: taskspb.HttpMethod_POST, Headers: headers, Body: task.Body}
			if tc.wantToken != nil {
				hr.AuthorizationHeader = &taskspb.HttpRequest_OidcToken{OidcToken: tc.wantToken}
			}
			want := &taskspb.CreateTaskRequest{
				Parent: "projects/p/locations/l/queues/events",
				Task: &taskspb.Task{
					Name:             "projects/p/locations/l/queues/events/tasks/" + name,
					DispatchDeadline: durationpb.New(45 * time.Second),
					MessageType:      &taskspb.Task_HttpRequest{HttpRequest: hr},
				},
			}
			if diff := cmp.Diff(want, q.Request(task), protocmp.Transform()); diff != "" {
				t.Errorf("CreateTaskRequest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequest_notBefore(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 15, 4, 5, 123456789, time.UTC)
	cases := []struct {
		name      string
		notBefore time.Time
		want      *timestamppb.Timestamp
	}{
		{name: "zero means now: no schedule time", notBefore: time.Time{}, want: nil},
		{name: "set: the schedule time, to the nanosecond", notBefore: at, want: timestamppb.New(at)},
	}
	q := newQueue(t, cloudtasksqueue.Options{
		Project: "p", Location: "l", Queue: "events", Target: "https://dispatcher.example/tasks/events",
		DispatchDeadline: 45 * time.Second, Endpoint: "127.0.0.1:1", // never dialled
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := q.Request(queue.Task{Name: "n", Body: []byte(`{}`), NotBefore: tc.notBefore}).GetTask().GetScheduleTime()
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("schedule_time (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnqueue_namesTheTaskAfterTheEvent(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	hold := make(chan struct{})
	rc := newRecorder(t, hold)
	q := ensured(t, options(host, queueID(t), rc.URL()), queuetest.Config())
	id := "0f8fad5b-d9cb-469f-a165-70867728950e"
	enqueue(t, q, queue.Task{Name: queue.TaskName(id), Body: []byte(`{}`)})
	testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return len(rc.requests()) == 1 })

	got, err := q.GetTask(context.Background(), queue.TaskName(id))
	close(hold)
	if err != nil {
		t.Fatalf("GetTask(%s): %v", queue.TaskName(id), err)
	}
	if want := q.Name() + "/tasks/" + queue.TaskName(id); got.GetName() != want {
		t.Errorf("task name = %q, want %q", got.GetName(), want)
	}
	if want := "projects/" + project + "/locations/" + location + "/queues/"; !strings.HasPrefix(q.Name(), want) {
		t.Errorf("queue name = %q, want prefix %q", q.Name(), want)
	}
	h := rc.requests()[0].header
	if got, want := h.Get(queue.HeaderTaskName), queue.TaskName(id); got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderTaskName, got, want)
	}
}

func TestEnqueue_alreadyExists(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	rc := newRecorder(t, nil)
	q := ensured(t, options(host, queueID(t), rc.URL()), queuetest.Config())
	task := queue.Task{Name: queue.TaskName("evt-1"), Body: []byte(`{}`)}
	enqueue(t, q, task)
	err := q.Enqueue(context.Background(), task)
	if !errors.Is(err, queue.ErrAlreadyExists) || errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("second Enqueue = %v, want ErrAlreadyExists only", err)
	}
	// Names are per queue: another queue takes the same one.
	other := ensured(t, options(host, queueID(t)+"-b", rc.URL()), queuetest.Config())
	enqueue(t, other, task)
	testutil.WaitFor(t, waitTimeout, "both deliveries", func() bool { return len(rc.requests()) == 2 })
}

// deadEndpoint returns a loopback address nothing listens on.
func deadEndpoint(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentEndpoint returns a loopback address that accepts connections and
// never answers, as a hung server would.
func silentEndpoint(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestEnqueue_unavailable(t *testing.T) {
	t.Parallel()
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name     string
		endpoint func(testing.TB) string
		ctx      func(testing.TB) context.Context
		wantCode codes.Code // the gRPC code in the chain; OK: none
	}{
		{
			// Refused at once, not after the 30s deadline: the call does not
			// wait for the connection.
			name:     "dead endpoint",
			endpoint: deadEndpoint,
			ctx: func(t testing.TB) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t.Cleanup(cancel)
				return ctx
			},
			wantCode: codes.Unavailable,
		},
		{
			name:     "server hangs past the caller's deadline",
			endpoint: silentEndpoint,
			ctx: func(t testing.TB) context.Context {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			wantCode: codes.DeadlineExceeded,
		},
		{
			name:     "context already ended",
			endpoint: silentEndpoint,
			ctx:      func(testing.TB) context.Context { return expired },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := newQueue(t, options(tc.endpoint(t), "events", "http://127.0.0.1:1/tasks"))
			err := q.Enqueue(tc.ctx(t), queue.Task{Name: queue.TaskName("evt-1"), Body: []byte(`{}`)})
			if !errors.Is(err, queue.ErrUnavailable) {
				t.Fatalf("Enqueue = %v, want ErrUnavailable", err)
			}
			if tc.wantCode != codes.OK {
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("gRPC code = %v, want %v (error %v)", got, tc.wantCode, err)
				}
			}
		})
	}
}

func TestEnqueue_otherErrors(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	cases := []struct {
		name string
		task queue.Task
		q    func(t *testing.T) *cloudtasksqueue.Queue
	}{
		{
			name: "queue missing",
			task: queue.Task{Name: queue.TaskName("evt-1"), Body: []byte(`{}`)},
			q: func(t *testing.T) *cloudtasksqueue.Queue {
				return newQueue(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"))
			},
		},
		{
			name: "invalid task name",
			task: queue.Task{Name: "evt/1", Body: []byte(`{}`)},
			q: func(t *testing.T) *cloudtasksqueue.Queue {
				return ensured(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"), queuetest.Config())
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.q(t).Enqueue(context.Background(), tc.task)
			if err == nil || errors.Is(err, queue.ErrUnavailable) || errors.Is(err, queue.ErrAlreadyExists) {
				t.Errorf("Enqueue = %v, want an error that is neither ErrUnavailable nor ErrAlreadyExists", err)
			}
		})
	}
}

// jwtParts decodes a JWT's header and claims without verifying it.
func jwtParts(t testing.TB, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3: %q", len(parts), token)
	}
	decode := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		return m
	}
	return decode(parts[0]), decode(parts[1])
}

func TestDelivery_tokenAndHeaders(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	const (
		email = "ingest@eventrelay-test.iam.gserviceaccount.com"
		tp    = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	cases := []struct {
		name    string
		email   string
		aud     string
		wantAud string // "" for the target URL; no token when email is ""
	}{
		{name: "configured audience", email: email, aud: "https://dispatcher.example", wantAud: "https://dispatcher.example"},
		{name: "audience defaults to the target", email: email},
		{name: "no service account, no token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newRecorder(t, nil)
			o := options(host, queueID(t), rc.URL())
			o.ServiceAccountEmail, o.Audience = tc.email, tc.aud
			q := ensured(t, o, queuetest.Config())
			body := []byte(`{"id":"evt-1","name":"test event"}`)
			before := time.Now()
			enqueue(t, q, queue.Task{Name: queue.TaskName("evt-1"), Body: body, Header: http.Header{
				"Traceparent":           {tp},
				"Tracestate":            {"vendor=1"},
				"X-Cloudtasks-Taskname": {"forged"},
			}})
			testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return len(rc.requests()) == 1 })
			got := rc.requests()[0]

			if diff := cmp.Diff(string(body), string(got.body)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			wantHeader := map[string]string{
				"Content-Type":        "application/json",
				"Traceparent":         tp,
				"Tracestate":          "vendor=1",
				"User-Agent":          "Google-Cloud-Tasks",
				queue.HeaderTaskName:  queue.TaskName("evt-1"),
				queue.HeaderQueueName: o.Queue,
			}
			gotHeader := map[string]string{}
			for k := range wantHeader {
				gotHeader[k] = strings.Join(got.header.Values(k), "|")
			}
			if diff := cmp.Diff(wantHeader, gotHeader); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}

			auth := got.header.Get("Authorization")
			if tc.email == "" {
				if auth != "" {
					t.Errorf("Authorization = %q, want none without a service account", auth)
				}
				return
			}
			token, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok {
				t.Fatalf("Authorization = %q, want a bearer token", auth)
			}
			hdr, claims := jwtParts(t, token)
			if hdr["alg"] != "RS256" || hdr["kid"] == nil {
				t.Errorf("token header = %v, want alg RS256 and a kid", hdr)
			}
			wantAud := tc.wantAud
			if wantAud == "" {
				wantAud = rc.URL()
			}
			wantClaims := map[string]any{"aud": wantAud, "email": tc.email, "sub": tc.email, "email_verified": true}
			if iss := os.Getenv(testutil.CloudTasksOIDCIssuerEnv); iss != "" {
				wantClaims["iss"] = iss
			}
			gotClaims := map[string]any{}
			for k := range wantClaims {
				gotClaims[k] = claims[k]
			}
			if diff := cmp.Diff(wantClaims, gotClaims); diff != "" {
				t.Errorf("token claims (-want +got):\n%s", diff)
			}
			exp, _ := claims["exp"].(float64)
			if exp := time.Unix(int64(exp), 0); !exp.After(before) {
				t.Errorf("token exp = %v, want after the enqueue at %v", exp, before)
			}
		})
	}
}

func TestEnsureQueue(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	ctx := context.Background()
	cfg := queue.Config{
		MaxDispatchesPerSecond:  20,
		MaxBurstSize:            5,
		MaxConcurrentDispatches: 7,
		DispatchDeadline:        30 * time.Second,
		Retry: queue.RetryConfig{
			MaxAttempts:      -1,
			MaxRetryDuration: time.Hour,
			MinBackoff:       time.Second,
			MaxBackoff:       time.Minute,
			MaxDoublings:     4,
		},
	}
	q := ensured(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"), cfg)
	cfg.Name = strings.TrimPrefix(q.Name(), "projects/"+project+"/locations/"+location+"/queues/")

	got, err := q.GetQueue(ctx)
	if err != nil {
		t.Fatalf("GetQueue: %v", err)
	}
	want := &taskspb.Queue{
		Name: q.Name(),
		RateLimits: &taskspb.RateLimits{
			MaxDispatchesPerSecond:  20,
			MaxBurstSize:            3, // 5 minus the 2 tokens the emulator holds
			MaxConcurrentDispatches: 7,
		},
		RetryConfig: &taskspb.RetryConfig{
			MaxAttempts:      math.MaxInt32, // -1 would mean one attempt there
			MaxRetryDuration: durationpb.New(time.Hour),
			MinBackoff:       durationpb.New(time.Second),
			MaxBackoff:       durationpb.New(time.Minute),
			MaxDoublings:     4,
		},
		State: taskspb.Queue_RUNNING,
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	if err := q.EnsureQueue(ctx, cfg); err != nil {
		t.Errorf("EnsureQueue again with the same config = %v, want nil", err)
	}

	bad := func(edit func(*queue.Config)) queue.Config {
		c := cfg
		edit(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  queue.Config
	}{
		{name: "changed (the emulator cannot update)", cfg: bad(func(c *queue.Config) { c.MaxDispatchesPerSecond = 30 })},
		{name: "rate below 1/s (would crash the emulator)", cfg: bad(func(c *queue.Config) { c.MaxDispatchesPerSecond = 0.5 })},
		{name: "name is not the queue id", cfg: bad(func(c *queue.Config) { c.Name = "events" })},
		{name: "invalid", cfg: bad(func(c *queue.Config) { c.Retry.MaxAttempts = 0 })},
	}
	for _, tc := range cases {
		if err := q.EnsureQueue(ctx, tc.cfg); err == nil {
			t.Errorf("%s: EnsureQueue = nil, want an error", tc.name)
		}
	}
	// The emulator is still up and the queue unchanged.
	if got, err := q.GetQueue(ctx); err != nil || got.GetRateLimits().GetMaxDispatchesPerSecond() != 20 {
		t.Errorf("GetQueue after the refusals = %v, %v; want the queue at 20/s", got.GetRateLimits(), err)
	}
}

// TestEnsureQueue_rateLimitObserved watches the emulator deliver at the
// queue's rate. The rate is low (a token every 200ms) so that a delivery
// delayed by a loaded machine cannot slip into the wrong second.
func TestEnsureQueue_rateLimitObserved(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	cases := []struct {
		name      string
		rate      float64
		burst     int
		wantBurst int // the burst the emulator delivers
		n         int
	}{
		{name: "burst 4", rate: 5, burst: 4, wantBurst: 4, n: 20},
		{name: "burst 1 (the emulator's floor is 3)", rate: 5, burst: 1, wantBurst: 3, n: 18},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newRecorder(t, nil)
			cfg := queuetest.Config()
			cfg.MaxDispatchesPerSecond, cfg.MaxBurstSize, cfg.MaxConcurrentDispatches = tc.rate, tc.burst, 100
			q := ensured(t, options(host, queueID(t), rc.URL()), cfg)
			// Let the idle queue fill its bucket, so the burst is the
			// largest it can be.
			time.Sleep(time.Second)
			var wg sync.WaitGroup
			for i := range tc.n {
				wg.Go(func() { enqueue(t, q, queue.Task{Name: fmt.Sprintf("t-%03d", i), Body: []byte(`{}`)}) })
			}
			wg.Wait()
			testutil.WaitFor(t, waitTimeout, "every delivery", func() bool { return len(rc.requests()) >= tc.n })
			reqs := rc.requests()
			if len(reqs) != tc.n {
				t.Errorf("%d deliveries, want %d", len(reqs), tc.n)
			}
			limit := int(tc.rate) + tc.wantBurst
			worst := 0
			for i := range reqs {
				j := i
				for j < len(reqs) && reqs[j].at.Sub(reqs[i].at) < time.Second {
					j++
				}
				worst = max(worst, j-i)
			}
			if worst > limit {
				t.Errorf("%d deliveries in one second, want <= rate + burst = %d", worst, limit)
			}
			minTotal := time.Duration(float64(tc.n-tc.wantBurst) / tc.rate * float64(time.Second))
			// A token period of slack: the first token may already be on its way.
			minTotal -= time.Duration(float64(time.Second) / tc.rate)
			if total := reqs[len(reqs)-1].at.Sub(reqs[0].at); total < minTotal {
				t.Errorf("%d deliveries took %v, want >= %v at %v/s", tc.n, total, minTotal, tc.rate)
			}
		})
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	q := ensured(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"), queuetest.Config())
	s, err := q.Stats(context.Background())
	if !errors.Is(err, cloudtasksqueue.ErrNoStats) {
		t.Errorf("Stats() = %+v, %v; want ErrNoStats (the emulator has no statistics)", s, err)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	host := testutil.Emulator(t, testutil.CloudTasksEmulatorEnv)
	ctx := context.Background()

	t.Run("missing queue is refused", func(t *testing.T) {
		t.Parallel()
		q := newQueue(t, options(host, queueID(t), "http://127.0.0.1:1/tasks"))
		if err := q.Purge(ctx); status.Code(err) != codes.NotFound {
			t.Errorf("Purge of a missing queue = %v, want NotFound", err)
		}
	})

	t.Run("task in flight is refused", func(t *testing.T) {
		t.Parallel()
		hold := make(chan struct{})
		rc := newRecorder(t, hold)
		q := ensured(t, options(host, queueID(t), rc.URL()), queuetest.Config())
		enqueue(t, q, queue.Task{Name: "in-flight", Body: []byte(`{}`)})
		testutil.WaitFor(t, waitTimeout, "the delivery", func() bool { return len(rc.requests()) == 1 })
		err := q.Purge(ctx)
		close(hold)
		if err == nil {
			t.Fatal("Purge with a task in flight = nil, want an error")
		}
		if _, err := q.GetQueue(ctx); err != nil {
			t.Errorf("GetQueue after the refused purge: %v (the emulator should be up)", err)
		}
	})

	t.Run("hard reset forgets names", func(t *testing.T) {
		t.Parallel()
		rc := newRecorder(t, nil)
		q := ensured(t, options(host, queueID(t), rc.URL()), queuetest.Config())
		task := queue.Task{Name: queue.TaskName("evt-1"), Body: []byte(`{}`)}
		enqueue(t, q, task)
		testutil.WaitFor(t, waitTimeout, "the task to finish", func() bool {
			_, err := q.GetTask(ctx, task.Name)
			return status.Code(err) == codes.FailedPrecondition // "existed recently"
		})
		if err := q.Enqueue(ctx, task); !errors.Is(err, queue.ErrAlreadyExists) {
			t.Fatalf("Enqueue after delivery = %v, want ErrAlreadyExists", err)
		}
		if err := q.Purge(ctx); err != nil {
			t.Fatalf("Purge: %v", err)
		}
		enqueue(t, q, task)
		testutil.WaitFor(t, waitTimeout, "the second delivery", func() bool { return len(rc.requests()) == 2 })
	})
}
