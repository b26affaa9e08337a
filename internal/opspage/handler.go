package opspage

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"eventrelay/internal/governor"
	"eventrelay/internal/logging"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/serving"
	"eventrelay/internal/status"
)

// Problem slugs (appended to serving.ProblemTypeBase) of the failures the
// page answers itself; an unknown path is serving.SlugNotFound, a method
// other than GET or HEAD serving.SlugMethodNotAllowed. They are stable.
const (
	SlugEventNotFound    = "event-not-found"   // 404: no record for the id
	SlugInvalidStatus    = "invalid-status"    // 400: ?status= is not a status
	SlugInvalidLimit     = "invalid-limit"     // 400: ?limit= out of range
	SlugInvalidID        = "invalid-event-id"  // 400: empty id
	SlugStoreUnavailable = "store-unavailable" // 503: the status store failed
)

// contentSecurityPolicy allows only the page's own script, style and API:
// with it, even a markup injection could not run a script.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed web
var webFS embed.FS

var (
	staticFS = mustSub(webFS, "web/static")
	pageTmpl = template.Must(template.New("index.html").Funcs(template.FuncMap{
		"clock":     clock,
		"stamp":     stamp,
		"ms":        millis,
		"attempt":   func(e TimelineEntry) bool { return e.Kind == KindAttempt },
		"statuses":  func() []status.Status { return status.All },
		"label":     label,
		"depth":     func(depth int) int { return min(depth, maxDepthClass) },
		"spanErr":   func(st string) bool { return strings.HasPrefix(st, "error") },
		"human":     human,
		"actions":   func() []reconcile.Action { return ReconcileActions },
		"rateClass": rateClass,
	}).ParseFS(webFS, "web/index.html"))
)

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Handler serves the page, its static files and its JSON API (see the
// package doc). It uses relative URLs throughout, so it can be mounted
// under a prefix with http.StripPrefix. Panics are recovered as 500
// problems; the request context's logger (logging.FromContext) is used.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	readOnly := serving.MethodNotAllowed(http.MethodGet, http.MethodHead)
	get := func(pattern string, h http.HandlerFunc) {
		mux.Handle("GET "+pattern, h)
		mux.Handle(pattern, readOnly)
	}
	get("/{$}", p.handlePage)
	get("/static/{file}", handleStatic)
	get("/api/overview", p.handleOverview)
	get("/api/events", p.handleEvents)
	get("/api/events/{id...}", p.handleEvent)
	mux.Handle("/", serving.NotFound())
	return securityHeaders(serving.Recover(mux))
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if st, err := fs.Stat(staticFS, name); err != nil || st.IsDir() {
		serving.NotFound().ServeHTTP(w, r)
		return
	}
	http.ServeFileFS(w, r, staticFS, name)
}

func storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	logging.FromContext(r.Context()).ErrorContext(r.Context(), "ops page: "+what+" failed", "error", err.Error())
	serving.WriteProblem(w, http.StatusServiceUnavailable, SlugStoreUnavailable, "Status store unavailable",
		"The status store could not be read; try again.", nil)
}

func (p *Page) handleOverview(w http.ResponseWriter, r *http.Request) {
	ov, err := p.overview(r.Context())
	if err != nil {
		storeFailed(w, r, "read counts", err)
		return
	}
	serving.WriteJSON(w, http.StatusOK, ov)
}

func (p *Page) handleEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventsQuery(r.URL.Query())
	if bad, ok := errors.AsType[*errBadQuery](err); ok {
		serving.WriteProblem(w, http.StatusBadRequest, bad.slug, "Invalid query", bad.msg, nil)
		return
	}
	list, err := p.events(r.Context(), q)
	if err != nil {
		storeFailed(w, r, "list events", err)
		return
	}
	serving.WriteJSON(w, http.StatusOK, list)
}

func (p *Page) handleEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" {
		serving.WriteProblem(w, http.StatusBadRequest, SlugInvalidID, "Invalid event id",
			"Give an event id: /api/events/{id}.", nil)
		return
	}
	d, err := p.detail(r.Context(), id)
	switch {
	case errors.Is(err, status.ErrNotFound):
		serving.WriteProblem(w, http.StatusNotFound, SlugEventNotFound, "Event not found",
			"No status record has this event id.", nil)
		return
	case err != nil:
		storeFailed(w, r, "get event", err)
		return
	}
	if d.SpansError != "" {
		logging.FromContext(r.Context()).WarnContext(r.Context(), "ops page: span lookup failed",
			"event_id", id, "error", d.SpansError)
	}
	serving.WriteJSON(w, http.StatusOK, d)
}

// pageData is what index.html renders before the script takes over.
type pageData struct {
	Overview                        Overview
	Delivered, Failed, DeadLettered int64
	Latest                          *Sample
	Events                          []EventSummary
	SpansEnabled                    bool
	// Lookup is the ?event= id; Detail its record, or LookupError why not.
	Lookup      string
	Detail      *EventDetail
	LookupError string
}

func (p *Page) handlePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var data pageData
	var err error
	if data.Overview, err = p.overview(ctx); err != nil {
		storeFailed(w, r, "read counts", err)
		return
	}
	data.Delivered = data.Overview.Totals[status.Delivered]
	data.Failed = data.Overview.Totals[status.Failed]
	data.DeadLettered = data.Overview.Totals[status.DeadLettered]
	data.SpansEnabled = p.o.Spans != nil
	if n := len(data.Overview.Samples); n > 0 {
		data.Latest = &data.Overview.Samples[n-1]
	}
	list, err := p.events(ctx, status.Query{Limit: DefaultEventsLimit})
	if err != nil {
		storeFailed(w, r, "list events", err)
		return
	}
	data.Events = list.Events
	if id := strings.TrimSpace(r.URL.Query().Get("event")); id != "" {
		data.Lookup = id
		d, err := p.detail(ctx, id)
		switch {
		case errors.Is(err, status.ErrNotFound):
			data.LookupError = "No event with this id."
		case err != nil:
			logging.FromContext(ctx).ErrorContext(ctx, "ops page: get event failed", "event_id", id, "error", err.Error())
			data.LookupError = "The status store could not be read; try again."
		default:
			data.Detail = &d
		}
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		logging.FromContext(ctx).ErrorContext(ctx, "ops page: render failed", "error", err.Error())
		serving.WriteProblem(w, http.StatusInternalServerError, serving.SlugInternal, "Internal error", "", nil)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// Formatting helpers shared by the template (the script mirrors them).

func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("15:04:05")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

// millis formats a duration as the page shows it: "14 ms", or "10.0 s"
// from a second on.
func millis(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// human formats a longer duration in whole units: "15m", "1m30s", "2h",
// "45s"; under a second as millis does.
func human(d time.Duration) string {
	if d < time.Second {
		return millis(d)
	}
	d = d.Round(time.Second)
	h, m, sec := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// rateClass is the rate card's extra class: " bad" while the circuit
// breaker is open, " warn" while the governor holds the queue below its
// ceiling or the breaker probes the target (half-open).
func rateClass(v *RateView) string {
	switch {
	case v == nil:
		return ""
	case v.Breaker == governor.BreakerOpenState:
		return " bad"
	case v.Holding || v.Breaker == governor.BreakerHalfOpen:
		return " warn"
	}
	return ""
}

// label turns a status or outcome into words: dead_lettered → dead-lettered.
func label(s any) string { return strings.ReplaceAll(fmt.Sprint(s), "_", "-") }

// maxDepthClass is the deepest span indentation the stylesheet has a class
// for (depth-0 … depth-8); deeper spans share it.
const maxDepthClass = 8
