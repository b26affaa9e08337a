package sourcemock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-envconfig"
	"golang.org/x/oauth2"
	"google.golang.org/api/idtoken"

	"eventrelay/internal/logging"
	"eventrelay/internal/serving"
)

// maxRequestBytes bounds a SendEvents request body; a valid one is tiny.
const maxRequestBytes = 4 << 10

// FunctionConfig configures the SendEvents function, from the environment
// of the Cloud Run function (or of `sourcemock -serve`).
type FunctionConfig struct {
	// IngestURL is ingest's base URL.
	IngestURL string `env:"INGEST_URL"`
	// Token is a static bearer token, for local runs and tests. It is never
	// logged.
	Token string `env:"TOKEN"`
	// TokenAudience, when set (and Token is not), makes the function send
	// Google-signed ID tokens for this audience, minted as its own service
	// account (on GCP, by the metadata server). Deployed, it is ingest's
	// audience (ingest_audience), which ingest checks (AUTH_AUDIENCE).
	TokenAudience string `env:"TOKEN_AUDIENCE"`
	// MaxCount bounds the events of one request.
	MaxCount int `env:"MAX_COUNT, default=10000"`
	// MaxRate bounds the rate of one request, in events per second.
	MaxRate float64 `env:"MAX_RATE, default=1000"`
	// MaxDuration bounds how long one request may send; set it below the
	// function's request timeout.
	MaxDuration time.Duration `env:"MAX_DURATION, default=5m"`
	// Concurrency and Deadline are as in Config.
	Concurrency int           `env:"SOURCE_CONCURRENCY, default=64"`
	Deadline    time.Duration `env:"SOURCE_DEADLINE, default=500ms"`
}

// NewFunctionConfig reads a FunctionConfig from l and validates it.
func NewFunctionConfig(ctx context.Context, l envconfig.Lookuper) (FunctionConfig, error) {
	var c FunctionConfig
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return FunctionConfig{}, fmt.Errorf("read sourcemock function config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return FunctionConfig{}, fmt.Errorf("invalid sourcemock function config: %w", err)
	}
	return c, nil
}

// Validate reports every problem in c.
func (c FunctionConfig) Validate() error {
	var errs []error
	if _, err := eventsURL(c.IngestURL); err != nil {
		errs = append(errs, fmt.Errorf("INGEST_URL: %w", err))
	}
	if c.Token != "" && c.TokenAudience != "" {
		errs = append(errs, errors.New("set TOKEN (a static token) or TOKEN_AUDIENCE (mint ID tokens), not both"))
	}
	if c.TokenAudience != "" && strings.TrimSpace(c.TokenAudience) != c.TokenAudience {
		errs = append(errs, fmt.Errorf("TOKEN_AUDIENCE %q has surrounding spaces", c.TokenAudience))
	}
	if c.MaxCount < 1 {
		errs = append(errs, fmt.Errorf("MAX_COUNT must be >= 1, got %d", c.MaxCount))
	}
	if !(c.MaxRate > 0) || math.IsInf(c.MaxRate, 0) {
		errs = append(errs, fmt.Errorf("MAX_RATE must be a number > 0, got %v", c.MaxRate))
	}
	if c.MaxDuration <= 0 {
		errs = append(errs, fmt.Errorf("MAX_DURATION must be > 0, got %v", c.MaxDuration))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("SOURCE_CONCURRENCY must be >= 1, got %d", c.Concurrency))
	}
	if c.Deadline <= 0 {
		errs = append(errs, fmt.Errorf("SOURCE_DEADLINE must be > 0, got %v", c.Deadline))
	}
	return errors.Join(errs...)
}

// SendRequest is the body of a SendEvents call: send Count events at Rate
// per second, or, when Burst > 0, Burst at once every BurstInterval.
type SendRequest struct {
	Count         int     `json:"count"`
	Rate          float64 `json:"rate"`
	Burst         int     `json:"burst,omitempty"`
	BurstInterval string  `json:"burst_interval,omitempty"`
}

// StaticToken returns a token func that always returns tok, or nil (send
// no token) when tok is empty.
func StaticToken(tok string) func(context.Context) (string, error) {
	if tok == "" {
		return nil
	}
	return func(context.Context) (string, error) { return tok, nil }
}

