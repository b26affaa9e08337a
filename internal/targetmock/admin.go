package targetmock

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"eventrelay/internal/serving"
)

// knobsJSON is the wire form of Knobs on /admin/faults: durations as Go
// duration strings ("250ms"). In a POST every field is optional.
type knobsJSON struct {
	Rate          *float64       `json:"rate,omitempty"`
	Burst         *int           `json:"burst,omitempty"`
	RateLimitMode *RateLimitMode `json:"rateLimitMode,omitempty"`
	ErrorRatio    *float64       `json:"errorRatio,omitempty"`
	// MalformedRatio: see Knobs.MalformedRatio.
	MalformedRatio *float64 `json:"malformedRatio,omitempty"`
	Latency        *string  `json:"latency,omitempty"`
	LatencyJitter  *string  `json:"latencyJitter,omitempty"`
}

func knobsToJSON(k Knobs) knobsJSON {
	lat, jit := k.Latency.String(), k.LatencyJitter.String()
	return knobsJSON{
		Rate: &k.Rate, Burst: &k.Burst, RateLimitMode: &k.RateLimitMode,
		ErrorRatio: &k.ErrorRatio, MalformedRatio: &k.MalformedRatio, Latency: &lat, LatencyJitter: &jit,
	}
}

func (s *Server) handleGetKnobs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serving.WriteJSON(w, http.StatusOK, knobsToJSON(s.Knobs()))
	})
}

// handleSetKnobs applies a partial update of the knobs. The whole update is
// validated before any of it is applied.
func (s *Server) handleSetKnobs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			serving.WriteProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type",
				"Unsupported media type", "send application/json", nil)
			return
		}
		var in knobsJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			serving.WriteProblem(w, http.StatusBadRequest, "malformed-knobs", "Malformed knobs", err.Error(), nil)
			return
		}
		next := s.Knobs()
		var errs []error
		if in.Rate != nil {
			next.Rate = *in.Rate
		}
		if in.Burst != nil {
			next.Burst = *in.Burst
		}
		errs = append(errs, validateRate(next.Rate, next.Burst)...)
		if in.RateLimitMode != nil {
			next.RateLimitMode = *in.RateLimitMode
			if !next.RateLimitMode.valid() {
				errs = append(errs, fmt.Errorf("rateLimitMode must be %q or %q", ModeHTTP, ModeGraphQL))
			}
		}
		if in.ErrorRatio != nil {
			next.ErrorRatio = *in.ErrorRatio
			if err := validateRatio(next.ErrorRatio); err != nil {
				errs = append(errs, fmt.Errorf("errorRatio: %w", err))
			}
		}
		if in.MalformedRatio != nil {
			next.MalformedRatio = *in.MalformedRatio
			if err := validateRatio(next.MalformedRatio); err != nil {
				errs = append(errs, fmt.Errorf("malformedRatio: %w", err))
			}
		}
		for _, d := range []struct {
			name string
			in   *string
			out  *time.Duration
		}{{"latency", in.Latency, &next.Latency}, {"latencyJitter", in.LatencyJitter, &next.LatencyJitter}} {
			if d.in == nil {
				continue
			}
			v, err := time.ParseDuration(*d.in)
			if err != nil || v < 0 {
				errs = append(errs, fmt.Errorf("%s must be a non-negative duration such as 250ms, got %q", d.name, *d.in))
				continue
			}
			*d.out = v
		}
		if err := errors.Join(errs...); err != nil {
			serving.WriteProblem(w, http.StatusBadRequest, "invalid-knobs", "Invalid knobs", err.Error(), nil)
			return
		}
		s.setKnobs(next)
		serving.WriteJSON(w, http.StatusOK, knobsToJSON(s.Knobs()))
	})
}

// setKnobs applies validated knobs at once.
func (s *Server) setKnobs(k Knobs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.limiter.SetLimitAt(now, toLimit(k.Rate))
	s.limiter.SetBurstAt(now, k.Burst)
	s.knobs = k
}
