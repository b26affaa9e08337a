package serving

import (
	"encoding/json"
	"net/http"
)

// ProblemTypeBase prefixes every problem type URI; each failure has a stable
// type so that clients and alerts can match on it.
const ProblemTypeBase = "https://eventrelay.dev/problems/"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists field problems for invalid input.
	Errors any `json:"errors,omitempty"`
}

// WriteProblem writes p as application/problem+json with p.Status. slug is
// appended to ProblemTypeBase to form the type.
func WriteProblem(w http.ResponseWriter, status int, slug, title, detail string, errs any) {
	p := Problem{
		Type:   ProblemTypeBase + slug,
		Title:  title,
		Status: status,
		Detail: detail,
		Errors: errs,
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as application/json with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