// TokenSourceFunc returns a source of ID tokens for audience; the token's
// AccessToken is the ID token. IDTokenSource (idtoken.NewTokenSource: the
// metadata server on GCP, or the credentials of
// GOOGLE_APPLICATION_CREDENTIALS) is the real one; tests pass their own.
type TokenSourceFunc func(ctx context.Context, audience string) (oauth2.TokenSource, error)

// IDTokenSource is idtoken.NewTokenSource as a TokenSourceFunc.
func IDTokenSource(ctx context.Context, audience string) (oauth2.TokenSource, error) {
	return idtoken.NewTokenSource(ctx, audience)
}

// TokenFunc returns the token func c asks for: its static Token when set;
// else Google-signed ID tokens for TokenAudience from newSource
// (IDTokenSource when nil); else nil, which sends no token.
func (c FunctionConfig) TokenFunc(newSource TokenSourceFunc) func(context.Context) (string, error) {
	switch {
	case c.Token != "":
		return StaticToken(c.Token)
	case c.TokenAudience != "":
		if newSource == nil {
			newSource = IDTokenSource
		}
		return IDToken(c.TokenAudience, newSource)
	}
	return nil
}

// IDToken returns a token func that sends ID tokens for audience from the
// source newSource makes. The source is made on the first call, and again
// on the next call after a failure; it outlives the call's context (it
// refreshes tokens later), but each call returns when its context is done
// even if the source has not answered. The source caches tokens until they
// near expiry, as idtoken's does.
func IDToken(audience string, newSource TokenSourceFunc) func(context.Context) (string, error) {
	var (
		mu  sync.Mutex
		src oauth2.TokenSource
	)
	source := func(ctx context.Context) (oauth2.TokenSource, error) {
		mu.Lock()
		defer mu.Unlock()
		if src != nil {
			return src, nil
		}
		ts, err := newSource(context.WithoutCancel(ctx), audience)
		if err != nil {
			return nil, fmt.Errorf("ID token source for audience %q: %w", audience, err)
		}
		src = ts
		return src, nil
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	return func(ctx context.Context) (string, error) {
		ts, err := source(ctx)
		if err != nil {
			return "", err
		}
		ch := make(chan result, 1) // the goroutine never blocks on it
		go func() {
			tok, err := ts.Token()
			ch <- result{tok, err}
		}()
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("ID token for audience %q: %w", audience, context.Cause(ctx))
		case r := <-ch:
			if r.err != nil {
				return "", fmt.Errorf("ID token for audience %q: %w", audience, r.err)
			}
			if r.tok == nil || r.tok.AccessToken == "" {
				return "", fmt.Errorf("ID token for audience %q: the source returned an empty token", audience)
			}
			return r.tok.AccessToken, nil
		}
	}
}

// FunctionFromEnv is the SendEvents function as deployed: its configuration
// is read from l once, on the first request (so that a missing variable
// answers 500 "misconfigured" rather than crashing the instance at start).
func FunctionFromEnv(l envconfig.Lookuper) http.HandlerFunc {
	load := sync.OnceValues(func() (http.HandlerFunc, error) {
		cfg, err := NewFunctionConfig(context.Background(), l)
		if err != nil {
			return nil, err
		}
		return Handler(cfg, nil, nil), nil
	})
	return func(w http.ResponseWriter, r *http.Request) {
		h, err := load()
		if err != nil {
			logging.FromContext(r.Context()).ErrorContext(r.Context(), "sourcemock function misconfigured", "error", err)
			serving.WriteProblem(w, http.StatusInternalServerError, "misconfigured", "Function misconfigured", err.Error(), nil)
			return
		}
		h(w, r)
	}
}

