package serving

import (
	"encoding/json"
	"mime"
	"net/http"
	"path"
	"strings"
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

// Problem slugs shared by every service (appended to ProblemTypeBase).
const (
	SlugNotFound                   = "not-found"                    // 404
	SlugMethodNotAllowed           = "method-not-allowed"           // 405, with Allow
	SlugUnsupportedMediaType       = "unsupported-media-type"       // 415: Content-Type
	SlugUnsupportedContentEncoding = "unsupported-content-encoding" // 415: Content-Encoding
	SlugInternal                   = "internal"                     // 500: a recovered panic
)

// NotFound answers every request with a 404 problem: the fallback route of
// a mux, so that no path gets net/http's plain-text page.
func NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteProblem(w, http.StatusNotFound, SlugNotFound, "Not found", "", nil)
	})
}

// MethodNotAllowed answers every request with a 405 problem and an Allow
// header listing allow. Register it on the bare path beside the
// method-qualified patterns: the mux prefers the more specific ones.
func MethodNotAllowed(allow ...string) http.Handler {
	list := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", list)
		WriteProblem(w, http.StatusMethodNotAllowed, SlugMethodNotAllowed, "Method not allowed",
			"Use "+list+".", nil)
	})
}

// IsJSON reports whether a Content-Type is application/json with no charset
// or a UTF-8 one (JSON is UTF-8: RFC 8259).
func IsJSON(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

// IsEncoded reports whether a request body carries a content coding other
// than identity. The services read bodies as they come and never inflate
// them, so such a body is refused (415, Accept-Encoding: identity) rather
// than parsed as garbage: no decompression bomb can reach a parser.
func IsEncoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// RefuseEncoded answers the 415 problem for an encoded body.
func RefuseEncoded(w http.ResponseWriter) {
	w.Header().Set("Accept-Encoding", "identity")
	WriteProblem(w, http.StatusUnsupportedMediaType, SlugUnsupportedContentEncoding, "Unsupported content encoding",
		"Send the body without Content-Encoding (identity).", nil)
}

// CanonicalPaths answers a 404 problem for a request whose path is not in
// canonical form ("..", ".", "//"), which http.ServeMux would otherwise
// answer with an HTML redirect; other requests go to next.
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || p[0] != '/' || canonical(p) != p {
			NotFound().ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// canonical is ServeMux's cleanPath: path.Clean keeping a trailing slash.
func canonical(p string) string {
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
