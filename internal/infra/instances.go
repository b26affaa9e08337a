package infra

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// instance is one deployment of a resource: the resource as written, or —
// when its module is a reusable one called once per service, like
// modules/service — the resource as one module call configures it.
// Rules about a particular service (the dispatcher, ingest) look at
// instances, so that a value passed by one call is never mistaken for
// another's.
type instance struct {
	m *Module // the module holding the resource
	b *Block  // the resource
	// call is the module call that instantiates m for this instance, in
	// module cm; nil when m is not called (a root, or a test fixture).
	call *Block
	cm   *Module
}

// instances returns every instance of the resources of type typ: one per
// call of the resource's module, or one when the module is not called.
func instances(c *Config, typ string) []instance {
	var out []instance
	for _, r := range resources(c, typ) {
		calls := callers(c, r.m)
		if len(calls) == 0 {
			out = append(out, instance{m: r.m, b: r.b})
			continue
		}
		for _, call := range calls {
			out = append(out, instance{m: r.m, b: r.b, call: call.b, cm: call.m})
		}
	}
	return out
}

// CloudRunServices returns the name of every Cloud Run service in c, one
// per deployment (a reusable module called three times gives three), in
// order. Tests use it to see that the rules looked at every service.
func (c *Config) CloudRunServices() []string {
	var out []string
	for _, in := range instances(c, "google_cloud_run_v2_service") {
		out = append(out, in.name())
	}
	sort.Strings(out)
	return out
}

// String names the instance for findings: "modules/region:module.dispatcher"
// or "modules/x:google_cloud_run_v2_service.y".
func (in instance) String() string {
	if in.call != nil {
		return fmt.Sprintf("%s:module.%s (%s)", in.cm.Dir, in.call.Labels[0], in.b.Addr())
	}
	return in.m.Dir + ":" + in.b.Addr()
}

// where is the position findings about the instance point at: the module
// call when there is one, else the resource.
func (in instance) where() string {
	if in.call != nil {
		return in.call.Where(in.call.DefRange())
	}
	return in.b.Where(in.b.DefRange())
}

// name is the instance's service name: its literal name attribute,
// resolved through the call; else the call's or the resource's label.
func (in instance) name() string {
	for _, t := range in.values(attrExpr(in.b.Body, "name")) {
		if s, ok := literal(t.expr); ok {
			return s
		}
	}
	if in.call != nil {
		return in.call.Labels[0]
	}
	return in.b.Labels[1]
}

// ref is how the instance's own module and its caller refer to it:
// "google_cloud_run_v2_service.dispatcher", and "module.dispatcher" from
// the caller.
func (in instance) refs() (inModule, inCaller string) {
	inModule = in.b.Addr()
	if in.call != nil {
		inCaller = "module." + in.call.Labels[0]
	}
	return inModule, inCaller
}

// values resolves expr, an expression inside the instance's resource, to
// the expressions that finally give it its value: through this instance's
// module call first (only this call), then through variables and every
// call above (terminals). A nil expr gives nil.
func (in instance) values(expr hclsyntax.Expression) []terminal {
	if expr == nil {
		return nil
	}
	st, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if in.call == nil || !ok || st.Traversal.RootName() != "var" || len(attrNames(st.Traversal)) == 0 {
		return terminals(nil, in.m, in.b, expr, nil)
	}
	names := attrNames(st.Traversal)
	if arg := attrExpr(in.call.Body, names[0]); arg != nil {
		return terminals(nil, in.cm, in.call, arg, names[1:])
	}
	if v := in.m.Find("variable", names[0]); len(v) > 0 {
		if d := attrExpr(v[0].Body, "default"); d != nil {
			return terminals(nil, in.m, v[0], d, names[1:])
		}
	}
	return []terminal{{at: in.call, m: in.cm, missing: fmt.Sprintf("module %s does not set %s", in.call.Labels[0], names[0])}}
}

// deepValues is values, followed up through the variables of every module
// above the instance's call to literals or other expressions.
func (in instance) deepValues(c *Config, expr hclsyntax.Expression) []terminal {
	var out []terminal
	for _, t := range in.values(expr) {
		if t.expr == nil {
			out = append(out, t)
			continue
		}
		out = append(out, terminals(c, t.m, t.at, t.expr, t.path)...)
	}
	return out
}

// terminal is an expression a value finally comes from, with the block
// and module it is written in; or, when expr is nil, why there is none.
type terminal struct {
	expr hclsyntax.Expression
	at   *Block
	m    *Module
	// path is the attribute path still to apply to expr (an object passed
	// whole, where the value is one of its attributes).
	path    []string
	missing string
}

// text is the terminal's source text, or why it is missing.
func (t terminal) text() string {
	if t.expr == nil {
		return t.missing
	}
	return t.at.Text(t.expr.Range())
}

// terminals follows expr (with the attribute path still to apply to it)
// while it is an object constructor or a variable: through object items,
// and through every module call that sets the variable, or the variable's
// default when a caller leaves it unset or nobody calls the module. It
// stops at anything else (literals, references to resources or locals,
// function calls). With c nil it does not leave module m.
func terminals(c *Config, m *Module, at *Block, expr hclsyntax.Expression, path []string) []terminal {
	if obj, ok := expr.(*hclsyntax.ObjectConsExpr); ok && len(path) > 0 {
		item := objectItem(obj, path[0])
		if item == nil {
			return []terminal{{at: at, m: m, missing: fmt.Sprintf("%s: object has no %s", at.Where(expr.Range()), path[0])}}
		}
		return terminals(c, m, at, item, path[1:])
	}
	st, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if c == nil || !ok || st.Traversal.RootName() != "var" || len(attrNames(st.Traversal)) == 0 {
		return []terminal{{expr: expr, at: at, m: m, path: path}}
	}
	names := append(attrNames(st.Traversal), path...)
	v := m.Find("variable", names[0])
	if len(v) == 0 {
		return []terminal{{expr: expr, at: at, m: m, path: path}} // reported by references
	}
	var out []terminal
	calls := callers(c, m)
	defaulted := len(calls) == 0
	for _, call := range calls {
		if arg := attrExpr(call.b.Body, names[0]); arg != nil {
			out = append(out, terminals(c, call.m, call.b, arg, names[1:])...)
		} else {
			defaulted = true
		}
	}
	if defaulted {
		if d := attrExpr(v[0].Body, "default"); d != nil {
			out = append(out, terminals(c, m, v[0], d, names[1:])...)
		} else {
			out = append(out, terminal{at: v[0], m: m, missing: fmt.Sprintf("%s: var.%s has no default and is set at apply time", m.Dir, names[0])})
		}
	}
	return out
}
