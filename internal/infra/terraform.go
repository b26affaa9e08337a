// Package infra checks the deployment configuration, the Terraform under
// terraform/ and cloudbuild.yaml, for what `terraform validate` and
// `terraform test` cannot say. Its tests are the checks.
//
// Most of the Terraform's invariants are asserted by `terraform test`
// (the *.tftest.hcl files beside the modules, run by `make tf-test`),
// against plans with the real provider schema. What is left here is what
// a plan does not show or a test cannot quantify: lifecycle settings,
// rules over every module at once ("nothing anywhere grants allUsers"),
// the pipeline's files and the collector's configuration.
// docs/development.md ("Where each invariant is checked") has the table.
package infra

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// finding is one policy violation.
type finding struct {
	rule  string // the stable name of the rule that was broken
	where string // file:line, or a module directory
	msg   string // what is wrong
}

func (f finding) String() string { return fmt.Sprintf("%s: [%s] %s", f.where, f.rule, f.msg) }

// config is every Terraform module under one root (terraform/), by
// directory relative to it ("modules/region", "environments/dev").
type config struct {
	modules map[string]*module
}

// module is one directory of .tf files.
type module struct {
	dir    string
	blocks []*block          // top-level blocks, in file then source order
	src    map[string][]byte // each file's bytes, by file name
}

// block is one top-level block (resource, variable, module, ...).
type block struct {
	*hclsyntax.Block
	file string // relative to the Terraform root
	src  []byte
}

// text returns the source text of a node inside b.
func (b *block) text(r hcl.Range) string {
	if r.End.Byte > len(b.src) || r.Start.Byte > r.End.Byte {
		return ""
	}
	return string(b.src[r.Start.Byte:r.End.Byte])
}

// where formats a position inside b as file:line.
func (b *block) where(r hcl.Range) string { return fmt.Sprintf("%s:%d", b.file, r.Start.Line) }

// at is where(b.DefRange()): the line of the block's header.
func (b *block) at() string { return b.where(b.DefRange()) }

// addr is the block's address: "google_x.name", "var.x", "module.x".
func (b *block) addr() string {
	switch b.Type {
	case "resource":
		return strings.Join(b.Labels, ".")
	case "variable":
		return "var." + b.Labels[0]
	case "module":
		return "module." + b.Labels[0]
	}
	return b.Type
}

// loadTerraform parses every directory holding .tf files under root in
// fsys.
func loadTerraform(fsys fs.FS, root string) (*config, error) {
	c := &config{modules: map[string]*module{}}
	var errs []error
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != root {
			return fs.SkipDir // .terraform and friends
		}
		if d.IsDir() || !strings.HasSuffix(p, ".tf") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		f, diags := hclsyntax.ParseConfig(src, rel, hcl.InitialPos)
		if diags.HasErrors() {
			errs = append(errs, fmt.Errorf("parse %s: %w", rel, diags))
			return nil
		}
		dir := path.Dir(rel)
		m := c.modules[dir]
		if m == nil {
			m = &module{dir: dir, src: map[string][]byte{}}
			c.modules[dir] = m
		}
		m.src[rel] = src
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			m.blocks = append(m.blocks, &block{Block: b, file: rel, src: src})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read terraform: %w", err)
	}
	if len(c.modules) == 0 {
		errs = append(errs, fmt.Errorf("no .tf files under %s", root))
	}
	return c, errors.Join(errs...)
}

// sorted returns the modules in directory order.
func (c *config) sorted() []*module {
	var out []*module
	for _, dir := range slices.Sorted(maps.Keys(c.modules)) {
		out = append(out, c.modules[dir])
	}
	return out
}

// resources returns every resource of type typ, in module order.
func (c *config) resources(typ string) []*block {
	var out []*block
	for _, m := range c.sorted() {
		out = append(out, m.find("resource", typ)...)
	}
	return out
}

// child resolves a module call's local source to the called module, or nil.
func (c *config) child(m *module, call *block) *module {
	src, ok := literal(attrExpr(call.Body, "source"))
	if !ok || !strings.HasPrefix(src, ".") {
		return nil
	}
	return c.modules[path.Clean(path.Join(m.dir, src))]
}

// call is a module call and the module it is written in.
type call struct {
	m *module
	b *block
}

