// Package scripttest runs a shell script against fake commands and reads
// back what the fakes recorded.
//
// A Fixture runs Script under bash with only its environment: Bin (the
// package's fakes, e.g. testdata/bin) first on PATH, then the system
// directories; a fresh HOME; FAKE_STATE, a directory the fakes keep their
// state in and the test arranges; FAKE_LOG, the file each fake appends one
// line per call to ("gcloud run deploy ..."); and Env. The fakes themselves
// stay with the package that tests the script.
package scripttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Fixture is one script's world. New fills State and Log; Env may be
// changed between runs.
type Fixture struct {
	Script string            // the script, run as bash Script args...
	Bin    string            // the fake commands, first on PATH
	Env    map[string]string // extra environment
	State  string            // $FAKE_STATE, an existing directory
	Log    string            // $FAKE_LOG, absent until a fake is called

	t testing.TB
}

// New returns a Fixture for script with the fakes in bin, its own state
// directory and call log, and a copy of env.
func New(t testing.TB, script, bin string, env map[string]string) *Fixture {
	t.Helper()
	dir := t.TempDir()
	f := &Fixture{
		Script: script,
		Bin:    bin,
		Env:    map[string]string{},
		State:  filepath.Join(dir, "fake"),
		Log:    filepath.Join(dir, "calls.log"),
		t:      t,
	}
	if err := os.MkdirAll(f.State, 0o755); err != nil {
		t.Fatal(err)
	}
	f.Set(env)
	return f
}

// Set applies env to Env: an empty value removes the variable.
func (f *Fixture) Set(env map[string]string) {
	for k, v := range env {
		if v == "" {
			delete(f.Env, k)
		} else {
			f.Env[k] = v
		}
	}
}

// Write writes content to path, creating its directories: a file the
// fakes or the script read, usually under State.
func (f *Fixture) Write(path, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// Run runs the script with args and the fixture's environment only, and
// returns its combined output.
func (f *Fixture) Run(args ...string) (string, error) {
	f.t.Helper()
	bin, err := filepath.Abs(f.Bin)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{f.Script}, args...)...)
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + f.t.TempDir(),
		"FAKE_STATE=" + f.State, "FAKE_LOG=" + f.Log,
	}
	for k, v := range f.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustRun runs the script and fails the test if it fails.
func (f *Fixture) MustRun(args ...string) string {
	f.t.Helper()
	out, err := f.Run(args...)
	if err != nil {
		f.t.Fatalf("%s %v: %v\n%s", filepath.Base(f.Script), args, err, out)
	}
	return out
}

// Calls returns every call the fakes recorded, in order.
func (f *Fixture) Calls() []string {
	f.t.Helper()
	b, err := os.ReadFile(f.Log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Matching returns the recorded calls that contain every one of parts.
func (f *Fixture) Matching(parts ...string) []string {
	f.t.Helper()
	return Matching(f.Calls(), parts...)
}

// Index returns the position of the first recorded call containing every
// one of parts, or -1.
func (f *Fixture) Index(parts ...string) int {
	f.t.Helper()
	return Index(f.Calls(), parts...)
}

// ContainsAll reports whether s contains every one of parts.
func ContainsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Matching returns the calls that contain every one of parts.
func Matching(calls []string, parts ...string) []string {
	var out []string
	for _, c := range calls {
		if ContainsAll(c, parts...) {
			out = append(out, c)
		}
	}
	return out
}

// Index returns the position of the first call containing every one of
// parts, or -1.
func Index(calls []string, parts ...string) int {
	return slices.IndexFunc(calls, func(c string) bool { return ContainsAll(c, parts...) })
}
