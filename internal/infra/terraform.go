// Package infra checks the deployment configuration — the Terraform under
// terraform/ and cloudbuild.yaml — against the project's delivery policy,
// without a network or a Terraform provider.
//
// The google provider cannot be downloaded where this repository is built,
// so `terraform validate` cannot run here. This package does what it can
// instead: it parses every module with the HCL parser Terraform itself uses,
// resolves references between variables, locals, resources, modules and
// their outputs (a small `validate` without provider schemas), and asserts
// the policy rules listed in docs/deployment.md ("Policy checks").
package infra

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Finding is one policy violation.
type Finding struct {
	// Rule is the stable name of the rule that was broken.
	Rule string
	// Where is file:line (or a module directory) the finding is about.
	Where string
	// Msg says what is wrong.
	Msg string
}

// String formats f for a test failure.
func (f Finding) String() string { return fmt.Sprintf("%s: [%s] %s", f.Where, f.Rule, f.Msg) }

// Config is every Terraform module under one root (terraform/).
type Config struct {
	// Modules by directory relative to the root, e.g. "modules/region" or
	// "environments/dev".
	Modules map[string]*Module
	// Playbooks names the files in docs/playbooks (e.g. "dead-letters.md").
	Playbooks map[string]bool
}

// Module is one directory of .tf files.
type Module struct {
	// Dir is the directory relative to the Terraform root.
	Dir string
	// Blocks are the top-level blocks of every file, in file then source
	// order.
	Blocks []*Block
	// Src holds each file's bytes by file name.
	Src map[string][]byte
}

// Block is one top-level block (resource, data, variable, locals, module,
// output, terraform, provider, ...).
type Block struct {
	*hclsyntax.Block
	// File is the file the block is in, relative to the Terraform root.
	File string
	src  []byte
}

// Text returns the source text of a node inside b.
func (b *Block) Text(r hcl.Range) string {
	if r.End.Byte > len(b.src) || r.Start.Byte > r.End.Byte {
		return ""
	}
	return string(b.src[r.Start.Byte:r.End.Byte])
}

// Where formats a position inside b as file:line.
func (b *Block) Where(r hcl.Range) string { return fmt.Sprintf("%s:%d", b.File, r.Start.Line) }

// Addr is the block's address: "google_x.name", "var.x", "module.x".
func (b *Block) Addr() string {
	switch b.Type {
	case "resource":
		return strings.Join(b.Labels, ".")
	case "data":
		return "data." + strings.Join(b.Labels, ".")
	case "variable":
		return "var." + b.Labels[0]
	case "module":
		return "module." + b.Labels[0]
	case "output":
		return "output." + b.Labels[0]
	}
	return b.Type
}

// LoadTerraform parses every directory holding .tf files under root in
// fsys (terraform/ in the repository), and the names of the files in
// playbooks (docs/playbooks); playbooks may be nil.
func LoadTerraform(fsys fs.FS, root string, playbooks fs.FS) (*Config, error) {
	cfg := &Config{Modules: map[string]*Module{}, Playbooks: map[string]bool{}}
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
		dir := path.Dir(rel)
		f, diags := hclsyntax.ParseConfig(src, rel, hcl.InitialPos)
		if diags.HasErrors() {
			errs = append(errs, fmt.Errorf("parse %s: %w", rel, diags))
			return nil
		}
		m := cfg.Modules[dir]
		if m == nil {
			m = &Module{Dir: dir, Src: map[string][]byte{}}
			cfg.Modules[dir] = m
		}
		m.Src[rel] = src
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			m.Blocks = append(m.Blocks, &Block{Block: b, File: rel, src: src})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read terraform: %w", err)
	}
	if playbooks != nil {
		entries, err := fs.ReadDir(playbooks, ".")
		if err != nil {
			return nil, fmt.Errorf("read playbooks: %w", err)
		}
		for _, e := range entries {
			cfg.Playbooks[e.Name()] = true
		}
	}
	if len(cfg.Modules) == 0 {
		errs = append(errs, fmt.Errorf("no .tf files under %s", root))
	}
	return cfg, errors.Join(errs...)
}

