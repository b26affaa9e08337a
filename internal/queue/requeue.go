package queue

import (
	"regexp"
	"strconv"
	"strings"
)

// requeueSuffix matches what may follow TaskName(id) in one of the event's
// task names: a replay's -r<n>, then a requeue's -q<n>.
var requeueSuffix = regexp.MustCompile(`^(-r[1-9][0-9]{0,8})?(?:-q([1-9][0-9]{0,8}))?$`)

// RequeueTaskName names the task that carries an event on after the task
// named current (the delivery's X-CloudTasks-TaskName) used its last
// attempt while the target was rate limiting: current with its requeue
// count "-q<n>" counted up, so ev-…, ev-…-q1, ev-…-q2, and for a replay
// ev-…-r1, ev-…-r1-q1.
//
// The name depends only on current, so the same last attempt delivered
// twice yields the same name and the queue deduplicates the second
// enqueue; and it never repeats along one event's chain of tasks. ok is
// false when current is not one of the event's task names (missing or
// foreign): a name made up then could collide with an earlier, finished
// requeue and be refused as a duplicate, losing the event, so the caller
// must not requeue.
func RequeueTaskName(eventID, current string) (name string, ok bool) {
	base := TaskName(eventID)
	rest, found := strings.CutPrefix(current, base)
	if !found {
		return "", false
	}
	m := requeueSuffix.FindStringSubmatch(rest)
	if m == nil {
		return "", false
	}
	n := 0
	if m[2] != "" {
		var err error
		if n, err = strconv.Atoi(m[2]); err != nil {
			return "", false
		}
	}
	return base + m[1] + "-q" + strconv.Itoa(n+1), true
}
