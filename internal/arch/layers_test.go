package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layer is one level of the dependency order.
type layer string

const (
	// domain is the Event: pure, no I/O.
	domain layer = "domain"
	// core is the ports and the policy built on them: the queue and status
	// ports, the rate governor and the reconciler.
	core layer = "core"
	// engine is one implementation of a port (SQLite, Cloud Tasks,
	// Firestore).
	engine layer = "engine"
	// service is an HTTP service and its own subpackages: ingest, the
	// dispatcher, and the two doubles (targetmock, sourcemock).
	service layer = "service"
	// platform is what every service uses and that knows no business:
	// authentication, telemetry, HTTP serving, logging, the version.
	platform layer = "platform"
	// wiring opens engines from configuration and builds services from
	// them.
	wiring layer = "wiring"
	// command is a deployable's package main (and the Cloud Function
	// package sourcemock deploys).
	command layer = "command"
	// devTool runs on a developer's machine or in tests only: the local
	// stack, the operator CLI, the dev issuer, the fault and load harnesses,
	// the ops page.
	devTool layer = "dev tool"
	// testSupport is imported by tests only: conformance suites, token
	// minters, Terraform and script checks.
	testSupport layer = "test support"
)

// everything is every layer.
var everything = []layer{domain, core, engine, service, platform, wiring, command, devTool, testSupport}

// mayImport is, for each layer, the layers its packages may import. A
// service may import another service's package only when both belong to
// the same service (sameTree): internal/dispatcher imports
// internal/dispatcher/target, never internal/targetmock.
var mayImport = map[layer][]layer{
	domain:      nil,
	platform:    {platform},
	core:        {domain, core, platform},
	engine:      {domain, core, platform},
	service:     {domain, core, platform, service},
	wiring:      {domain, core, engine, service, platform, wiring},
	command:     {domain, core, engine, service, platform, wiring, command},
	devTool:     everything,
	testSupport: everything,
}

// layers places each package, by its path in the module. A package not
// listed takes the layer of the nearest listed parent, except that a
// package whose name ends in "test" is test support.
var layers = map[string]layer{
	"internal/event": domain,

	"internal/queue":     core,
	"internal/status":    core,
	"internal/governor":  core,
	"internal/reconcile": core,

	"internal/queue/sqlitequeue":       engine,
	"internal/queue/cloudtasksqueue":   engine,
	"internal/status/sqlitestatus":     engine,
	"internal/status/firestorestatus":  engine,
	"internal/governor/firestorelease": engine,

	"internal/ingest":     service,
	"internal/dispatcher": service,
	"internal/targetmock": service,
	"internal/sourcemock": service,

	"internal/auth":      platform,
	"internal/telemetry": platform,
	"internal/serving":   platform,
	"internal/logging":   platform,
	"internal/version":   platform,

	"internal/engines": wiring,
	"internal/wiring":  wiring,

	"ingest":     command,
	"dispatcher": command,
	"targetmock": command,
	"sourcemock": command,

	"relayctl":                devTool,
	"internal/relayctl":       devTool,
	"internal/devstack":       devTool,
	"internal/opspage":        devTool,
	"internal/auth/devissuer": devTool,
	"internal/chaos":          devTool,
	"internal/bench":          devTool,

	"internal/testutil": testSupport,
	"internal/infra":    testSupport,
	"internal/arch":     testSupport,
}

// edge is one import, by module-relative paths.
type edge struct{ from, to string }

// knownExceptions are the imports that break the rules today. Each is a
// defect to remove, not a permission: the test fails when one is no longer
// needed, so that the list only shrinks.
var knownExceptions = map[edge]string{}

// pkg is what go list says of one package.
type pkg struct {
	ImportPath string
	Imports    []string // without those of _test.go files
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// layerOf places rel, a module-relative package path.
func layerOf(rel string) (layer, bool) {
	if l, ok := layers[rel]; ok {
		return l, true
	}
	if strings.HasSuffix(rel[strings.LastIndex(rel, "/")+1:], "test") {
		return testSupport, true
	}
	for p := rel; strings.Contains(p, "/"); {
		p = p[:strings.LastIndex(p, "/")]
		if l, ok := layers[p]; ok {
			return l, true
		}
	}
	return "", false
}

// sameTree reports whether a and b are in the same top package below
// internal/ (or the same command): internal/dispatcher and
// internal/dispatcher/target are, internal/dispatcher and
// internal/targetmock are not.
func sameTree(a, b string) bool {
	root := func(p string) string {
		parts := strings.SplitN(p, "/", 3)
		if parts[0] == "internal" && len(parts) > 1 {
			return parts[0] + "/" + parts[1]
		}
		return parts[0]
	}
	return root(a) == root(b)
}

// check returns one line per import that breaks the rules and is not a
// known exception, one per package it cannot place, and the known
// exceptions no import needs any more.
func check(module string, pkgs []pkg, exceptions map[edge]string) (violations, unplaced, stale []string) {
	used := map[edge]bool{}
	prefix := module + "/"
	for _, p := range pkgs {
		from, ok := strings.CutPrefix(p.ImportPath, prefix)
		if !ok {
			continue
		}
		fromLayer, ok := layerOf(from)
		if !ok {
			unplaced = append(unplaced, from)
			continue
		}
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, prefix)
			if !ok {
				continue // the standard library or another module
			}
			toLayer, ok := layerOf(to)
			if !ok {
				continue // reported as unplaced with its own package
			}
			allowed := slices.Contains(mayImport[fromLayer], toLayer)
			if allowed && fromLayer == service && toLayer == service {
				allowed = sameTree(from, to)
			}
			if allowed {
				continue
			}
			e := edge{from, to}
			if _, ok := exceptions[e]; ok {
				used[e] = true
				continue
			}
			violations = append(violations, fmt.Sprintf("%s (%s) imports %s (%s); a %s package may import only %s",
				from, fromLayer, to, toLayer, fromLayer, describe(fromLayer)))
		}
	}
	for e := range exceptions {
		if !used[e] {
			stale = append(stale, e.from+" -> "+e.to)
		}
	}
	slices.Sort(violations)
	slices.Sort(unplaced)
	slices.Sort(stale)
	return violations, unplaced, stale
}