// calls returns every module call, anywhere in c, whose source is child.
func (c *config) calls(child *module) []call {
	if child == nil {
		return nil
	}
	var out []call
	for _, m := range c.sorted() {
		for _, b := range m.find("module") {
			if c.child(m, b) == child {
				out = append(out, call{m, b})
			}
		}
	}
	return out
}

// find returns the top-level blocks of m of type typ whose labels start
// with labels.
func (m *module) find(typ string, labels ...string) []*block {
	var out []*block
	for _, b := range m.blocks {
		if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
			out = append(out, b)
		}
	}
	return out
}

// local is one local value and the locals block it is in.
type local struct {
	b    *block
	expr hclsyntax.Expression
}

// locals returns every local value of m, by name.
func (m *module) locals() map[string]local {
	out := map[string]local{}
	for _, b := range m.find("locals") {
		for name, a := range b.Body.Attributes {
			out[name] = local{b, a.Expr}
		}
	}
	return out
}

// ---------------------------------------------------------------- HCL helpers

// attrExpr returns the expression of attribute name of body, or nil.
func attrExpr(body *hclsyntax.Body, name string) hclsyntax.Expression {
	if body == nil || body.Attributes[name] == nil {
		return nil
	}
	return body.Attributes[name].Expr
}

// dig follows a chain of nested block types from body (the first of
// each), or returns nil.
func dig(body *hclsyntax.Body, types ...string) *hclsyntax.Body {
	for _, t := range types {
		if body == nil {
			return nil
		}
		i := slices.IndexFunc(body.Blocks, func(b *hclsyntax.Block) bool { return b.Type == t })
		if i < 0 {
			return nil
		}
		body = body.Blocks[i].Body
	}
	return body
}

// literal returns the value of a literal string, number or bool
// expression as text ("x", "1", "true").
func literal(expr hclsyntax.Expression) (string, bool) {
	if expr == nil {
		return "", false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() {
		return "", false
	}
	switch v.Type().FriendlyName() {
	case "string":
		return v.AsString(), true
	case "bool":
		return strconv.FormatBool(v.True()), true
	case "number":
		return v.AsBigFloat().Text('g', -1), true
	}
	return "", false
}

// objectItem returns the value expression of key in an object constructor.
func objectItem(expr hclsyntax.Expression, key string) hclsyntax.Expression {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	for _, item := range obj.Items {
		if k, ok := objectKey(item.KeyExpr); ok && k == key {
			return item.ValueExpr
		}
	}
	return nil
}

// objectKeys returns the literal keys of an object constructor.
func objectKeys(expr hclsyntax.Expression) []string {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	var keys []string
	for _, item := range obj.Items {
		if k, ok := objectKey(item.KeyExpr); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

func objectKey(expr hclsyntax.Expression) (string, bool) {
	if k, ok := expr.(*hclsyntax.ObjectConsKeyExpr); ok {
		if name := hcl.ExprAsKeyword(k.Wrapped); name != "" {
			return name, true
		}
		return literal(k.Wrapped)
	}
	return literal(expr)
}

// varName returns X when expr is exactly var.X, else "".
func varName(expr hclsyntax.Expression) string {
	st, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if !ok || st.Traversal.RootName() != "var" || len(st.Traversal) != 2 {
		return ""
	}
	if a, ok := st.Traversal[1].(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}

// attrNames returns the names of the attribute steps of t after its root,
// leaving index steps out: module.targetmock[0].google_x.y gives
// targetmock, google_x, y.
func attrNames(t hcl.Traversal) []string {
	var out []string
	for _, step := range t[1:] {
		if a, ok := step.(hcl.TraverseAttr); ok {
			out = append(out, a.Name)
		}
	}
	return out
}

// stringLiteral is a quoted or heredoc string fragment and its line.
type stringLiteral struct {
	text string
	line int
}

// stringLiterals returns every string fragment in src, leaving comments
// out.
func stringLiterals(src []byte, file string) []stringLiteral {
	toks, _ := hclsyntax.LexConfig(src, file, hcl.InitialPos)
	var out []stringLiteral
	for _, t := range toks {
		if t.Type == hclsyntax.TokenQuotedLit || t.Type == hclsyntax.TokenStringLit {
			out = append(out, stringLiteral{string(t.Bytes), t.Range.Start.Line})
		}
	}
	return out
}
