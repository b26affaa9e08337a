package infra

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Roots of references that need no declaration in the module.
var builtinRoots = map[string]bool{
	"each": true, "count": true, "self": true, "path": true, "terraform": true,
}

// Meta-arguments of a module call, which are not the child's variables.
var moduleMeta = map[string]bool{
	"source": true, "version": true, "count": true, "for_each": true,
	"providers": true, "depends_on": true,
}

// CheckReferences is `terraform validate` without provider schemas: every
// var., local., data., module. and resource reference resolves in its
// module; every module.X.Y names an output of X; every module call sets
// only the child's variables and all of its required ones.
func CheckReferences(c *Config) []Finding {
	const rule = "references"
	var out []Finding
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		declared := map[string]bool{}
		for _, b := range m.Blocks {
			declared[b.Addr()] = true
		}
		for name := range m.Locals() {
			declared["local."+name] = true
		}
		calls := map[string]*Block{}
		for _, b := range m.Find("module") {
			calls[b.Labels[0]] = b
		}
		for _, b := range m.Blocks {
			if b.Type == "terraform" {
				continue
			}
			if b.Type == "moved" {
				out = append(out, checkMoved(c, m, calls, declared, b)...)
				continue
			}
			walkExprs(b, b.Body, nil, func(e hclsyntax.Expression, scope map[string]bool) {
				for _, t := range hclsyntax.Variables(e) {
					if msg := resolve(c, m, calls, declared, scope, t); msg != "" {
						out = append(out, Finding{Rule: rule, Where: b.Where(t.SourceRange()), Msg: msg})
					}
				}
			})
		}
		for _, call := range m.Find("module") {
			out = append(out, checkCall(c, m, call)...)
		}
	}
	return out
}

// resolve explains why traversal t does not resolve, or returns "".
func resolve(c *Config, m *Module, calls map[string]*Block, declared, scope map[string]bool, t hcl.Traversal) string {
	root := t.RootName()
	names := attrNames(t)
	switch {
	case builtinRoots[root] || scope[root]:
		return ""
	case root == "var" || root == "local":
		if len(names) == 0 || !declared[root+"."+names[0]] {
			return fmt.Sprintf("%s is not declared in %s", traversalName(t), m.Dir)
		}
	case root == "data":
		if len(names) < 2 || !declared["data."+names[0]+"."+names[1]] {
			return fmt.Sprintf("%s is not declared in %s", traversalName(t), m.Dir)
		}
	case root == "module":
		if len(names) == 0 || calls[names[0]] == nil {
			return fmt.Sprintf("%s is not a module call in %s", traversalName(t), m.Dir)
		}
		child := c.child(m, calls[names[0]])
		if child == nil || len(names) < 2 {
			return ""
		}
		if len(child.Find("output", names[1])) == 0 {
			return fmt.Sprintf("module %s (%s) has no output %q", names[0], child.Dir, names[1])
		}
	case strings.Contains(root, "_"):
		if len(names) == 0 || !declared[root+"."+names[0]] {
			return fmt.Sprintf("resource %s is not declared in %s", traversalName(t), m.Dir)
		}
	default:
		return fmt.Sprintf("unknown reference %s", traversalName(t))
	}
	return ""
}