func describe(l layer) string {
	allowed := mayImport[l]
	if len(allowed) == 0 {
		return "the standard library and other modules"
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	s := strings.Join(names, ", ")
	if l == service {
		s += " (a service only its own subpackages)"
	}
	return s
}

// listPackages runs go list over the whole module.
func listPackages(t *testing.T) (module string, pkgs []pkg) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" {
		t.Fatal("go env GOMOD: not inside the module")
	}
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Module,Error", "./...")
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: package %s: %s", p.ImportPath, p.Error.Err)
		}
		if p.Module != nil {
			module = p.Module.Path
		}
		pkgs = append(pkgs, p)
	}
	if module == "" || len(pkgs) == 0 {
		t.Fatalf("go list found no packages of the module in %s", cmd.Dir)
	}
	return module, pkgs
}

// TestLayers checks every import of every package of the module, test
// files excepted, against the layers' rules.
func TestLayers(t *testing.T) {
	t.Parallel()
	module, pkgs := listPackages(t)
	violations, unplaced, stale := check(module, pkgs, knownExceptions)
	for _, u := range unplaced {
		t.Errorf("package %s has no layer: add it to layers (internal/arch) and to the Package map in docs/development.md", u)
	}
	for _, v := range violations {
		t.Error(v)
	}
	for _, s := range stale {
		t.Errorf("known exception %s no longer occurs: remove it from knownExceptions", s)
	}
}

// TestCheck shows that check finds what it must, on made-up packages.
func TestCheck(t *testing.T) {
	t.Parallel()
	const m = "example"
	p := func(path string, imports ...string) pkg {
		full := make([]string, len(imports))
		for i, imp := range imports {
			full[i] = m + "/" + imp
		}
		return pkg{ImportPath: m + "/" + path, Imports: append(full, "context", "github.com/x/y")}
	}
	cases := []struct {
		name           string
		pkgs           []pkg
		exceptions     map[edge]string
		wantViolations int
		wantUnplaced   []string
		wantStale      []string
	}{
		{name: "allowed directions", pkgs: []pkg{
			p("internal/event"),
			p("internal/queue", "internal/telemetry"),
			p("internal/queue/sqlitequeue", "internal/queue", "internal/logging"),
			p("internal/queue/queuetest", "internal/queue"),
			p("internal/dispatcher", "internal/dispatcher/target", "internal/event", "internal/auth"),
			p("internal/dispatcher/target", "internal/event"),
			p("internal/engines", "internal/queue/sqlitequeue"),
			p("ingest", "internal/engines", "internal/ingest"),
			p("internal/devstack", "internal/auth/devissuer", "internal/targetmock"),
		}},
		{name: "domain imports the project", pkgs: []pkg{p("internal/event", "internal/logging")}, wantViolations: 1},
		{name: "platform imports a port", pkgs: []pkg{p("internal/telemetry", "internal/queue")}, wantViolations: 1},
		{name: "platform imports a dev tool", pkgs: []pkg{p("internal/auth", "internal/auth/devissuer")}, wantViolations: 1},
		{name: "service imports a dev tool", pkgs: []pkg{p("internal/ingest", "internal/auth/devissuer")}, wantViolations: 1},
		{name: "service imports an engine", pkgs: []pkg{p("internal/dispatcher", "internal/status/sqlitestatus")}, wantViolations: 1},
		{name: "service imports the wiring", pkgs: []pkg{p("internal/ingest", "internal/engines")}, wantViolations: 1},
		{name: "service imports a mock", pkgs: []pkg{p("internal/dispatcher", "internal/targetmock")}, wantViolations: 1},
		{name: "service imports test support", pkgs: []pkg{p("internal/ingest", "internal/queue/queuetest")}, wantViolations: 1},
		{name: "production command imports a dev tool", pkgs: []pkg{p("ingest", "internal/devstack")}, wantViolations: 1},
		{name: "core subpackage imports a service", pkgs: []pkg{p("internal/governor/x", "internal/dispatcher")}, wantViolations: 1},
		{name: "unplaced package", pkgs: []pkg{p("internal/newthing")}, wantUnplaced: []string{"internal/newthing"}},
		{name: "known exception", pkgs: []pkg{p("internal/ingest", "internal/engines")},
			exceptions: map[edge]string{{"internal/ingest", "internal/engines"}: "test"}},
		{name: "stale exception", pkgs: []pkg{p("internal/ingest")},
			exceptions: map[edge]string{{"internal/ingest", "internal/engines"}: "test"},
			wantStale:  []string{"internal/ingest -> internal/engines"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			violations, unplaced, stale := check(m, tc.pkgs, tc.exceptions)
			if len(violations) != tc.wantViolations {
				t.Errorf("violations = %q, want %d", violations, tc.wantViolations)
			}
			if !slices.Equal(unplaced, tc.wantUnplaced) {
				t.Errorf("unplaced = %q, want %q", unplaced, tc.wantUnplaced)
			}
			if !slices.Equal(stale, tc.wantStale) {
				t.Errorf("stale = %q, want %q", stale, tc.wantStale)
			}
		})
	}
}
