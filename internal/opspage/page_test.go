package opspage

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"eventrelay/internal/event"
	"eventrelay/internal/queue"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

func TestPageHTML(t *testing.T) {
	t.Parallel()
	p, store, q := newPage(t, nil)
	store.addN(t, "evt", 25, status.Delivered, t0.Add(-time.Hour))
	store.put(t, retried("evt-retried"))
	store.addN(t, "bad", 2, status.Failed, t0)
	q.set(queue.Stats{Backlog: 7}, nil)
	mustSample(t, p, t0)
	mustSample(t, p, t0.Add(time.Second))

	rec := get(t, p.Handler(), "/")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d; body %s", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want script-src 'self'", csp)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<html lang="en">`,
		`<link rel="stylesheet" href="static/ops.css">`,
		`<script src="static/ops.js" defer></script>`,
		`data-sample-every-ms="1000"`,
		`<canvas id="chart-rate" data-points="0" role="img"`,
		`<canvas id="chart-backlog" data-points="0" role="img"`,
		`<table id="events">`,
		`<th scope="col">Event ID</th>`,
		`<th scope="col">Status</th>`,
		`<label for="lookup-id">Event ID</label>`,
		`<input id="lookup-id" name="event" type="search"`,
		`<label for="status-filter">Status</label>`,
		`<form id="lookup-form" method="get" action="" role="search">`,
		`<dd id="total-failed" class="nonzero">2</dd>`,
		`<dd id="total-dead">0</dd>`,
		`<dd id="backlog">7</dd>`,
		`<dd id="limit">10/s</dd>`,
		`<tr data-event-id="evt-retried">`,
		`<a href="?event=evt-retried" title="evt-retried">evt-retried</a>`,
		`<span class="badge st-delivered">delivered</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if n := strings.Count(body, "<tr data-event-id="); n != DefaultEventsLimit {
		t.Errorf("table has %d rows, want %d", n, DefaultEventsLimit)
	}
	if strings.Contains(body, `id="timeline"`) {
		t.Error("page shows a timeline without ?event=")
	}
}