// checkMoved checks a moved block, whose from and to are addresses, not
// references: from must no longer be declared (or it would not have moved),
// and to must be a resource of this module or of one of its module calls.
func checkMoved(c *Config, m *Module, calls map[string]*Block, declared map[string]bool, b *Block) []Finding {
	var out []Finding
	addr := func(name string) (hcl.Traversal, bool) {
		a := attr(b.Body, name)
		if a == nil {
			out = append(out, Finding{Rule: "references", Where: b.Where(b.DefRange()), Msg: "moved block without " + name})
			return nil, false
		}
		vars := hclsyntax.Variables(a.Expr)
		if len(vars) != 1 {
			out = append(out, Finding{Rule: "references", Where: b.Where(a.SrcRange), Msg: "moved " + name + " is not one address"})
			return nil, false
		}
		return vars[0], true
	}
	if from, ok := addr("from"); ok {
		names := attrNames(from)
		if from.RootName() != "module" && len(names) > 0 && declared[from.RootName()+"."+names[0]] {
			out = append(out, Finding{Rule: "references", Where: b.Where(from.SourceRange()), Msg: fmt.Sprintf("moved from %s, which is still declared in %s", traversalName(from), m.Dir)})
		}
	}
	to, ok := addr("to")
	if !ok {
		return out
	}
	names := attrNames(to)
	switch {
	case to.RootName() == "module":
		if len(names) < 3 || calls[names[0]] == nil {
			out = append(out, Finding{Rule: "references", Where: b.Where(to.SourceRange()), Msg: fmt.Sprintf("moved to %s: not a resource of a module call in %s", traversalName(to), m.Dir)})
			break
		}
		if child := c.child(m, calls[names[0]]); child != nil && len(child.Find("resource", names[1], names[2])) == 0 {
			out = append(out, Finding{Rule: "references", Where: b.Where(to.SourceRange()), Msg: fmt.Sprintf("moved to %s: %s declares no %s.%s", traversalName(to), child.Dir, names[1], names[2])})
		}
	case len(names) == 0 || !declared[to.RootName()+"."+names[0]]:
		out = append(out, Finding{Rule: "references", Where: b.Where(to.SourceRange()), Msg: fmt.Sprintf("moved to %s, which is not declared in %s", traversalName(to), m.Dir)})
	}
	return out
}

// checkCall checks one module call's arguments against the child's
// variables.
func checkCall(c *Config, m *Module, call *Block) []Finding {
	child := c.child(m, call)
	if child == nil {
		src, _ := literal(attrExpr(call.Body, "source"))
		return []Finding{{Rule: "references", Where: call.Where(call.DefRange()), Msg: fmt.Sprintf("module %s: source %q is not a module in this tree", call.Labels[0], src)}}
	}
	var out []Finding
	vars := map[string]*Block{}
	for _, v := range child.Find("variable") {
		vars[v.Labels[0]] = v
	}
	for name, a := range call.Body.Attributes {
		if !moduleMeta[name] && vars[name] == nil {
			out = append(out, Finding{Rule: "references", Where: call.Where(a.SrcRange), Msg: fmt.Sprintf("module %s: %s has no variable %q", call.Labels[0], child.Dir, name)})
		}
	}
	for name, v := range vars {
		if attr(v.Body, "default") == nil && attr(call.Body, name) == nil {
			out = append(out, Finding{Rule: "references", Where: call.Where(call.DefRange()), Msg: fmt.Sprintf("module %s: required variable %q of %s is not set", call.Labels[0], name, child.Dir)})
		}
	}
	return out
}

// walkExprs calls fn on every expression that can hold references in body,
// with the names that dynamic blocks bind in scope. It skips what is not a
// reference: lifecycle blocks (attribute paths), variable types, and the
// provider meta-argument.
func walkExprs(b *Block, body *hclsyntax.Body, scope map[string]bool, fn func(hclsyntax.Expression, map[string]bool)) {
	for name, a := range body.Attributes {
		if name == "provider" || (b.Type == "variable" && name == "type" && body == b.Body) {
			continue
		}
		fn(a.Expr, scope)
	}
	for _, nb := range body.Blocks {
		switch nb.Type {
		case "lifecycle":
			for name, a := range nb.Body.Attributes {
				if name != "ignore_changes" { // a list of attribute paths, not references
					fn(a.Expr, scope)
				}
			}
			continue
		case "dynamic":
			iter := nb.Labels[0]
			if it, ok := literalKeyword(attrExpr(nb.Body, "iterator")); ok {
				iter = it
			}
			inner := map[string]bool{iter: true}
			for k := range scope {
				inner[k] = true
			}
			for name, a := range nb.Body.Attributes {
				if name == "iterator" {
					continue
				}
				fn(a.Expr, scope)
			}
			for _, content := range nested(nb.Body, "content") {
				walkExprs(b, content.Body, inner, fn)
			}
			continue
		}
		walkExprs(b, nb.Body, scope, fn)
	}
}

func literalKeyword(expr hclsyntax.Expression) (string, bool) {
	if expr == nil {
		return "", false
	}
	if k := hcl.ExprAsKeyword(expr); k != "" {
		return k, true
	}
	return "", false
}
