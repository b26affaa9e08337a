// Package event holds the Event the source application sends, its strict
// parsing and validation, and the enrichment the target requires. It is pure:
// no I/O, no clocks, no configuration lookups.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on the fields of an event. They keep one event well inside the
// size limits of every engine (a Cloud Task body is at most 1 MiB, a
// Firestore document at most 1 MiB) and of the target.
const (
	MaxIDBytes   = 256
	MaxNameBytes = 256
	// MaxBodyBytes bounds the body field as decoded text.
	MaxBodyBytes = 64 << 10
	// MaxEventBytes is the largest request body ingest reads for one event;
	// larger bodies are rejected with 413 before they are parsed. JSON may
	// spell one byte of text as a six-byte escape (\u0001), so a valid event
	// can take up to six times its decoded size on the wire.
	MaxEventBytes = 8 * MaxBodyBytes
	// MaxEncodedBytes bounds the normalised JSON of any valid event (the
	// task body): every field at its limit with every byte escaped. The
	// dispatcher reads task bodies up to this size.
	MaxEncodedBytes = 6*(MaxIDBytes+MaxNameBytes+MaxBodyBytes) + 1024
)

// DefaultBrand is the brand added to every event when configuration does not
// name another one.
const DefaultBrand = "testBrand"

// Event is one event as the source application sends it. Timestamp is
// normalised to UTC whatever form it arrived in.
type Event struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Body      string    `json:"body"`
	Timestamp time.Time `json:"timestamp"`
}

// Enriched is an Event with the fields the target requires and the source
// does not send. Brand always comes from configuration, never from a request.
type Enriched struct {
	Event
	Brand string `json:"brand"`
}

// Enrich adds the configured brand to e.
func Enrich(e Event, brand string) Enriched {
	return Enriched{Event: e, Brand: brand}
}

// MalformedError reports a request body that is not a single JSON object.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return "malformed event: " + e.Reason }

// FieldProblem is one reason a field is invalid.
type FieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every problem found in a well-formed event.
type ValidationError struct{ Problems []FieldProblem }

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Field+": "+p.Reason)
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Parse decodes and validates one event from data. It returns a
// *MalformedError when data is not exactly one JSON object (syntax errors,
// invalid UTF-8, duplicate keys, trailing data) and a *ValidationError when
// the object's fields are missing, of the wrong type or out of bounds.
// Unknown fields are ignored so that a source adding a field does not lose
// events; a "brand" sent by the source is ignored like any other unknown field.
func Parse(data []byte) (Event, error) {
	if !utf8.Valid(data) {
		return Event{}, &MalformedError{Reason: "body is not valid UTF-8"}
	}
	fields, err := decodeObject(data)
	if err != nil {
		return Event{}, err
	}

	var (
		e        Event
		problems []FieldProblem
	)
	add := func(field, format string, args ...any) {
		problems = append(problems, FieldProblem{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	if raw, ok := fields["id"]; !ok {
		add("id", "is required")
	} else if s, ok := decodeString(raw); !ok {
		add("id", "must be a string")
	} else if reason := checkText(s, MaxIDBytes, false); reason != "" {
		add("id", "%s", reason)
	} else {
		e.ID = s
	}

	if raw, ok := fields["name"]; !ok {
		add("name", "is required")
	} else if s, ok := decodeString(raw); !ok {
		add("name", "must be a string")
	} else if reason := checkText(s, MaxNameBytes, false); reason != "" {
		add("name", "%s", reason)
	} else {
		e.Name = s
	}

	if raw, ok := fields["body"]; !ok {
		add("body", "is required")
	} else if s, ok := decodeString(raw); !ok {
		add("body", "must be a string")
	} else if len(s) > MaxBodyBytes {
		add("body", "must be at most %d bytes", MaxBodyBytes)
	} else if strings.ContainsRune(s, 0) {
		add("body", "must not contain NUL characters")
	} else {
		e.Body = s
	}

	if raw, ok := fields["timestamp"]; !ok {
		add("timestamp", "is required")
	} else if ts, reason := parseTimestamp(raw); reason != "" {
		add("timestamp", "%s", reason)
	} else {
		e.Timestamp = ts
	}

	if len(problems) > 0 {
		return Event{}, &ValidationError{Problems: problems}
	}
	return e, nil
}

// Validate checks an Event built in code (not parsed) against the same rules
// as Parse. The dispatcher uses it on task payloads.
func (e Event) Validate() error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("marshal event: %w", err)
	}
	_, err = Parse(data)
	return err
}

// MarshalJSON writes the timestamp as RFC 3339 in UTC with nanoseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	type wire struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Body      string `json:"body"`
		Timestamp string `json:"timestamp"`
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// No HTML escaping: the event is data, not markup, and escaping '<'
	// as \u003c would triple its size for nothing.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wire{
		ID:        e.ID,
		Name:      e.Name,
		Body:      e.Body,
		Timestamp: FormatTimestamp(e.Timestamp),
	}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON parses with the same strict rules as Parse.
