package infra_test

import (
	"strings"
	"testing"
)

// TestDispatcherCanRequeue: the dispatcher enqueues an event again on its
// last attempt (rate limited, or the status store down; ADR 0008, ADR 0010).
// In GCP that needs its own task URL, the tasks identity and audience, the
// enqueuer role on its region's queue, and actAs on the tasks identity;
// without them the requeue fails at run time and the event is
// dead-lettered, or, with the store down, dropped by the queue.
func TestDispatcherCanRequeue(t *testing.T) {
	t.Parallel()
	cfg := loadRepo(t)
	region := cfg.Modules["modules/region"]

	locals := region.Find("locals")
	var env string
	for _, l := range locals {
		if a := l.Body.Attributes["dispatcher_env"]; a != nil {
			env = l.Text(a.Expr.Range())
		}
	}
	if env == "" {
		t.Fatal("modules/region has no local dispatcher_env")
	}
	for _, want := range []string{
		`DISPATCH_URL          = "https://dispatcher-${var.project_number}.${var.region}.run.app/tasks/events"`,
		"DISPATCH_AUDIENCE     = var.dispatcher_audience",
		"TASKS_SERVICE_ACCOUNT = var.tasks_invoker_service_account",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("dispatcher_env lacks %s", want)
		}
	}
	// The URL is built for the service module's name.
	if calls := region.Find("module", "dispatcher"); len(calls) != 1 || attrText(calls[0], calls[0].Body, "name") != `"dispatcher"` {
		t.Error(`module "dispatcher" is not named "dispatcher": DISPATCH_URL would point elsewhere`)
	}

	var enqueuer bool
	for _, b := range region.Find("resource", "google_cloud_tasks_queue_iam_member") {
		if attrText(b, b.Body, "role") == `"roles/cloudtasks.enqueuer"` &&
			attrText(b, b.Body, "member") == `"serviceAccount:${var.dispatcher_service_account}"` &&
			strings.HasPrefix(attrText(b, b.Body, "name"), "google_cloud_tasks_queue.events.") {
			enqueuer = true
		}
	}
	if !enqueuer {
		t.Error("the dispatcher's account is not an enqueuer on its region's queue")
	}

	var actAs bool
	for _, b := range cfg.Modules["modules/eventrelay"].Find("resource", "google_service_account_iam_member") {
		if attrText(b, b.Body, "service_account_id") == "google_service_account.tasks_invoker.name" &&
			attrText(b, b.Body, "role") == `"roles/iam.serviceAccountUser"` &&
			strings.Contains(attrText(b, b.Body, "member"), `google_service_account.runtime["dispatcher"].email`) {
			actAs = true
		}
	}
	if !actAs {
		t.Error("the dispatcher's account may not act as the tasks identity: its requeued tasks could not carry an OIDC token")
	}
}
