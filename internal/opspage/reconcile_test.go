package opspage

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/reconcile"
	"eventrelay/internal/status"
)

// fakeReconcile is a ReconcileSource whose last report the test sets.
type fakeReconcile struct {
	mu  sync.Mutex
	rep reconcile.Report
	ran bool
}

func (f *fakeReconcile) Snapshot() (reconcile.Report, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rep, f.ran
}

func (f *fakeReconcile) set(rep reconcile.Report) {
	f.mu.Lock()
	f.rep, f.ran = rep, true
	f.mu.Unlock()
}

// A finding whose id and reason are markup that must stay text.
const (
	rcEvilID  = `<b id="rc-pwned">x</b>`
	rcEvilWhy = `queued for 20m <script>document.body.dataset.pwned='rc'</script>`
)

// reconcileReport is a run at at that requeued one event, could not act on
// another and dead-lettered nothing.
func reconcileReport(at time.Time) reconcile.Report {
	return reconcile.Report{
		Started: at.Add(-42 * time.Millisecond), Finished: at,
		Policy: reconcile.PolicyRequeue, Grace: 15 * time.Minute,
		Read: 57, Idle: 3, Live: 1,
		Counts: map[reconcile.Action]int{reconcile.ActionRequeued: 1, reconcile.ActionStuck: 1},
		Findings: []reconcile.Finding{
			{EventID: "5f0c8e4a-9d2b-4c1e-8a7f-2b6d3e9c1a04", Status: status.Retrying, UpdatedAt: at.Add(-20 * time.Minute),
				MissingTask: "evt-5f0c8e4a-2", Cause: "task_missing", Why: "retrying for 20m, its task is not in the queue",
				Action: reconcile.ActionRequeued, NewTask: "evt-5f0c8e4a-3"},
			{EventID: rcEvilID, Status: status.Queued, UpdatedAt: at.Add(-20 * time.Minute),
				MissingTask: "evt-evil-0", Cause: "task_missing", Why: rcEvilWhy,
				Action: reconcile.ActionStuck, Error: "enqueue: queue unavailable"},
		},
	}
}