func (e *Event) UnmarshalJSON(data []byte) error {
	parsed, err := Parse(data)
	if err != nil {
		return err
	}
	*e = parsed
	return nil
}

// MarshalJSON keeps brand beside the event's own fields.
func (e Enriched) MarshalJSON() ([]byte, error) {
	inner, err := e.Event.MarshalJSON()
	if err != nil {
		return nil, err
	}
	brand, err := json.Marshal(e.Brand)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(inner)+len(brand)+10)
	out = append(out, inner[:len(inner)-1]...)
	out = append(out, `,"brand":`...)
	out = append(out, brand...)
	out = append(out, '}')
	return out, nil
}

// FormatTimestamp is the one textual form of a timestamp the system emits.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// decodeObject reads exactly one JSON object with unique keys and nothing
// after it.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &MalformedError{Reason: "body must be a JSON object"}
	}
	fields := make(map[string]json.RawMessage, 4)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, &MalformedError{Reason: "object key is not a string"}
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(err)
		}
		if _, dup := fields[key]; dup {
			return nil, &MalformedError{Reason: fmt.Sprintf("duplicate key %q", key)}
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, malformed(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &MalformedError{Reason: "unexpected data after the JSON object"}
	}
	return fields, nil
}

func malformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &MalformedError{Reason: "unexpected end of JSON input"}
	}
	return &MalformedError{Reason: err.Error()}
}

func decodeString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// checkText applies the rules shared by identifiers and names.
func checkText(s string, maxBytes int, allowEmpty bool) string {
	switch {
	case s == "" && !allowEmpty:
		return "must not be empty"
	case len(s) > maxBytes:
		return fmt.Sprintf("must be at most %d bytes", maxBytes)
	case strings.TrimSpace(s) != s:
		return "must not start or end with white space"
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "must not contain control characters"
		}
	}
	return ""
}

// Timestamps outside [minTime, maxTime] are rejected: they are almost
// certainly a unit mistake (seconds sent as milliseconds or the reverse).
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseTimestamp accepts an RFC 3339 string or an integer count of
// milliseconds since the Unix epoch, and normalises both to UTC.
func parseTimestamp(raw json.RawMessage) (time.Time, string) {
	var t time.Time
	switch {
	case len(raw) > 0 && raw[0] == '"':
		s, ok := decodeString(raw)
		if !ok {
			return time.Time{}, "must be an RFC 3339 string or epoch milliseconds"
		}
		parsed, err := time.Parse(time.RFC3339Nano, s)
		if _, offset := parsed.Zone(); err != nil || offset <= -24*60*60 || offset >= 24*60*60 {
			// time.Parse accepts a ±24:00 offset; RFC 3339 allows 23:59 at most.
			return time.Time{}, "must be an RFC 3339 string (2006-01-02T15:04:05Z) or epoch milliseconds"
		}
		t = parsed
	case len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')):
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return time.Time{}, "must be an RFC 3339 string or epoch milliseconds"
		}
		ms, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			switch {
			case ferr != nil && !errors.Is(ferr, strconv.ErrRange), f != math.Trunc(f):
				return time.Time{}, "epoch milliseconds must be an integer"
			case math.Abs(f) < math.MaxInt64 && strings.ContainsAny(n.String(), ".eE"):
				// 1.7e12 or 1700000000000.0: an integer value in a form
				// that is not an integer literal.
				return time.Time{}, "epoch milliseconds must be written as an integer, without a fraction or exponent"
			default:
				return time.Time{}, "epoch milliseconds out of range"
			}
		}
		t = time.UnixMilli(ms)
	default:
		return time.Time{}, "must be an RFC 3339 string or epoch milliseconds"
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Sprintf("must be between %s and %s", minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	return t.UTC(), ""
}

// UnmarshalJSON reads an enriched event (as the dispatcher logs or replays
// it); without it the embedded Event's UnmarshalJSON would drop the brand.
func (e *Enriched) UnmarshalJSON(data []byte) error {
	var brand struct {
		Brand string `json:"brand"`
	}
	if err := json.Unmarshal(data, &brand); err != nil {
		return err
	}
	if err := e.Event.UnmarshalJSON(data); err != nil {
		return err
	}
	e.Brand = brand.Brand
	return nil
}
