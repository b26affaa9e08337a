// Package logging builds the slog logger every service uses: JSON on stdout
// with the field names Cloud Logging reads (severity, message, the trace and
// span of the current OpenTelemetry span), carried in the context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

type ctxKey struct{}

// Options configure a logger.
type Options struct {
	// Level is debug, info, warn or error (default info).
	Level string
	// ProjectID, when set, makes trace fields the full Cloud Logging form
	// projects/P/traces/T; otherwise the bare trace id is logged.
	ProjectID string
	// Text switches to human-readable text output (for relayctl dev).
	Text bool
}

// New builds a logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	level := parseLevel(o.Level)
	var h slog.Handler
	if o.Text {
		h = slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	} else {
		h = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudLoggingAttr})
	}
	return slog.New(&traceHandler{Handler: h, projectID: o.ProjectID})
}

// NewFromEnv builds the JSON logger for a service from LOG_LEVEL and
// GOOGLE_CLOUD_PROJECT.
func NewFromEnv() *slog.Logger {
	return New(os.Stdout, Options{Level: os.Getenv("LOG_LEVEL"), ProjectID: os.Getenv("GOOGLE_CLOUD_PROJECT")})
}

// WithLogger returns ctx carrying l.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the logger in ctx, or slog.Default().
func FromContext(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// cloudLoggingAttr renames slog's built-in keys to Cloud Logging's.
func cloudLoggingAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		if lvl, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(severity(lvl))
		}
	case slog.TimeKey:
		a.Key = "time"
	}
	return a
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}

// traceHandler adds the current span's ids to every record.
type traceHandler struct {
	slog.Handler
	projectID string
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		tid := sc.TraceID().String()
		if h.projectID != "" {
			tid = "projects/" + h.projectID + "/traces/" + tid
		}
		r.AddAttrs(
			slog.String("logging.googleapis.com/trace", tid),
			slog.String("logging.googleapis.com/spanId", sc.SpanID().String()),
			slog.Bool("logging.googleapis.com/trace_sampled", sc.IsSampled()),
		)
	}
	return h.Handler.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithAttrs(attrs), projectID: h.projectID}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	return &traceHandler{Handler: h.Handler.WithGroup(name), projectID: h.projectID}
}