func TestPageLookup(t *testing.T) {
	t.Parallel()
	spans := &fakeSpans{traces: map[string][]Span{"4bf92f3577b34da6a3ce929d0e0e4736": {
		{SpanID: "a", Name: "POST /events", Service: "ingest", Start: t0},
		{SpanID: "b", ParentID: "a", Name: "dispatch", Service: "dispatcher", Start: t0.Add(time.Millisecond), Status: "error: timeout"},
	}}}
	p, store, _ := newPage(t, func(o *Options) {
		o.Spans = spans
		o.TraceURL = func(id string) string { return "https://trace.example/" + id }
	})
	store.put(t, retried("evt-1"))
	h := p.Handler()

	body := get(t, h, "/?event=evt-1").Body.String()
	for _, want := range []string{
		`<input id="lookup-id" name="event" type="search" value="evt-1"`,
		`<ol class="timeline" id="timeline">`,
		`<span class="step">attempt 1</span>`,
		`<span class="badge oc-rate_limited">rate-limited</span>`,
		`HTTP 429 · 3 ms · target rate limited`,
		`<span class="step">attempt 3</span>`,
		`<span class="step">delivered</span>`,
		`after 2.5s`,
		`<a href="https://trace.example/4bf92f3577b34da6a3ce929d0e0e4736" target="_blank" rel="noopener noreferrer">`,
		`<ul class="spans" id="spans">`,
		`<li class="depth-0">`,
		`<li class="depth-1 span-error">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("lookup page lacks %s", want)
		}
	}

	body = get(t, h, "/?event=nope").Body.String()
	if !strings.Contains(body, "No event with this id.") || strings.Contains(body, `id="timeline"`) {
		t.Error("lookup of an unknown id: want the not-found notice and no timeline")
	}
}

// TestNoScriptInjection stores an event whose id, name, reason and error
// are markup, and checks that neither the page nor the JSON carries it raw.
func TestNoScriptInjection(t *testing.T) {
	t.Parallel()
	const (
		evilID   = `<script>alert("id")</script>`
		evilName = `<img src=x onerror=alert(1)>`
		evilErr  = `</span><script>alert(2)</script>`
	)
	p, store, _ := newPage(t, func(o *Options) { o.Spans = &fakeSpans{} })
	store.put(t, status.Record{
		EventID:    evilID,
		Status:     status.Failed,
		Event:      event.Event{ID: evilID, Name: evilName, Body: "b", Timestamp: t0},
		ReceivedAt: t0,
		UpdatedAt:  t0,
		Reason:     evilErr,
		TraceID:    "abc",
		Attempts:   []status.Attempt{{Number: 1, At: t0, Outcome: status.OutcomePermanent, HTTPStatus: 400, Error: evilErr}},
	})
	h := p.Handler()

	for _, target := range []string{"/", "/?event=" + url.QueryEscape(evilID)} {
		body := get(t, h, target).Body.String()
		for _, raw := range []string{evilID, evilName, evilErr, "<script>alert", "<img src=x"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: page contains %q unescaped", target, raw)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;") {
			t.Errorf("GET %s: page lacks the escaped id", target)
		}
	}
	if body := get(t, h, "/").Body.String(); !strings.Contains(body, `href="?event=%3cscript%3ealert%28%22id%22%29%3c%2fscript%3e"`) {
		t.Errorf("the row link does not percent-encode the id")
	}

	for _, target := range []string{"/api/events", "/api/events/" + url.PathEscape(evilID)} {
		rec := get(t, h, target)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: status %d", target, rec.Code)
		}
		raw := rec.Body.String()
		if strings.ContainsAny(raw, "<>") {
			t.Errorf("GET %s: JSON contains < or >: %s", target, raw)
		}
		if !strings.Contains(raw, `\u003cscript\u003e`) {
			t.Errorf("GET %s: JSON lacks the escaped id", target)
		}
	}
	// The escaping is only on the wire: the id decodes back as it was.
	d := decode[EventDetail](t, get(t, h, "/api/events/"+url.PathEscape(evilID)))
	if d.Record.EventID != evilID || d.Timeline[1].Error != evilErr {
		t.Errorf("decoded id %q, error %q; want them as stored", d.Record.EventID, d.Timeline[1].Error)
	}
}

// TestScriptUsesNoMarkupSinks guards the script's rule: data reaches the
// DOM through textContent and attributes only.
func TestScriptUsesNoMarkupSinks(t *testing.T) {
	t.Parallel()
	js, err := fs.ReadFile(staticFS, "ops.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(js), sink) {
			t.Errorf("ops.js uses %s", sink)
		}
	}
}

func TestStaticAndRouting(t *testing.T) {
	t.Parallel()
	p, _, _ := newPage(t, nil)
	h := p.Handler()
	cases := []struct {
		name     string
		method   string
		target   string
		wantCode int
		wantSlug string
		wantType string
	}{
		{name: "script", method: "GET", target: "/static/ops.js", wantCode: 200, wantType: "text/javascript; charset=utf-8"},
		{name: "stylesheet", method: "GET", target: "/static/ops.css", wantCode: 200, wantType: "text/css; charset=utf-8"},
		{name: "head of the page", method: "HEAD", target: "/", wantCode: 200},
		{name: "missing static file", method: "GET", target: "/static/nope.js", wantCode: 404, wantSlug: serving.SlugNotFound},
		{name: "static directory", method: "GET", target: "/static/", wantCode: 404, wantSlug: serving.SlugNotFound},
		{name: "template is not served", method: "GET", target: "/static/index.html", wantCode: 404, wantSlug: serving.SlugNotFound},
		{name: "unknown path", method: "GET", target: "/metrics", wantCode: 404, wantSlug: serving.SlugNotFound},
		{name: "POST overview", method: "POST", target: "/api/overview", wantCode: 405, wantSlug: serving.SlugMethodNotAllowed},
		{name: "DELETE event", method: "DELETE", target: "/api/events/x", wantCode: 405, wantSlug: serving.SlugMethodNotAllowed},
		{name: "POST page", method: "POST", target: "/", wantCode: 405, wantSlug: serving.SlugMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, quietRequest(tc.method, tc.target))
			if tc.wantSlug != "" {
				wantProblem(t, rec, tc.wantCode, tc.wantSlug)
				if tc.wantCode == 405 && rec.Header().Get("Allow") != "GET, HEAD" {
					t.Errorf("Allow = %q, want GET, HEAD", rec.Header().Get("Allow"))
				}
				return
			}
			if rec.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantCode)
			}
			if tc.wantType != "" && rec.Header().Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tc.wantType)
			}
		})
	}
}

// TestMountedUnderPrefix checks the page works behind http.StripPrefix:
// its links are relative.
func TestMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	p, store, _ := newPage(t, nil)
	store.addN(t, "evt", 1, status.Queued, t0)
	mux := http.NewServeMux()
	mux.Handle("/ops/", http.StripPrefix("/ops", p.Handler()))
	body := get(t, mux, "/ops/").Body.String()
	if strings.Contains(body, `href="/`) || strings.Contains(body, `src="/`) {
		t.Error("page has an absolute link; it would break under a prefix")
	}
	rec := get(t, mux, "/ops/api/events")
	var list EventList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Events) != 1 {
		t.Errorf("GET /ops/api/events: %d %s", rec.Code, rec.Body.String())
	}
}
