package cloudtasksqueue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	cloudtasksbeta "cloud.google.com/go/cloudtasks/apiv2beta3"
	betapb "cloud.google.com/go/cloudtasks/apiv2beta3/cloudtaskspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"eventrelay/internal/queue"
)

var (
	_ queue.Queue       = (*Queue)(nil)
	_ queue.StatsReader = (*Queue)(nil)
)

// ErrNoStats is returned by Stats when the server answered without queue
// statistics, as the Cloud Tasks emulator does (docs/lld/queue.md,
// "Emulator differences from production").
var ErrNoStats = errors.New("cloudtasksqueue: the server reports no queue statistics")

// maxRPCTimeout bounds every call. Cloud Tasks refuses RPC deadlines more
// than 30s away ("The deadline cannot be more than 30s in the future").
const maxRPCTimeout = 30 * time.Second

// Production limits of a task's dispatch deadline for HTTP targets.
const (
	minDispatchDeadline = 15 * time.Second
	maxDispatchDeadline = 30 * time.Minute
)

var (
	// Cloud Tasks' resource ids: a task id is 1–500 of [A-Za-z0-9_-]; a queue
	// id 1–100 of [A-Za-z0-9-]; a location id letters, digits and hyphens; a
	// project id (possibly domain-scoped) also dots and colons.
	taskIDRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,500}$`)
	queueIDRe  = regexp.MustCompile(`^[A-Za-z0-9-]{1,100}$`)
	locationRe = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	projectRe  = regexp.MustCompile(`^[A-Za-z0-9:.-]+$`)
)

// Options configure a Queue.
type Options struct {
	// Project, Location and Queue (the queue id, e.g. "events") name the
	// queue: projects/Project/locations/Location/queues/Queue.
	Project, Location, Queue string
	// Target is the URL every task is POSTed to: the dispatcher's task URL.
	Target string
	// ServiceAccountEmail, when set, makes Cloud Tasks put an OIDC token for
	// this service account on each delivery, for Audience (Target when
	// empty). The caller needs iam.serviceAccounts.actAs on it.
	ServiceAccountEmail, Audience string
	// DispatchDeadline is set explicitly on every task: how long Cloud Tasks
	// waits for the dispatcher's answer. Google accepts 15s to 30m; the
	// emulator accepts any positive value.
	DispatchDeadline time.Duration
	// Endpoint is "" for Google. Otherwise it is the Cloud Tasks emulator's
	// host:port, reached over insecure gRPC without credentials, and the
	// emulator's differences (docs/lld/queue.md, "Emulator differences
	// from production") are worked around.
	Endpoint string
	// ClientOptions are appended to the client's options (credentials,
	// user agent...).
	ClientOptions []option.ClientOption
}

// validate reports every problem in o, after defaults are applied.
func (o Options) validate() error {
	var errs []error
	if !projectRe.MatchString(o.Project) {
		errs = append(errs, fmt.Errorf("project %q must be a Cloud project id", o.Project))
	}
	if !locationRe.MatchString(o.Location) {
		errs = append(errs, fmt.Errorf("location %q must be a Cloud location id", o.Location))
	}
	if !queueIDRe.MatchString(o.Queue) {
		errs = append(errs, fmt.Errorf("queue id %q must be 1-100 of [A-Za-z0-9-]", o.Queue))
	}
	if u, err := url.Parse(o.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q must be an http(s) URL with a host", o.Target))
	}
	if o.Audience != "" && o.ServiceAccountEmail == "" {
		errs = append(errs, errors.New("an audience needs a service account email"))
	}
	switch {
	case o.DispatchDeadline <= 0:
		errs = append(errs, fmt.Errorf("dispatch deadline must be > 0, got %v", o.DispatchDeadline))
	case o.Endpoint == "" && (o.DispatchDeadline < minDispatchDeadline || o.DispatchDeadline > maxDispatchDeadline):
		errs = append(errs, fmt.Errorf("dispatch deadline must be between %v and %v on Cloud Tasks, got %v",
			minDispatchDeadline, maxDispatchDeadline, o.DispatchDeadline))
	}
	return errors.Join(errs...)
}

// Queue enqueues tasks on one Cloud Tasks queue. It is safe for concurrent
// use.
type Queue struct {
	client   *cloudtasks.Client
	beta     *cloudtasksbeta.Client // statistics only exist in v2beta3
	conn     *grpc.ClientConn       // the emulator connection, owned here; nil on Google
	emulator bool
	parent   string // projects/P/locations/L
	name     string // parent + /queues/Q
	target   string
	token    *taskspb.HttpRequest_OidcToken // nil without a service account
	deadline *durationpb.Duration
}

// New returns a Queue for o's queue. It does not create the queue (see
// EnsureQueue) nor contact the server: the connection is opened lazily.
func New(ctx context.Context, o Options) (*Queue, error) {
	if o.ServiceAccountEmail != "" && o.Audience == "" {
		o.Audience = o.Target
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("cloudtasksqueue: invalid options: %w", err)
	}
	q := &Queue{
		emulator: o.Endpoint != "",
		parent:   fmt.Sprintf("projects/%s/locations/%s", o.Project, o.Location),
		target:   o.Target,
		deadline: durationpb.New(o.DispatchDeadline),
	}
	q.name = q.parent + "/queues/" + o.Queue
	if o.ServiceAccountEmail != "" {
		q.token = &taskspb.HttpRequest_OidcToken{OidcToken: &taskspb.OidcToken{
			ServiceAccountEmail: o.ServiceAccountEmail,
			Audience:            o.Audience,
		}}
	}

	opts := o.ClientOptions
	if q.emulator {
		conn, err := grpc.NewClient(o.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("cloudtasksqueue: connect to the emulator at %s: %w", o.Endpoint, err)
		}
		q.conn = conn
		opts = append([]option.ClientOption{option.WithGRPCConn(conn)}, opts...)
	}
	var err error
	if q.client, err = cloudtasks.NewClient(ctx, opts...); err != nil {
		return nil, errors.Join(fmt.Errorf("cloudtasksqueue: new client: %w", err), q.Close())
	}
	if q.beta, err = cloudtasksbeta.NewClient(ctx, opts...); err != nil {
		return nil, errors.Join(fmt.Errorf("cloudtasksqueue: new v2beta3 client: %w", err), q.Close())
	}
	return q, nil
}

// Close closes the connections. Calls after Close fail.
func (q *Queue) Close() error {
	var errs []error
	if q.beta != nil && !q.emulator { // on the emulator both share q.conn
		errs = append(errs, q.beta.Close())
	}
	if q.client != nil && !q.emulator {
		errs = append(errs, q.client.Close())
	}
	if q.conn != nil {
		errs = append(errs, q.conn.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cloudtasksqueue: close: %w", err)
	}
	return nil
}

// Name returns the queue's full resource name,
// projects/P/locations/L/queues/Q.
func (q *Queue) Name() string { return q.name }

// TaskPath returns the full resource name of the task named taskID (a
// queue.TaskName) on this queue.
func (q *Queue) TaskPath(taskID string) string { return q.name + "/tasks/" + taskID }

// Enqueue creates one HTTP task: a POST of t.Body to the target with
// Content-Type application/json, t.Header (traceparent, tracestate...), the
// OIDC token when configured, the dispatch deadline, and t.NotBefore as the
// task's schedule_time when set. t.Name must be a valid task id, which
// queue.TaskName always is.
//
// It returns nil once Cloud Tasks has stored the task; ErrAlreadyExists when
// the name was taken (an accepted duplicate); an error wrapping
// ErrUnavailable on Unavailable, DeadlineExceeded or ResourceExhausted, or
// when ctx ends; any other failure wrapped. The call is bounded by ctx's
// deadline, capped at 30s (Cloud Tasks' own limit).
func (q *Queue) Enqueue(ctx context.Context, t queue.Task) error {
	if !taskIDRe.MatchString(t.Name) {
		return fmt.Errorf("cloudtasksqueue: task name %q must be 1-500 of [A-Za-z0-9_-]", t.Name)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cloudtasksqueue: enqueue %s: %w: %w", t.Name, queue.ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	_, err := q.client.CreateTask(ctx, q.request(t))
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.AlreadyExists:
		return fmt.Errorf("cloudtasksqueue: enqueue %s: %w", t.Name, queue.ErrAlreadyExists)
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return fmt.Errorf("cloudtasksqueue: enqueue %s: %w: %w", t.Name, queue.ErrUnavailable, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("cloudtasksqueue: enqueue %s: %w: %w", t.Name, queue.ErrUnavailable, err)
	}
	return fmt.Errorf("cloudtasksqueue: enqueue %s: %w", t.Name, err)
}

// request builds the CreateTaskRequest for t.
func (q *Queue) request(t queue.Task) *taskspb.CreateTaskRequest {
	hr := &taskspb.HttpRequest{
		Url:        q.target,
		HttpMethod: taskspb.HttpMethod_POST,
		Headers:    q.headers(t.Header),
		Body:       t.Body,
	}
	if q.token != nil {
		hr.AuthorizationHeader = q.token
	}
	task := &taskspb.Task{
		Name:             q.TaskPath(t.Name),
		DispatchDeadline: q.deadline,
		MessageType:      &taskspb.Task_HttpRequest{HttpRequest: hr},
	}
	if !t.NotBefore.IsZero() {
		// A past schedule time means now, to Cloud Tasks as to the port.
		task.ScheduleTime = timestamppb.New(t.NotBefore)
	}
	return &taskspb.CreateTaskRequest{Parent: q.name, Task: task}
}

// headers flattens h into Cloud Tasks' one-value-per-header map, values
// joined with ", ". Headers the queue owns are dropped rather than sent
// twice: X-CloudTasks-* (the emulator would add its own under another
// spelling), Content-Type (always application/json), Authorization when an
// OIDC token is configured, and Host, Content-Length and User-Agent, which
// Cloud Tasks sets itself.
func (q *Queue) headers(h http.Header) map[string]string {
	out := make(map[string]string, len(h)+1)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic when two spellings collide
	for _, k := range keys {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case strings.HasPrefix(ck, "X-Cloudtasks-"),
			ck == "Content-Type", ck == "Host", ck == "Content-Length", ck == "User-Agent",
			ck == "Authorization" && q.token != nil:
			continue
		}
		if len(h[k]) == 0 {
			continue
		}
		v := strings.Join(h[k], ", ")
		if prev, ok := out[ck]; ok {
			v = prev + ", " + v
		}
		out[ck] = v
	}
	out["Content-Type"] = "application/json"
	return out
}

// Stats reports the queue's backlog from Cloud Tasks' queue statistics
// (v2beta3 GetQueue with read mask "stats"): Backlog is tasks_count,
// InFlight concurrent_dispatches_count, OldestAge the age of
// oldest_estimated_arrival_time. These are estimates that lag by seconds to
// minutes. The emulator has no statistics: Stats then returns an error
// wrapping ErrNoStats, never zeros.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, maxRPCTimeout)
	defer cancel()
	got, err := q.beta.GetQueue(ctx, &betapb.GetQueueRequest{
		Name:     q.name,
		ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "stats"}},
	})
	if err != nil {
		if q.emulator && status.Code(err) == codes.Unimplemented {
			return queue.Stats{}, fmt.Errorf("%w: the emulator serves no v2beta3 API: %w", ErrNoStats, err)
		}
		return queue.Stats{}, fmt.Errorf("cloudtasksqueue: get stats of %s: %w", q.name, err)
	}
	s := got.GetStats()
	if s == nil {
		return queue.Stats{}, fmt.Errorf("%w (queue %s)", ErrNoStats, q.name)
	}
	out := queue.Stats{Backlog: s.GetTasksCount(), InFlight: s.GetConcurrentDispatchesCount()}
	if t := s.GetOldestEstimatedArrivalTime(); t != nil && s.GetTasksCount() > 0 {
		out.OldestAge = max(0, time.Since(t.AsTime()))
	}
	return out, nil
}