// Handler is the SendEvents HTTP function: a POST with a JSON SendRequest
// runs one bounded send against cfg.IngestURL and answers 200 with the
// Summary as JSON. token nil uses cfg.TokenFunc(nil): the static TOKEN, or
// ID tokens for TOKEN_AUDIENCE from the metadata server, or none. client
// nil is NewSender's.
//
// Errors are problem+json: 405 not POST, 415 not JSON, 413 body too large,
// 400 malformed or invalid request (including one that would run longer
// than cfg.MaxDuration), 502 no token.
func Handler(cfg FunctionConfig, token func(context.Context) (string, error), client *http.Client) http.HandlerFunc {
	if token == nil {
		token = cfg.TokenFunc(nil)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			serving.WriteProblem(w, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", "use POST", nil)
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			serving.WriteProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "send application/json", nil)
			return
		}
		req, status, slug, detail := decodeSendRequest(w, r, cfg)
		if status != 0 {
			serving.WriteProblem(w, status, slug, http.StatusText(status), detail, nil)
			return
		}
		scfg := Config{
			IngestURL:   cfg.IngestURL,
			Rate:        req.Rate,
			Burst:       req.Burst,
			Count:       req.Count,
			Duration:    cfg.MaxDuration,
			Concurrency: cfg.Concurrency,
			Deadline:    cfg.Deadline,
		}
		if req.BurstInterval != "" {
			scfg.BurstInterval, _ = time.ParseDuration(req.BurstInterval) // checked in decodeSendRequest
		}
		sender, err := NewSender(scfg, token, client)
		if err != nil {
			serving.WriteProblem(w, http.StatusBadRequest, "invalid-request", "Invalid request", err.Error(), nil)
			return
		}
		log := logging.FromContext(ctx)
		log.InfoContext(ctx, "sending events", "count", req.Count, "rate", req.Rate, "burst", req.Burst)
		sum, err := sender.Run(ctx)
		if err != nil {
			log.ErrorContext(ctx, "send events", "error", err)
			serving.WriteProblem(w, http.StatusBadGateway, "token-unavailable", "No token for ingest", err.Error(), nil)
			return
		}
		log.InfoContext(ctx, "sent events", slog.Int("sent", sum.Sent), slog.Int("ok", sum.OK),
			slog.Int("failed", sum.Failed()), slog.Duration("p99", sum.P99))
		serving.WriteJSON(w, http.StatusOK, sum)
	}
}

// decodeSendRequest reads and checks the request; status 0 means valid.
func decodeSendRequest(w http.ResponseWriter, r *http.Request, cfg FunctionConfig) (req SendRequest, status int, slug, detail string) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return req, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the body must be at most %d bytes", maxRequestBytes)
		}
		return req, http.StatusBadRequest, "malformed-request", err.Error()
	}
	if dec.More() {
		return req, http.StatusBadRequest, "malformed-request", "unexpected data after the JSON object"
	}
	var interval time.Duration
	if req.BurstInterval != "" {
		var err error
		if interval, err = time.ParseDuration(req.BurstInterval); err != nil || interval <= 0 {
			return req, http.StatusBadRequest, "invalid-request", fmt.Sprintf("burst_interval must be a positive duration such as 1s, got %q", req.BurstInterval)
		}
	}
	var errs []error
	if req.Count < 1 || req.Count > cfg.MaxCount {
		errs = append(errs, fmt.Errorf("count must be between 1 and %d, got %d", cfg.MaxCount, req.Count))
	}
	switch {
	case req.Burst < 0 || req.Burst > cfg.MaxCount:
		errs = append(errs, fmt.Errorf("burst must be between 0 and %d, got %d", cfg.MaxCount, req.Burst))
	case req.Burst == 0 && (!(req.Rate > 0) || req.Rate > cfg.MaxRate):
		errs = append(errs, fmt.Errorf("rate must be > 0 and at most %v events/s, got %v", cfg.MaxRate, req.Rate))
	}
	if len(errs) == 0 {
		// The run must fit in MaxDuration, or it would be cut short silently.
		var need time.Duration
		if req.Burst > 0 {
			if interval == 0 {
				interval = DefaultBurstInterval
			}
			need = time.Duration((req.Count-1)/req.Burst) * interval
		} else {
			need = time.Duration(float64(req.Count-1) / req.Rate * float64(time.Second))
		}
		if need > cfg.MaxDuration {
			errs = append(errs, fmt.Errorf("sending %d events this way takes %v, more than the %v allowed", req.Count, need, cfg.MaxDuration))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return req, http.StatusBadRequest, "invalid-request", err.Error()
	}
	return req, 0, "", ""
}
