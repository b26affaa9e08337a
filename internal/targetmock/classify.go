package targetmock

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// requestKind is what the limiter needs to know about one GraphQL request.
type requestKind int

const (
	// kindOther is anything but one receiveEvent mutation: queries, and
	// requests gqlgen will refuse on its own. They pass unlimited.
	kindOther requestKind = iota
	// kindReceiveEvent is a mutation with exactly one receiveEvent field.
	kindReceiveEvent
	// kindUnsupported is a request the target refuses outright so that the
	// limit cannot be bypassed: batches, several receiveEvent fields in one
	// operation, directives on the receiveEvent path.
	kindUnsupported
)

// classified is the cheap look at one GraphQL request body.
type classified struct {
	kind requestKind
	// reason says why a request is unsupported.
	reason string
	// input is the receiveEvent input argument with variables substituted;
	// nil when absent or not an object.
	input map[string]any
}

// graphQLRequest is the GraphQL-over-HTTP POST body.
type graphQLRequest struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

// maxQueryTokens bounds the parser's work on one request.
const maxQueryTokens = 10_000

// classify tells a receiveEvent mutation from everything else the way gqlgen
// will execute it: it selects the same operation (by operationName, or the
// only one) and finds receiveEvent among its root fields, through fragment
// spreads and inline fragments. Whatever it cannot make sense of is
// kindOther, which gqlgen then rejects without running a resolver.
func classify(body []byte) classified {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return classified{kind: kindUnsupported, reason: "batched requests are not supported: send one operation per request"}
	}
	var req graphQLRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return classified{kind: kindOther}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: req.Query}, maxQueryTokens)
	if err != nil {
		return classified{kind: kindOther}
	}
	var op *ast.OperationDefinition
	switch {
	case req.OperationName != "":
		op = doc.Operations.ForName(req.OperationName)
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	}
	if op == nil || op.Operation != ast.Mutation {
		return classified{kind: kindOther}
	}

	var fields []*ast.Field
	directives := false
	visited := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Name == "receiveEvent" {
					fields = append(fields, sel)
					directives = directives || len(sel.Directives) > 0
				}
			case *ast.InlineFragment:
				directives = directives || len(sel.Directives) > 0
				walk(sel.SelectionSet)
			case *ast.FragmentSpread:
				directives = directives || len(sel.Directives) > 0
				if visited[sel.Name] {
					continue
				}
				visited[sel.Name] = true
				if f := doc.Fragments.ForName(sel.Name); f != nil {
					walk(f.SelectionSet)
				}
			}
		}
	}
	walk(op.SelectionSet)

	switch {
	case len(fields) == 0:
		return classified{kind: kindOther}
	case len(fields) > 1:
		return classified{kind: kindUnsupported, reason: fmt.Sprintf("one receiveEvent per request, got %d", len(fields))}
	case directives:
		return classified{kind: kindUnsupported, reason: "directives on receiveEvent are not supported"}
	}
	c := classified{kind: kindReceiveEvent}
	if arg := fields[0].Arguments.ForName("input"); arg != nil {
		if v, err := arg.Value.Value(req.Variables); err == nil {
			c.input, _ = v.(map[string]any)
		}
	}
	return c
}

// stringField returns m[key] as a string and whether it is present and not
// null. IDs may arrive as JSON numbers.
func stringField(m map[string]any, key string) (string, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", false
	}
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	default:
		return fmt.Sprint(v), true
	}
}
