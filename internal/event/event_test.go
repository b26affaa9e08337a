package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// wantTime is the instant most valid cases carry.
var wantTime = time.Date(2026, 3, 14, 15, 9, 26, 535000000, time.UTC)

// obj builds a JSON object from key/raw-value pairs, in order, so that cases
// can drop, repeat or retype one field. Keys are written as given, so a key
// may hold a JSON escape.
func obj(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + kv[i] + `":`)
		b.WriteString(kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// fields is a valid event's fields as key/raw-value pairs.
func fields() []string {
	return []string{
		"id", `"evt-123"`,
		"name", `"test event"`,
		"body", `"test body"`,
		"timestamp", `"2026-03-14T15:09:26.535Z"`,
	}
}

// with returns the valid fields with key's raw value replaced, or key
// dropped when raw is "".
func with(key, raw string) string {
	kv := fields()
	out := make([]string, 0, len(kv))
	for i := 0; i < len(kv); i += 2 {
		switch {
		case kv[i] != key:
			out = append(out, kv[i], kv[i+1])
		case raw != "":
			out = append(out, kv[i], raw)
		}
	}
	return obj(out...)
}

func valid(id string, ts time.Time) event.Event {
	return event.Event{ID: id, Name: "test event", Body: "test body", Timestamp: ts}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		want event.Event
	}{
		{
			name: "as the source sends it",
			in:   obj(fields()...),
			want: valid("evt-123", wantTime),
		},
		{
			name: "RFC 3339 with an offset is normalised to UTC",
			in:   with("timestamp", `"2026-03-14T16:09:26.535+01:00"`),
			want: valid("evt-123", wantTime),
		},
		{
			name: "RFC 3339 with a negative offset crossing midnight",
			in:   with("timestamp", `"2026-03-13T23:30:00-05:00"`),
			want: valid("evt-123", time.Date(2026, 3, 14, 4, 30, 0, 0, time.UTC)),
		},
		{
			name: "RFC 3339 without a fraction",
			in:   with("timestamp", `"2026-03-14T15:09:26Z"`),
			want: valid("evt-123", wantTime.Truncate(time.Second)),
		},
		{
			name: "RFC 3339 with nanoseconds",
			in:   with("timestamp", `"2026-03-14T15:09:26.123456789Z"`),
			want: valid("evt-123", time.Date(2026, 3, 14, 15, 9, 26, 123456789, time.UTC)),
		},
		{
			name: "epoch milliseconds",
			in:   with("timestamp", strconv.FormatInt(wantTime.UnixMilli(), 10)),
			want: valid("evt-123", wantTime),
		},
		{
			name: "earliest timestamp",
			in:   with("timestamp", `"2000-01-01T00:00:00Z"`),
			want: valid("evt-123", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)),
		},
		{
			name: "unknown field ignored",
			in:   obj(append(fields(), "severity", `{"level":[1,2,3]}`)...),
			want: valid("evt-123", wantTime),
		},
		{
			name: "brand in the request ignored",
			in:   obj(append(fields(), "brand", `"evilBrand"`)...),
			want: valid("evt-123", wantTime),
		},
		{
			name: "fields in another order, white space around",
			in:   " \n{ \"timestamp\" : \"2026-03-14T15:09:26.535Z\", \"body\":\"test body\",\"name\":\"test event\",\"id\":\"evt-123\" }\n",
			want: valid("evt-123", wantTime),
		},
		{
			name: "escaped key and unicode values",
			in:   obj("\\u0069d", `"zażółć-🎉"`, "name", `"test event"`, "body", `"line 1\nline 2\t<&>"`, "timestamp", `"2026-03-14T15:09:26.535Z"`),
			want: event.Event{ID: "zażółć-🎉", Name: "test event", Body: "line 1\nline 2\t<&>", Timestamp: wantTime},
		},
		{
			name: "empty body allowed",
			in:   with("body", `""`),
			want: event.Event{ID: "evt-123", Name: "test event", Body: "", Timestamp: wantTime},
		},
		{
			name: "id at the length limit",
			in:   with("id", strconv.Quote(strings.Repeat("a", event.MaxIDBytes))),
			want: valid(strings.Repeat("a", event.MaxIDBytes), wantTime),
		},
		{
			name: "body at the size limit",
			in:   with("body", strconv.Quote(strings.Repeat("b", event.MaxBodyBytes))),
			want: event.Event{ID: "evt-123", Name: "test event", Body: strings.Repeat("b", event.MaxBodyBytes), Timestamp: wantTime},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := event.Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse(%.200s): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
			if got.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp location = %v, want UTC", got.Timestamp.Location())
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
	}{
		{name: "empty", in: ""},
		{name: "only white space", in: " \n\t"},
		{name: "syntax error", in: `{"id": "evt-123", name: "test event"}`},
		{name: "missing colon", in: `{"id" "evt-123"}`},
		{name: "trailing comma", in: strings.TrimSuffix(obj(fields()...), "}") + ",}"},
		{name: "truncated", in: obj(fields()...)[:30]},
		{name: "truncated after a value", in: strings.TrimSuffix(obj(fields()...), "}")},
		{name: "unterminated string", in: `{"id": "evt-123`},
		{name: "trailing garbage", in: obj(fields()...) + "x"},
		{name: "second object", in: obj(fields()...) + obj(fields()...)},
		{name: "duplicate key", in: obj(append(fields(), "id", `"evt-456"`)...)},
		{name: "duplicate key spelled with an escape", in: obj(append(fields(), "\\u0069d", `"evt-456"`)...)},
		{name: "duplicate unknown key", in: obj(append(fields(), "x", "1", "x", "2")...)},
		{name: "array", in: "[" + obj(fields()...) + "]"},
		{name: "string", in: `"evt-123"`},
		{name: "number", in: "42"},
		{name: "null", in: "null"},
		{name: "invalid UTF-8 in a value", in: with("body", "\"test \xff body\"")},
		{name: "invalid UTF-8 outside strings", in: obj(fields()...) + "\xc3"},
		{name: "leading zero number", in: with("timestamp", "01773500966535")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := event.Parse([]byte(tc.in))
			var me *event.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("Parse(%q) = %+v, %v; want a *MalformedError", tc.in, got, err)
			}
			if me.Reason == "" || !strings.HasPrefix(err.Error(), "malformed event: ") {
				t.Errorf("error %q has no reason", err)
			}
			if diff := cmp.Diff(event.Event{}, got); diff != "" {
				t.Errorf("Parse returned a partial event on error:\n%s", diff)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		// want lists the fields with problems, in order.
		want []string
		// reason, when set, must appear in the first problem's reason.
		reason string
	}{
		{name: "missing id", in: with("id", ""), want: []string{"id"}, reason: "required"},
		{name: "missing name", in: with("name", ""), want: []string{"name"}, reason: "required"},
		{name: "missing body", in: with("body", ""), want: []string{"body"}, reason: "required"},
		{name: "missing timestamp", in: with("timestamp", ""), want: []string{"timestamp"}, reason: "required"},
		{name: "empty object", in: "{}", want: []string{"id", "name", "body", "timestamp"}},
		{name: "id is a number", in: with("id", "123"), want: []string{"id"}, reason: "string"},
		{name: "id is null", in: with("id", "null"), want: []string{"id"}, reason: "string"},
		{name: "name is a bool", in: with("name", "true"), want: []string{"name"}, reason: "string"},
		{name: "body is an object", in: with("body", `{"text":"test body"}`), want: []string{"body"}, reason: "string"},
		{name: "timestamp is a bool", in: with("timestamp", "false"), want: []string{"timestamp"}},
		{name: "timestamp is an array", in: with("timestamp", "[2026,3,14]"), want: []string{"timestamp"}},
		{name: "timestamp is null", in: with("timestamp", "null"), want: []string{"timestamp"}},
		{name: "every field of the wrong type", in: obj("id", "1", "name", "2", "body", "3", "timestamp", "{}"), want: []string{"id", "name", "body", "timestamp"}},
		{name: "empty id", in: with("id", `""`), want: []string{"id"}, reason: "empty"},
		{name: "empty name", in: with("name", `""`), want: []string{"name"}, reason: "empty"},
		{name: "id too long", in: with("id", strconv.Quote(strings.Repeat("a", event.MaxIDBytes+1))), want: []string{"id"}, reason: "at most"},
		{name: "id too long in bytes, not runes", in: with("id", strconv.Quote(strings.Repeat("ż", event.MaxIDBytes/2+1))), want: []string{"id"}, reason: "at most"},
		{name: "name too long", in: with("name", strconv.Quote(strings.Repeat("n", event.MaxNameBytes+1))), want: []string{"name"}, reason: "at most"},
		{name: "id with a newline", in: with("id", `"evt\n123"`), want: []string{"id"}, reason: "control"},
		{name: "id with NUL", in: with("id", `"evt\u0000123"`), want: []string{"id"}, reason: "control"},
		{name: "id with DEL", in: with("id", `"evt\u007f"`), want: []string{"id"}, reason: "control"},
		{name: "id with a C1 control", in: with("id", `"evt\u0085x"`), want: []string{"id"}, reason: "control"},
		{name: "id with a lone surrogate", in: with("id", `"evt\ud800x"`), want: []string{"id"}, reason: "control"},
		{name: "name with a tab", in: with("name", `"test\tevent"`), want: []string{"name"}, reason: "control"},
		{name: "id with surrounding space", in: with("id", `" evt-123"`), want: []string{"id"}, reason: "white space"},
		{name: "body with NUL", in: with("body", `"test\u0000body"`), want: []string{"body"}, reason: "NUL"},
		{name: "body too large", in: with("body", strconv.Quote(strings.Repeat("b", event.MaxBodyBytes+1))), want: []string{"body"}, reason: "at most"},
		{name: "timestamp not RFC 3339", in: with("timestamp", `"14/03/2026 15:09"`), want: []string{"timestamp"}, reason: "RFC 3339"},
		{name: "timestamp date only", in: with("timestamp", `"2026-03-14"`), want: []string{"timestamp"}},
		{name: "timestamp without a zone", in: with("timestamp", `"2026-03-14T15:09:26"`), want: []string{"timestamp"}},
		{name: "timestamp with an offset of 24 hours", in: with("timestamp", `"2026-03-14T15:09:26+24:00"`), want: []string{"timestamp"}, reason: "RFC 3339"},
		{name: "timestamp before 2000", in: with("timestamp", `"1999-12-31T23:59:59.999Z"`), want: []string{"timestamp"}, reason: "between"},
		{name: "timestamp after 2200", in: with("timestamp", `"2200-01-01T00:00:00.000000001Z"`), want: []string{"timestamp"}, reason: "between"},
		{name: "offset moves timestamp before 2000", in: with("timestamp", `"2000-01-01T00:30:00+01:00"`), want: []string{"timestamp"}, reason: "between"},
		{name: "epoch seconds, not milliseconds", in: with("timestamp", "1773500966"), want: []string{"timestamp"}, reason: "between"},
		{name: "epoch microseconds", in: with("timestamp", "1773500966535000"), want: []string{"timestamp"}, reason: "between"},
		{name: "negative epoch", in: with("timestamp", "-1773500966535"), want: []string{"timestamp"}, reason: "between"},
		{name: "epoch with a fraction", in: with("timestamp", "1773500966535.5"), want: []string{"timestamp"}, reason: "integer"},
		{name: "epoch as a float with a zero fraction", in: with("timestamp", "1773500966535.0"), want: []string{"timestamp"}, reason: "written as an integer"},
		{name: "epoch with an exponent", in: with("timestamp", "1.773500966535e12"), want: []string{"timestamp"}, reason: "written as an integer"},
		{name: "epoch beyond int64", in: with("timestamp", "99999999999999999999"), want: []string{"timestamp"}, reason: "out of range"},
		{name: "epoch beyond float64", in: with("timestamp", "1e400"), want: []string{"timestamp"}, reason: "out of range"},
		{name: "epoch as a string", in: with("timestamp", `"1773500966535"`), want: []string{"timestamp"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := event.Parse([]byte(tc.in))
			var ve *event.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%.200q) = %+v, %v; want a *ValidationError", tc.in, got, err)
			}
			var fields []string
			for _, p := range ve.Problems {
				fields = append(fields, p.Field)
			}
			if diff := cmp.Diff(tc.want, fields); diff != "" {
				t.Errorf("fields with problems (-want +got):\n%s\nerror: %v", diff, err)
			}
			if tc.reason != "" && len(ve.Problems) > 0 && !strings.Contains(ve.Problems[0].Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", ve.Problems[0].Reason, tc.reason)
			}
			if diff := cmp.Diff(event.Event{}, got); diff != "" {
				t.Errorf("Parse returned a partial event on error:\n%s", diff)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   event.Event
	}{
		{name: "as the source sends it", in: valid("evt-123", wantTime)},
		{name: "nanoseconds", in: valid("evt-ns", time.Date(2026, 3, 14, 15, 9, 26, 1, time.UTC))},
		{name: "zone other than UTC", in: valid("evt-zone", time.Date(2026, 3, 14, 16, 9, 26, 535000000, time.FixedZone("CET", 3600)))},
		{name: "characters JSON escapes", in: event.Event{ID: `a"b\c<d>&e`, Name: "ünï\u2028cødé", Body: "line\nline\t\"quoted\"\r\n\u2029", Timestamp: wantTime}},
		{name: "empty body", in: event.Event{ID: "x", Name: "n", Timestamp: wantTime}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := event.Parse(data)
			if err != nil {
				t.Fatalf("Parse(%s): %v", data, err)
			}
			if diff := cmp.Diff(tc.in, got); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
			if got.Timestamp.Location() != time.UTC {
				t.Errorf("Timestamp location = %v, want UTC", got.Timestamp.Location())
			}
			var viaUnmarshal event.Event
			if err := json.Unmarshal(data, &viaUnmarshal); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if diff := cmp.Diff(got, viaUnmarshal); diff != "" {
				t.Errorf("json.Unmarshal differs from Parse (-parse +unmarshal):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate after round trip: %v", err)
			}
		})
	}
}

func TestUnmarshalIsStrict(t *testing.T) {
	t.Parallel()
	var e event.Event
	err := json.Unmarshal([]byte(with("id", `""`)), &e)
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("json.Unmarshal of an event with an empty id: %v, want a *ValidationError", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      event.Event
		wantErr bool
	}{
		{name: "valid", in: valid("evt-123", wantTime)},
		{name: "zero", in: event.Event{}, wantErr: true},
		{name: "empty id", in: valid("", wantTime), wantErr: true},
		{name: "control character in id", in: valid("a\x01b", wantTime), wantErr: true},
		{name: "timestamp out of range", in: valid("evt-123", time.Unix(0, 0)), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.in.Validate()
			if (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestEnrich(t *testing.T) {
	t.Parallel()
	// The source's brand must not survive: it is ignored by Parse and the
	// brand comes from the argument only.
	parsed, err := event.Parse([]byte(obj(append(fields(), "brand", `"evilBrand"`)...)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	cases := []struct {
		name  string
		brand string
	}{
		{name: "default brand", brand: event.DefaultBrand},
		{name: "configured brand", brand: "otherBrand"},
		{name: "brand needing escapes", brand: `q"uote\`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			en := event.Enrich(parsed, tc.brand)
			if en.Brand != tc.brand || en.Event != parsed {
				t.Fatalf("Enrich = %+v, want the event with brand %q", en, tc.brand)
			}
			data, err := json.Marshal(en)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var wire map[string]any
			if err := json.Unmarshal(data, &wire); err != nil {
				t.Fatalf("enriched JSON %s is not an object: %v", data, err)
			}
			want := map[string]any{
				"id":        "evt-123",
				"name":      "test event",
				"body":      "test body",
				"timestamp": "2026-03-14T15:09:26.535Z",
				"brand":     tc.brand,
			}
			if diff := cmp.Diff(want, wire); diff != "" {
				t.Errorf("enriched JSON (-want +got):\n%s", diff)
			}
			var back event.Enriched
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("Unmarshal enriched: %v", err)
			}
			if diff := cmp.Diff(en, back); diff != "" {
				t.Errorf("enriched round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGolden pins the wire form of an event (the task body) and of an
// enriched event. Run with -update to rewrite testdata/*.golden.
func TestGolden(t *testing.T) {
	t.Parallel()
	ev := valid("evt-123", time.Date(2026, 3, 14, 16, 9, 26, 535897932, time.FixedZone("CET", 3600)))
	cases := []struct {
		name string
		v    any
	}{
		{name: "event", v: ev},
		{name: "enriched", v: event.Enrich(ev, event.DefaultBrand)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("wire form changed:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	_, err := event.Parse([]byte(`{"id":"","name":1}`))
	want := "invalid event: id: must not be empty; name: must be a string; body: is required; timestamp: is required"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// FuzzParse checks that Parse never panics, fails only with its two error
// types, and that anything it accepts is within the limits and survives
// Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		obj(fields()...),
		with("timestamp", "1773500966535"),
		with("timestamp", `"2026-03-14T16:09:26.535897932+01:00"`),
		obj(append(fields(), "brand", `"x"`, "extra", `[1,{"a":null}]`)...),
		with("id", `"\u0069\ud83c\udf89"`),
		with("body", `"\u2028<&>\\"`),
		with("timestamp", "1.5e12"),
		with("id", ""),
		obj(append(fields(), "id", `"dup"`)...),
		obj(fields()...) + " x",
		"{}",
		"[]",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := event.Parse(data)
		if err != nil {
			var (
				me *event.MalformedError
				ve *event.ValidationError
			)
			if !errors.As(err, &me) && !errors.As(err, &ve) {
				t.Fatalf("Parse error %T %v is neither malformed nor invalid", err, err)
			}
			return
		}
		if e.ID == "" || len(e.ID) > event.MaxIDBytes || len(e.Name) > event.MaxNameBytes || len(e.Body) > event.MaxBodyBytes {
			t.Fatalf("accepted event out of limits: %+v", e)
		}
		if e.Timestamp.Location() != time.UTC {
			t.Fatalf("accepted timestamp not in UTC: %v", e.Timestamp)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("Marshal accepted event %+v: %v", e, err)
		}
		again, err := event.Parse(out)
		if err != nil {
			t.Fatalf("re-Parse(%s) of accepted input %q: %v", out, data, err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("re-parse differs (-first +second):\n%s", diff)
		}
		if en, err := json.Marshal(event.Enrich(e, event.DefaultBrand)); err != nil || !bytes.HasSuffix(en, []byte(`,"brand":"testBrand"}`)) {
			t.Fatalf("enriched JSON %s, %v", en, err)
		}
	})
}

// TestLimitsAreConsistent guards the constants' relation that ingest relies on:
// a maximal event fits in MaxEventBytes.
func TestLimitsAreConsistent(t *testing.T) {
	t.Parallel()
	e := event.Event{
		ID:        strings.Repeat("i", event.MaxIDBytes),
		Name:      strings.Repeat("n", event.MaxNameBytes),
		Body:      strings.Repeat("b", event.MaxBodyBytes),
		Timestamp: wantTime,
	}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > event.MaxEventBytes {
		t.Errorf("a maximal event is %d bytes, more than MaxEventBytes %d", len(data), event.MaxEventBytes)
	}
}

// TestWorstCaseSizes guards the limits against each other: an event with
// every field at its limit, spelled with the longest JSON escapes, must fit
// in a request ingest reads, and its normalised form must fit in what the
// dispatcher reads, or an accepted event could never be delivered.
func TestWorstCaseSizes(t *testing.T) {
	t.Parallel()
	// U+0001 is allowed in a body and always escaped as \u0001 (6 bytes).
	body := strings.Repeat("\x01", event.MaxBodyBytes)
	// '<' is escaped by encoding/json's default (HTML-safe) encoder.
	id := strings.Repeat("<", event.MaxIDBytes)
	name := strings.Repeat("&", event.MaxNameBytes)
	wire := fmt.Sprintf(`{"id":%q,"name":%q,"body":"%s","timestamp":"2026-11-27T12:00:00.123456789+01:00"}`,
		id, name, strings.Repeat(`\u0001`, event.MaxBodyBytes))
	if len(wire) > event.MaxEventBytes {
		t.Fatalf("worst-case request is %d bytes, over MaxEventBytes %d", len(wire), event.MaxEventBytes)
	}
	ev, err := event.Parse([]byte(wire))
	if err != nil {
		t.Fatalf("Parse(worst case): %v", err)
	}
	if ev.Body != body {
		t.Fatalf("body did not round trip")
	}
	// json.Marshal HTML-escapes a Marshaler's output again, so it is the
	// longest form; MarshalJSON is the form ingest puts in the task.
	for _, v := range []any{ev, event.Enrich(ev, event.DefaultBrand)} {
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if len(out) > event.MaxEncodedBytes {
			t.Errorf("json.Marshal(%T) is %d bytes, over MaxEncodedBytes %d", v, len(out), event.MaxEncodedBytes)
		}
	}
	out, err := ev.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if strings.Contains(string(out), `\u003c`) {
		t.Errorf("MarshalJSON escapes '<' as \\u003c; want it verbatim")
	}
	if _, err := event.Parse(out); err != nil {
		t.Errorf("Parse(MarshalJSON(worst case)): %v", err)
	}
}