func TestReconcileView(t *testing.T) {
	t.Parallel()
	zero := map[reconcile.Action]int{"requeued": 0, "dead_lettered": 0, "found": 0, "adopted": 0, "stuck": 0, "moved": 0}
	many := reconcileReport(t0)
	many.Findings = nil
	for i := range 25 {
		many.Findings = append(many.Findings, reconcile.Finding{EventID: fmt.Sprintf("e%02d", i), Action: reconcile.ActionFound})
	}
	many.Counts, many.DryRun, many.Err = map[reconcile.Action]int{reconcile.ActionFound: 25}, true, "list queued: store down"
	cases := []struct {
		name string
		rep  reconcile.Report
		ran  bool
		want ReconcileView
	}{
		{
			name: "not run yet",
			want: ReconcileView{Counts: zero, Findings: []reconcile.Finding{}},
		},
		{
			name: "a run with findings",
			rep:  reconcileReport(t0),
			ran:  true,
			want: ReconcileView{Ran: true, Finished: t0, Took: 42 * time.Millisecond, Grace: 15 * time.Minute,
				Policy: reconcile.PolicyRequeue, Read: 57,
				Counts: map[reconcile.Action]int{"requeued": 1, "dead_lettered": 0, "found": 0, "adopted": 0, "stuck": 1, "moved": 0},
				Total:  2, Findings: reconcileReport(t0).Findings},
		},
		{
			name: "a dry run that stopped early: the first findings only",
			rep:  many,
			ran:  true,
			want: ReconcileView{Ran: true, Finished: t0, Took: 42 * time.Millisecond, Grace: 15 * time.Minute,
				Policy: reconcile.PolicyRequeue, DryRun: true, Read: 57,
				Counts: map[reconcile.Action]int{"requeued": 0, "dead_lettered": 0, "found": 25, "adopted": 0, "stuck": 0, "moved": 0},
				Total:  25, Findings: many.Findings[:MaxReconcileFindings], Error: "list queued: store down"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, *reconcileView(tc.rep, tc.ran)); diff != "" {
				t.Errorf("reconcileView (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOverviewShowsTheReconciler(t *testing.T) {
	t.Parallel()
	rc := &fakeReconcile{}
	p, _, _ := newPage(t, func(o *Options) { o.Reconcile = rc })

	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	if ov.Reconcile == nil || ov.Reconcile.Ran || len(ov.Reconcile.Counts) != len(ReconcileActions) {
		t.Fatalf("overview before the first run: reconcile = %+v, want not run with every action counted", ov.Reconcile)
	}

	rc.set(reconcileReport(t0))
	ov = decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	want := reconcileView(reconcileReport(t0), true)
	if diff := cmp.Diff(want, ov.Reconcile); diff != "" {
		t.Errorf("overview reconcile (-want +got):\n%s", diff)
	}

	// Without a ReconcileSource the overview has none.
	p2, _, _ := newPage(t, nil)
	if ov := decode[Overview](t, get(t, p2.Handler(), "/api/overview")); ov.Reconcile != nil {
		t.Errorf("overview without a reconcile source: %+v", ov.Reconcile)
	}
}

func TestPageShowsTheReconciler(t *testing.T) {
	t.Parallel()
	rc := &fakeReconcile{}
	p, _, _ := newPage(t, func(o *Options) { o.Reconcile = rc })

	body := get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<section class="panel reconcile" id="reconcile" aria-labelledby="reconcile-h">`,
		`<dd id="rc-at">not yet</dd>`,
		`<td colspan="5">The reconciler has not run yet.</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page before the first run lacks %s", want)
		}
	}

	rc.set(reconcileReport(t0))
	body = get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<dd id="rc-at">` + clock(t0) + `</dd>`,
		`<dd id="rc-took">42 ms</dd>`,
		`<dd id="rc-grace">15m</dd>`,
		`<dd id="rc-policy">requeue</dd>`,
		`<dd id="rc-read">57</dd>`,
		`<dt>requeued</dt><dd id="rc-count-requeued" class="nonzero rc-requeued">1</dd>`,
		`<dt>dead-lettered</dt><dd id="rc-count-dead_lettered">0</dd>`,
		`<dt>stuck</dt><dd id="rc-count-stuck" class="nonzero rc-stuck">1</dd>`,
		`<tr data-event-id="5f0c8e4a-9d2b-4c1e-8a7f-2b6d3e9c1a04">`,
		`<a href="?event=5f0c8e4a-9d2b-4c1e-8a7f-2b6d3e9c1a04" title="5f0c8e4a-9d2b-4c1e-8a7f-2b6d3e9c1a04">5f0c8e4a-9d2b-4c1e-8a7f-2b6d3e9c1a04</a>`,
		`<td class="mono task" title="evt-5f0c8e4a-2">evt-5f0c8e4a-2</td>`,
		`<td class="mono task" title="evt-5f0c8e4a-3">evt-5f0c8e4a-3</td>`,
		`<span class="badge rc-requeued">requeued</span>`,
		`>retrying for 20m, its task is not in the queue</td>`,
		`<span class="badge rc-stuck">stuck</span>`,
		`<span class="muted">(enqueue: queue unavailable)</span>`,
		`&lt;b id=&#34;rc-pwned&#34;&gt;x&lt;/b&gt;`,
		`queued for 20m &lt;script&gt;`,
		`<p id="rc-more" class="muted" hidden>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page after a run lacks %s", want)
		}
	}
	for _, bad := range []string{`<b id="rc-pwned">`, `<script>document.body.dataset.pwned='rc'`} {
		if strings.Contains(body, bad) {
			t.Errorf("markup from a finding became markup: %s", bad)
		}
	}

	// Without a ReconcileSource the panel is hidden and empty.
	p2, _, _ := newPage(t, nil)
	body = get(t, p2.Handler(), "/").Body.String()
	if !strings.Contains(body, `id="reconcile" aria-labelledby="reconcile-h" hidden>`) || strings.Contains(body, `id="rc-at"`) {
		t.Error("the reconciler panel shows without a reconcile source")
	}
}
