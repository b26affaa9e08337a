package opspage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/event"
	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
	"eventrelay/internal/status"
	"eventrelay/internal/testutil"
)

// Browser test settings.
const (
	// ChromiumPath is where Debian's chromium package installs the browser.
	ChromiumPath = "/usr/bin/chromium"
	// RequireBrowserEnv set to 1 (CI sets it) turns a missing Chromium from
	// a skip into a failure.
	RequireBrowserEnv = "REQUIRE_BROWSER"
	// ScreenshotEnv names the PNG file the browser test writes; unset, it
	// writes into the test's temporary directory.
	ScreenshotEnv = "OPSPAGE_SCREENSHOT"
)

// The events the browser test looks up: one retried and delivered, and one
// whose id and reason are markup that must never run.
const (
	retriedID = "7c1e2a90-5b3d-4f6e-9a21-0c8d4e6f1b35"
	traceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	evilID    = `<img src=x onerror="document.body.dataset.pwned='id'">`
	evilWhy   = `target rejected the event: <script>document.body.dataset.pwned='reason'</script>`
)

// TestBrowser serves the page over HTTP with an embedded store that events keep
// flowing into, and drives it in headless Chromium: the table fills and
// updates, both charts draw, the rate card follows the governor and its
// circuit breaker, the reconciler panel shows its last run and findings
// (each a link to the event's lookup), a lookup shows the right timeline
// and spans, the status filter works, and markup in the data stays text. It
// saves a screenshot (see ScreenshotEnv).
func TestBrowser(t *testing.T) {
	ctx := newBrowser(t)

	store, q := newSpyStore(t), &fakeQueue{}
	spans := &fakeSpans{traces: map[string][]Span{traceID: retriedSpans(time.Now().Add(-30 * time.Second))}}
	rate := &fakeRate{}
	rate.set(holdingSnapshot(time.Now().Add(-20 * time.Second)))
	rc := &fakeReconcile{} // not run yet: its first report comes while the page is open
	shards := &fakeShards{}
	shards.set(twoShards()[0]) // one queue; its second shard comes while the page is open
	page, err := New(Options{
		Store: store, Queue: q, Spans: spans, Rate: rate, Reconcile: rc, Shards: shards,
		Limit:    func() float64 { return 10 },
		TraceURL: func(id string) string { return "https://console.cloud.google.com/traces/list?tid=" + id },
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two minutes of history, then events keep flowing in real time.
	now := time.Now()
	seed(t, store, now)
	src := &sim{store: store, q: q}
	src.backfill(context.Background(), page, 2*time.Minute, now)
	feedCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { src.run(feedCtx) })
	wg.Go(func() { _ = page.Run(feedCtx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	srv := httptest.NewServer(page.Handler())
	t.Cleanup(srv.Close)

	problems := watchConsole(t, ctx)
	do(t, ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(srv.URL))

	// The table fills, and both charts draw.
	waitFor(t, ctx, "20 rows in the events table", `document.querySelectorAll('#events tbody tr[data-event-id]').length === 20`)
	waitFor(t, ctx, "both charts drawn with the history", `+document.getElementById('chart-rate').dataset.points >= 100 &&
		+document.getElementById('chart-backlog').dataset.points >= 100`)
	waitFor(t, ctx, "the counters filled", `+document.getElementById('total-received').textContent >= 20 &&
		+document.getElementById('total-dead').textContent === 1 && document.getElementById('conn').textContent === 'live'`)

	// The governor holds the queue below its ceiling: the banner says so,
	// and the rate card shows the live rate beside the ceiling.
	waitFor(t, ctx, "the governor's banner", `!document.getElementById('rate-banner').hidden &&
		document.getElementById('rate-banner').textContent.includes('holds the queue at 2.4/s')`)
	if got := eval[string](t, ctx, `document.getElementById('queue-rate').textContent + ' | ' + document.getElementById('queue-rate-sub').textContent +
		' | ' + document.getElementById('queue-burst').textContent + ' | ' + document.getElementById('breaker').textContent`); got != "2.4/s | ceiling 10/s · governor on | burst 5 · first second after idle ≤ 7.4 tasks | breaker closed" {
		t.Errorf("rate card = %q", got)
	}
	// Over one queue there is no shard table; over 2 shards, the rate
	// card lists each shard's live rate, burst and backlog, and its burst
	// is the shards' sum (the sharded queue's Control).
	if !eval[bool](t, ctx, `document.getElementById('shards').hidden`) {
		t.Error("the shard table shows over one queue")
	}
	shards.setStats(twoShardStats()...)
	shards.set(twoShards()...)
	sharded := holdingSnapshot(time.Now().Add(-20 * time.Second))
	sharded.Live.Rate, sharded.Live.Burst = 3.75, 8
	rate.set(sharded)
	waitFor(t, ctx, "the shard table", `!document.getElementById('shards').hidden &&
		document.querySelectorAll('#shards tbody tr').length === 2`)
	waitFor(t, ctx, "the shards' summed burst on the card", `document.getElementById('queue-burst').textContent ===
		'burst 8 over 2 shards · first second after idle ≤ 11.75 tasks'`)
	rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#shards tbody tr'), (tr) =>
		Array.from(tr.cells, (td) => td.textContent).join(' | '))`)
	if diff := cmp.Diff([]string{"relay-events | 2.5/s | 5 | no | 12 | 2 | 3.5 s", "relay-events-1 | 1.25/s | 3 | paused | 480 | 0 | 95.0 s"}, rows); diff != "" {
		t.Errorf("shard table in the browser (-want +got):\n%s", diff)
	}
	// A shard whose stats cannot be read says so, the error in its title.
	broken := twoShardStats()
	broken[1].Err = errors.New("stats down")
	shards.setStats(broken...)
	waitFor(t, ctx, "the unreadable shard stats", `Array.from(document.querySelectorAll('#shards tbody tr:nth-child(2) td'),
		(td) => td.textContent + '@' + td.title).join(' | ') === 'relay-events-1@relay-events-1 | 1.25/s@ | 3@ | paused@ | unreadable@stats down'`)
	// A shard whose settings cannot be read: one cell over rate, burst and
	// paused, the error in its title.
	shards.set(twoShards()[0], shardedqueue.ShardControl{Name: "relay-events-1", Err: errors.New("shard down")})
	waitFor(t, ctx, "the unreadable shard settings", `Array.from(document.querySelectorAll('#shards tbody tr:nth-child(2) td'),
		(td) => td.textContent + '@' + td.title + '@' + td.colSpan).join(' | ') === 'relay-events-1@relay-events-1@1 | unreadable@shard down@3 | unreadable@stats down@3'`)
	shards.set(twoShards()...)
	// The rate card holds the table on a row of its own, the page's width.
	if !eval[bool](t, ctx, `(() => {
		const card = document.getElementById('rate-card').getBoundingClientRect();
		const list = document.querySelector('.cards dl').getBoundingClientRect();
		return Math.abs(card.width - list.width) < 1;
	})()`) {
		t.Error("the rate card over a sharded queue is not as wide as the cards")
	}

	// The reconciler has not run yet; when it has, the panel shows the
	// last run and its findings, markup as text.
	if got := eval[string](t, ctx, `document.getElementById('rc-at').textContent + ' | ' +
		document.querySelector('#findings tbody').textContent.trim()`); got != "not yet | The reconciler has not run yet." {
		t.Errorf("reconciler panel before its first run = %q", got)
	}
	rep := reconcileReport(time.Now().Add(-5 * time.Second))
	rep.Findings[0].EventID = retriedID
	rc.set(rep)
	waitFor(t, ctx, "the reconciler's findings", `!document.getElementById('reconcile').hidden &&
		document.querySelectorAll('#findings tbody tr[data-event-id]').length === 2`)
	facts := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('.rc-facts > div'), (d) =>
		d.querySelector('dt').textContent + ': ' + d.querySelector('dd').textContent)`)
	wantFacts := []string{
		"Last run: " + clock(rep.Finished), "Took: 42 ms", "Grace: 15m", "Policy: requeue", "Records read: 57",
		"requeued: 1", "dead-lettered: 0", "found: 0", "adopted: 0", "stuck: 1", "moved: 0",
	}
	if diff := cmp.Diff(wantFacts, facts); diff != "" {
		t.Errorf("reconciler facts in the browser (-want +got):\n%s", diff)
	}
	findings := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#findings tbody tr'), (tr) =>
		Array.from(tr.cells, (td) => td.textContent).join(' | '))`)
	wantFindings := []string{
		retriedID + " | evt-5f0c8e4a-2 | evt-5f0c8e4a-3 | requeued | retrying for 20m, its task is not in the queue",
		rcEvilID + " | evt-evil-0 |  | stuck | " + rcEvilWhy + " (enqueue: queue unavailable)",
	}
	if diff := cmp.Diff(wantFindings, findings); diff != "" {
		t.Errorf("reconciler findings in the browser (-want +got):\n%s", diff)
	}
	if got := eval[string](t, ctx, `document.querySelector('#findings tbody tr a').getAttribute('href')`); got != "?event="+retriedID {
		t.Errorf("finding link = %q, want the event's lookup", got)
	}

	// The breaker opens: the card turns red and the banner says until when.
	rate.set(breakerOpenSnapshot(time.Now()))
	waitFor(t, ctx, "the open breaker", `document.getElementById('rate-card').classList.contains('bad') &&
		!document.getElementById('rate-card').classList.contains('warn') &&
		document.getElementById('breaker-state').textContent === 'open' &&
		document.getElementById('breaker-state').classList.contains('breaker-open') &&
		/^ since \d\d:\d\d:\d\d$/.test(document.getElementById('breaker-since').textContent) &&
		document.getElementById('rate-banner').textContent.includes('circuit breaker is open')`)
	// Probing: amber again.
	half := holdingSnapshot(time.Now())
	half.Breaker = governor.Breaker{State: governor.BreakerHalfOpen, Since: time.Now()}
	rate.set(half)
	waitFor(t, ctx, "the half-open breaker", `document.getElementById('rate-card').classList.contains('warn') &&
		!document.getElementById('rate-card').classList.contains('bad') &&
		document.getElementById('breaker-state').textContent === 'half-open'`)
	rate.set(holdingSnapshot(time.Now().Add(-20 * time.Second)))

	// The table and the charts keep updating as events arrive.
	first := eval[string](t, ctx, `document.querySelector('#events tbody tr').dataset.eventId`)
	last := eval[string](t, ctx, `document.getElementById('chart-rate').dataset.last`)
	waitFor(t, ctx, "a newer event at the top of the table",
		fmt.Sprintf(`document.querySelector('#events tbody tr').dataset.eventId !== %s`, jsString(first)))
	waitFor(t, ctx, "newer samples in both charts", fmt.Sprintf(
		`+document.getElementById('chart-rate').dataset.last > %[1]s && +document.getElementById('chart-backlog').dataset.last > %[1]s`, last))

	// A lookup shows the event's timeline and its spans, indented by parent.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("lookup-id"), retriedID), chromedp.Click(chromedp.CSS("#lookup-form button")))
	waitFor(t, ctx, "the timeline", `document.querySelectorAll('#timeline li').length === 5`)
	timeline := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#timeline li'), (li) =>
		[li.querySelector('.step'), li.querySelector('.badge'), li.querySelector('.detail')]
			.map((e) => (e ? e.textContent : '')).join(' | '))`)
	wantTimeline := []string{
		"received |  | ",
		"attempt 1 | rate-limited | HTTP 429 · 2 ms · target rate limited (429), retry after 1s",
		"attempt 2 | retryable | HTTP 503 · 10.0 s · target unavailable (503)",
		"attempt 3 | delivered | HTTP 200 · 14 ms",
		"delivered |  | after 4.2s",
	}
	if diff := cmp.Diff(wantTimeline, timeline); diff != "" {
		t.Errorf("timeline in the browser (-want +got):\n%s", diff)
	}
	gotSpans := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#spans li'), (li) =>
		li.dataset.depth + ' ' + li.querySelector('.span-name').textContent)`)
	wantSpans := []string{
		"0 POST /events", "1 queue.enqueue", "1 POST /tasks/events",
		"2 receiveEvent", "1 POST /tasks/events", "2 receiveEvent", "1 POST /tasks/events", "2 receiveEvent",
	}
	if diff := cmp.Diff(wantSpans, gotSpans); diff != "" {
		t.Errorf("spans in the browser (-want +got):\n%s", diff)
	}
	if got := eval[string](t, ctx, `location.search`); got != "?event="+retriedID {
		t.Errorf("location.search = %q, want the looked-up id", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('.facts a').href`); got != "https://console.cloud.google.com/traces/list?tid="+traceID {
		t.Errorf("trace link = %q", got)
	}

	screenshot(t, ctx)

	// Over one queue, no shard table.
	shards.set(twoShards()[0])
	waitFor(t, ctx, "the shard table gone for one queue", `document.getElementById('shards').hidden &&
		document.querySelectorAll('#shards tbody tr').length === 0`)
	if !eval[bool](t, ctx, `document.getElementById('shards').getBoundingClientRect().height === 0`) {
		t.Error("the shard table takes room over one queue")
	}

	// Back at the ceiling, the banner goes at the next poll.
	rate.set(governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: time.Now(), Ceiling: 10})
	waitFor(t, ctx, "the banner gone at the ceiling", `document.getElementById('rate-banner').hidden &&
		document.getElementById('queue-rate').textContent === '10/s' && !document.getElementById('rate-card').classList.contains('warn') &&
		!document.getElementById('rate-card').classList.contains('bad') && document.getElementById('breaker').textContent === 'breaker closed'`)

	// The status filter shows the failed events, the markup one among them,
	// as text.
	do(t, ctx, chromedp.SetValue(chromedp.ID("status-filter"), "failed"))
	eval[bool](t, ctx, `document.getElementById('status-filter').dispatchEvent(new Event('change'))`)
	waitFor(t, ctx, "the markup event in the failed list", fmt.Sprintf(
		`Array.from(document.querySelectorAll('#events tbody tr')).some((tr) => tr.dataset.eventId === %s)`, jsString(evilID)))
	if eval[bool](t, ctx, `Array.from(document.querySelectorAll('#events tbody tr [class~="badge"]')).some((b) => b.textContent !== 'failed')`) {
		t.Error("the failed filter shows events in another status")
	}
	if got := eval[string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('#events tbody tr')).find((tr) => tr.dataset.eventId === %s).querySelector('a').textContent`, jsString(evilID))); got != evilID {
		t.Errorf("the markup id shows as %q, want it as text", got)
	}

	// Looking it up keeps it text too.
	do(t, ctx, chromedp.SetValue(chromedp.ID("lookup-id"), evilID), chromedp.Click(chromedp.CSS("#lookup-form button")))
	waitFor(t, ctx, "the markup event's timeline", `document.querySelectorAll('#timeline li').length === 3`)
	if got := eval[string](t, ctx, `document.querySelector('#timeline .tl-failed .detail').textContent`); got != evilWhy {
		t.Errorf("the markup reason shows as %q, want it as text", got)
	}
	if eval[bool](t, ctx, `document.body.dataset.pwned !== undefined || document.querySelector('main img, main script') !== null ||
		document.getElementById('rc-pwned') !== null`) {
		t.Error("markup from the data ran or became elements")
	}

	// A finding's event id shows that event in the lookup.
	do(t, ctx, chromedp.Click(chromedp.CSS("#findings tbody tr a")))
	waitFor(t, ctx, "the finding's event looked up", fmt.Sprintf(`document.querySelectorAll('#timeline li').length === 5 &&
		document.getElementById('lookup-id').value === %[1]s && location.search === '?event=' + %[1]s`, jsString(retriedID)))

	for _, p := range problems() {
		t.Errorf("browser console: %s", p)
	}
}

// newBrowser starts headless Chromium for t, or skips (fails under
// REQUIRE_BROWSER=1) when it is not installed.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		msg := fmt.Sprintf("no Chromium at %s (install the Debian package: apt-get install -y chromium): %v", ChromiumPath, err)
		if os.Getenv(RequireBrowserEnv) == "1" {
			t.Fatalf("%s (%s=1 forbids skipping)", msg, RequireBrowserEnv)
		}
		t.Skip(msg)
	}
	profile := t.TempDir() // removed after the browser below has stopped
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	)
	// The whole browser lives at most this long, so a hung page cannot hang
	// the test run.
	root, cancelRoot := context.WithTimeout(context.Background(), 3*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelRoot() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition from Go: chromedp's own Poll builds
// its predicate with new Function, which the page's CSP forbids.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	var (
		ok  bool
		err error
	)
	defer func() {
		if t.Failed() {
			t.Logf("%s: last result %v, error %v", what, ok, err)
		}
	}()
	testutil.WaitFor(t, 45*time.Second, what, func() bool {
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		return err == nil && ok
	})
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// watchConsole collects uncaught exceptions, console errors and browser log
// errors (a CSP violation is one); call the result at the end of the test.
func watchConsole(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var got []string
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				msg = "console.error"
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				msg = fmt.Sprintf("%s %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if msg != "" {
			mu.Lock()
			got = append(got, msg)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the console: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, struct{}{}); err != nil {
		t.Fatalf("enable the log domain: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// screenshot saves the page as a PNG to $OPSPAGE_SCREENSHOT, or into the
// test's temporary directory.
func screenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := os.Getenv(ScreenshotEnv)
	if path == "" {
		path = filepath.Join(t.TempDir(), "opspage.png")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot (%d bytes) saved to %s", len(png), path)
}

// seed stores the events the test looks up, and one dead-lettered one.
func seed(t testing.TB, store *spyStore, now time.Time) {
	at := now.Add(-30 * time.Second)
	delivered := at.Add(4200 * time.Millisecond)
	store.put(t, status.Record{
		EventID: retriedID, Status: status.Delivered,
		Event:      event.Event{ID: retriedID, Name: "test event", Body: "test body", Timestamp: at},
		ReceivedAt: at, UpdatedAt: delivered, DeliveredAt: &delivered, TraceID: traceID,
		Attempts: []status.Attempt{
			{Number: 1, At: at.Add(80 * time.Millisecond), Outcome: status.OutcomeRateLimited, HTTPStatus: 429,
				Error: "target rate limited (429), retry after 1s", Duration: 2 * time.Millisecond, TraceID: traceID},
			{Number: 2, At: at.Add(1100 * time.Millisecond), Outcome: status.OutcomeRetryable, HTTPStatus: 503,
				Error: "target unavailable (503)", Duration: 10002 * time.Millisecond, TraceID: traceID},
			{Number: 3, At: at.Add(4180 * time.Millisecond), Outcome: status.OutcomeDelivered, HTTPStatus: 200,
				Duration: 14 * time.Millisecond, TraceID: traceID},
		},
	})
	failedAt := now.Add(-40 * time.Second)
	store.put(t, status.Record{
		EventID: evilID, Status: status.Failed,
		Event:      event.Event{ID: evilID, Name: "test event", Body: "test body", Timestamp: failedAt},
		ReceivedAt: failedAt, UpdatedAt: failedAt.Add(time.Second), Reason: evilWhy,
		Attempts: []status.Attempt{{Number: 1, At: failedAt.Add(time.Second), Outcome: status.OutcomePermanent,
			HTTPStatus: 400, Error: evilWhy, Duration: 3 * time.Millisecond}},
	})
	deadAt := now.Add(-50 * time.Second)
	store.put(t, status.Record{
		EventID: "0d5f3b7a-1c2e-4b8d-a6f9-3e7c1d9b2a40", Status: status.DeadLettered,
		Event:      event.Event{ID: "0d5f3b7a-1c2e-4b8d-a6f9-3e7c1d9b2a40", Name: "test event", Body: "test body", Timestamp: deadAt},
		ReceivedAt: deadAt, UpdatedAt: deadAt.Add(20 * time.Second), Reason: "last attempt failed: target unavailable (503)",
	})
}

func retriedSpans(at time.Time) []Span {
	span := func(id, parent, name, svc string, start, dur time.Duration, st string) Span {
		return Span{TraceID: traceID, SpanID: id, ParentID: parent, Name: name, Service: svc,
			Start: at.Add(start), Duration: dur, Status: st}
	}
	return []Span{
		span("a1", "", "POST /events", "ingest", 0, 4*time.Millisecond, ""),
		span("a2", "a1", "queue.enqueue", "ingest", time.Millisecond, 2*time.Millisecond, ""),
		span("b1", "a1", "POST /tasks/events", "dispatcher", 80*time.Millisecond, 5*time.Millisecond, "error: rate limited"),
		span("b2", "b1", "receiveEvent", "targetmock", 81*time.Millisecond, 2*time.Millisecond, "error: 429"),
		span("c1", "a1", "POST /tasks/events", "dispatcher", 1100*time.Millisecond, 10003*time.Millisecond, "error: 503"),
		span("c2", "c1", "receiveEvent", "targetmock", 1101*time.Millisecond, 10002*time.Millisecond, "error: 503"),
		span("d1", "a1", "POST /tasks/events", "dispatcher", 4180*time.Millisecond, 16*time.Millisecond, "ok"),
		span("d2", "d1", "receiveEvent", "targetmock", 4181*time.Millisecond, 14*time.Millisecond, "ok"),
	}
}

// sim plays a source whose rate changes into a target that takes 10/s: a
// burst at 20/s builds a backlog, 3/s lets it drain at the limit, then 6–10/s
// keeps it near empty. It writes the status records and queue stats the
// queue and dispatcher would: oldest first, every 17th first attempt is
// rate-limited and retried about a second later, every 29th delivery is
// refused permanently.
type sim struct {
	store         *spyStore
	q             *fakeQueue
	start         time.Time
	pending       []task // queued or retrying, in dispatch order
	sent, taken   int
	inAcc, outAcc float64
}

type task struct {
	id       string
	received time.Time
}

// simStep is the simulation's time step.
const simStep = 50 * time.Millisecond

func (s *sim) rate(elapsed time.Duration) float64 {
	switch secs := elapsed.Seconds(); {
	case secs < 35:
		return 20
	case secs < 95:
		return 3
	default:
		return 8 + 2*math.Sin((secs-95)/3)
	}
}

// step advances the simulation to now by one simStep.
func (s *sim) step(ctx context.Context, now time.Time) {
	s.inAcc += s.rate(now.Sub(s.start)) * simStep.Seconds()
	for ; s.inAcc >= 1; s.inAcc-- {
		id := fakeUUID(s.sent)
		s.sent++
		_, _ = s.store.Create(ctx, status.Record{
			EventID: id, TraceID: fakeTrace(s.sent),
			Event:      event.Event{ID: id, Name: "test event", Body: "test body", Timestamp: now},
			ReceivedAt: now, UpdatedAt: now,
		})
		s.pending = append(s.pending, task{id, now})
	}
	s.outAcc += 10 * simStep.Seconds()
	for ; s.outAcc >= 1 && len(s.pending) > 0; s.outAcc-- {
		next := s.pending[0]
		s.pending = s.pending[1:]
		s.taken++
		r, err := s.store.Get(ctx, next.id)
		if err != nil {
			continue
		}
		a := status.Attempt{Number: len(r.Attempts) + 1, At: now, Outcome: status.OutcomeDelivered, HTTPStatus: 200,
			Duration: time.Duration(4+s.taken%9) * time.Millisecond, TraceID: r.TraceID}
		u := status.Update{Status: status.Delivered, At: now, Attempt: &a}
		switch {
		case s.taken%17 == 0 && len(r.Attempts) == 0:
			a.Outcome, a.HTTPStatus, a.Error = status.OutcomeRateLimited, 429, "target rate limited (429), retry after 1s"
			u.Status = status.Retrying
			s.pending = slices.Insert(s.pending, min(len(s.pending), 10), next)
		case s.taken%29 == 0:
			a.Outcome, a.HTTPStatus, a.Error = status.OutcomePermanent, 400, "target rejected the event: invalid body"
			u = status.Update{Status: status.Failed, At: now, Attempt: &a, Reason: a.Error}
		}
		_, _ = s.store.Apply(ctx, next.id, u)
	}
	s.outAcc = min(s.outAcc, 1) // no credit piles up while the backlog is empty
	st := queue.Stats{Backlog: int64(len(s.pending)), InFlight: int64(min(len(s.pending), 1))}
	for _, p := range s.pending {
		st.OldestAge = max(st.OldestAge, now.Sub(p.received))
	}
	s.q.set(st, nil)
}

// backfill plays the simulation over the d before now, sampling the page
// once a period, so that the charts open with history.
func (s *sim) backfill(ctx context.Context, p *Page, d time.Duration, now time.Time) {
	s.start = now.Add(-d)
	next := s.start
	for at := s.start; at.Before(now); at = at.Add(simStep) {
		s.step(ctx, at)
		if !at.Before(next) {
			_ = p.sample(ctx, at)
			next = next.Add(p.o.SampleEvery)
		}
	}
}

// run plays the simulation in real time until ctx is done.
func (s *sim) run(ctx context.Context) {
	tick := time.NewTicker(simStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.step(ctx, now)
		}
	}
}

func fakeUUID(i int) string {
	s := fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "event-%d", i)))
	return s[0:8] + "-" + s[8:12] + "-4" + s[13:16] + "-a" + s[17:20] + "-" + s[20:32]
}

func fakeTrace(i int) string {
	return fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "trace-%d", i)))[:32]
}