// ModuleDirs returns the module directories in a stable order.
func (c *Config) ModuleDirs() []string {
	dirs := make([]string, 0, len(c.Modules))
	for d := range c.Modules {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return dirs
}

// Find returns the top-level blocks of m of the given type whose labels
// start with labels.
func (m *Module) Find(typ string, labels ...string) []*Block {
	var out []*Block
	for _, b := range m.Blocks {
		if b.Type != typ || len(b.Labels) < len(labels) {
			continue
		}
		ok := true
		for i, l := range labels {
			if b.Labels[i] != l {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, b)
		}
	}
	return out
}

// Locals returns every local value of m by name.
func (m *Module) Locals() map[string]localValue {
	out := map[string]localValue{}
	for _, b := range m.Find("locals") {
		for name, a := range b.Body.Attributes {
			out[name] = localValue{block: b, attr: a}
		}
	}
	return out
}

type localValue struct {
	block *Block
	attr  *hclsyntax.Attribute
}

// child resolves a module call's source to the called module.
func (c *Config) child(m *Module, call *Block) *Module {
	src, ok := literal(attrExpr(call.Body, "source"))
	if !ok || !strings.HasPrefix(src, ".") {
		return nil
	}
	return c.Modules[path.Clean(path.Join(m.Dir, src))]
}

// ---------------------------------------------------------------- HCL helpers

// attr returns the attribute name of body, or nil.
func attr(body *hclsyntax.Body, name string) *hclsyntax.Attribute {
	if body == nil {
		return nil
	}
	return body.Attributes[name]
}

// attrExpr returns the expression of attribute name of body, or nil.
func attrExpr(body *hclsyntax.Body, name string) hclsyntax.Expression {
	if a := attr(body, name); a != nil {
		return a.Expr
	}
	return nil
}

// nested returns the blocks of type typ directly inside body.
func nested(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	if body == nil {
		return nil
	}
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// path follows a chain of nested block types from body (first of each).
func dig(body *hclsyntax.Body, types ...string) *hclsyntax.Body {
	for _, t := range types {
		bs := nested(body, t)
		if len(bs) == 0 {
			return nil
		}
		body = bs[0].Body
	}
	return body
}

// literal returns the value of a string literal expression (a quoted string
// without interpolation).
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
	case "bool", "number":
		return v.GoString(), true
	}
	return "", false
}

// literalBool returns the value of a bool literal.
func literalBool(expr hclsyntax.Expression) (value, ok bool) {
	if expr == nil {
		return false, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "bool" {
		return false, false
	}
	return v.True(), true
}

// literalNumber returns the value of a number literal.
func literalNumber(expr hclsyntax.Expression) (float64, bool) {
	if expr == nil {
		return 0, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "number" {
		return 0, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, true
}

// traversalName renders a traversal's root and attribute steps, ignoring
// index steps: var.queue.max_attempts, module.region.ingest_uri.
func traversalName(t hcl.Traversal) string {
	var sb strings.Builder
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			sb.WriteString(".")
			sb.WriteString(s.Name)
		}
	}
	return sb.String()
}

// attrNames returns the names of the attribute steps of t after its root.
func attrNames(t hcl.Traversal) []string {
	var out []string
	for _, step := range t[1:] {
		if a, ok := step.(hcl.TraverseAttr); ok {
			out = append(out, a.Name)
		}
	}
	return out
}

// reaches reports whether expr, following local values of m, refers to
// var.name.
func reaches(m *Module, expr hclsyntax.Expression, name string) bool {
	locals := m.Locals()
	seen := map[string]bool{}
	var walk func(hclsyntax.Expression) bool
	walk = func(e hclsyntax.Expression) bool {
		for _, t := range hclsyntax.Variables(e) {
			switch t.RootName() {
			case "var":
				if n := attrNames(t); len(n) > 0 && n[0] == name {
					return true
				}
			case "local":
				n := attrNames(t)
				if len(n) == 0 || seen[n[0]] {
					continue
				}
				seen[n[0]] = true
				if l, ok := locals[n[0]]; ok && walk(l.attr.Expr) {
					return true
				}
			}
		}
		return false
	}
	return walk(expr)
}

// objectKeys returns the literal keys of an object constructor expression.
func objectKeys(expr hclsyntax.Expression) []string {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	var keys []string
	for _, item := range obj.Items {
		if k, ok := literalKey(item.KeyExpr); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// objectItem returns the value expression of key in an object constructor.
func objectItem(expr hclsyntax.Expression, key string) hclsyntax.Expression {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	for _, item := range obj.Items {
		if k, ok := literalKey(item.KeyExpr); ok && k == key {
			return item.ValueExpr
		}
	}
	return nil
}

func literalKey(expr hclsyntax.Expression) (string, bool) {
	if k, ok := expr.(*hclsyntax.ObjectConsKeyExpr); ok {
		if name := hcl.ExprAsKeyword(k.Wrapped); name != "" {
			return name, true
		}
		return literal(k.Wrapped)
	}
	return literal(expr)
}

// stringLiterals returns every quoted or heredoc string fragment in src,
// leaving comments out.
func stringLiterals(src []byte, file string) []struct {
	Text string
	Line int
} {
	toks, _ := hclsyntax.LexConfig(src, file, hcl.InitialPos)
	var out []struct {
		Text string
		Line int
	}
	for _, t := range toks {
		if t.Type == hclsyntax.TokenQuotedLit || t.Type == hclsyntax.TokenStringLit {
			out = append(out, struct {
				Text string
				Line int
			}{string(t.Bytes), t.Range.Start.Line})
		}
	}
	return out
}
