package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	taskspb "cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"eventrelay/internal/devstack"
)

// vanishEmbedded removes up to n waiting tasks from the embedded queue's
// database at path, exactly as the queue finishes a task (sqlitequeue's
// finish): the message row goes, and the task's row keeps its name (the
// dedup memory) with no message and a finish time. The stack may be
// running: one write transaction (BEGIN IMMEDIATE) serialises it with the
// queue's own writes, and it takes only tasks not in flight, the most
// recently enqueued first (the back of the backlog). It returns the names
// of the tasks it removed.
func vanishEmbedded(ctx context.Context, path string, n int) (_ []string, err error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	rows, err := conn.QueryContext(ctx, `select name, message_id from sqlitequeue_tasks
		where message_id is not null and leased = 0 and finished_at is null
		order by enqueued_at desc limit ?`, n)
	if err != nil {
		return nil, fmt.Errorf("list waiting tasks: %w", err)
	}
	var names, ids []string
	for rows.Next() {
		var name, id string
		if err := rows.Scan(&name, &id); err != nil {
			rows.Close()
			return nil, err
		}
		names, ids = append(names, name), append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list waiting tasks: %w", err)
	}
	now := time.Now().UnixNano()
	for i, name := range names {
		if _, err := conn.ExecContext(ctx, `delete from goqite where id = ?`, ids[i]); err != nil {
			return nil, fmt.Errorf("remove the message of %s: %w", name, err)
		}
		if _, err := conn.ExecContext(ctx, `update sqlitequeue_tasks
			set message_id = null, leased = 0, finished_at = ? where name = ?`, now, name); err != nil {
			return nil, fmt.Errorf("finish %s: %w", name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return names, nil
}

// vanishCloudTasks deletes up to n tasks scheduled at least ahead from now
// from a Cloud Tasks queue (the emulator at endpoint) through the API, the
// latest scheduled first. queuePath is projects/P/locations/L/queues/Q. It
// returns the task ids (the last segment of each name) it deleted.
//
// Cloud Tasks deletes any task that is scheduled or dispatched
// (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues.tasks/delete);
// the emulator only cancels a task before its schedule time: one already
// due waits for a dispatch token and is delivered anyway. Hence ahead.
func vanishCloudTasks(ctx context.Context, endpoint, queuePath string, n int, ahead time.Duration) (_ []string, err error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to the Cloud Tasks emulator at %s: %w", endpoint, err)
	}
	defer conn.Close()
	client, err := cloudtasks.NewClient(ctx, option.WithGRPCConn(conn))
	if err != nil {
		return nil, fmt.Errorf("cloud tasks client: %w", err)
	}
	after := time.Now().Add(ahead)
	var waiting []*taskspb.Task
	// The emulator marshals a task while its dispatch may write the task's
	// headers: a list now and then comes back garbled. Ask again.
	for try := 1; ; try++ {
		waiting, err = listScheduledAfter(ctx, client, queuePath, after)
		if err == nil || try == 5 || !sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(waiting, func(i, j int) bool {
		return waiting[i].GetScheduleTime().AsTime().After(waiting[j].GetScheduleTime().AsTime())
	})
	var gone []string
	for _, t := range waiting {
		if len(gone) == n {
			break
		}
		if err := client.DeleteTask(ctx, &taskspb.DeleteTaskRequest{Name: t.GetName()}); err != nil {
			// Dispatched and finished between the list and the delete.
			continue
		}
		gone = append(gone, t.GetName()[strings.LastIndex(t.GetName(), "/")+1:])
	}
	return gone, nil
}

// listScheduledAfter lists the tasks of queuePath scheduled after t.
func listScheduledAfter(ctx context.Context, client *cloudtasks.Client, queuePath string, t time.Time) ([]*taskspb.Task, error) {
	var out []*taskspb.Task
	it := client.ListTasks(ctx, &taskspb.ListTasksRequest{Parent: queuePath})
	for {
		task, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list the tasks of %s: %w", queuePath, err)
		}
		if task.GetScheduleTime().AsTime().After(t) {
			out = append(out, task)
		}
	}
}

// vanishTasks removes up to n waiting tasks behind the stack's back, on
// whichever engine it runs: the rows in the embedded queue's file, or
// DeleteTask on the Cloud Tasks emulator for tasks scheduled at least
// ahead from now.
func vanishTasks(ctx context.Context, env scenarioEnv, st *devstack.Stack, n int, ahead time.Duration) ([]string, error) {
	if !env.gcp() {
		return vanishEmbedded(ctx, filepath.Join(env.DataDir, devstack.QueueFile), n)
	}
	return vanishCloudTasks(ctx, env.GCP.TasksEndpoint, queuePath(env.GCP, st.QueueConfig.Name), n, ahead)
}

// queuePath names the Cloud Tasks queue a stack on the GCP engines uses,
// with devstack's defaults for the project and the location.
func queuePath(gcp devstack.GCPOptions, queueID string) string {
	project, location := gcp.Project, gcp.Location
	if project == "" {
		project = "eventrelay-dev"
	}
	if location == "" {
		location = "us-central1"
	}
	return fmt.Sprintf("projects/%s/locations/%s/queues/%s", project, location, queueID)
}
