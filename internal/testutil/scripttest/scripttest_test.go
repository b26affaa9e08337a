package scripttest_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"eventrelay/internal/testutil/scripttest"
)

// newFixture writes a script that calls a fake "tool" twice and prints its
// environment, and the fake, which records each call in $FAKE_LOG.
func newFixture(t *testing.T, env map[string]string) *scripttest.Fixture {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	script := filepath.Join(dir, "script.sh")
	f := scripttest.New(t, script, bin, env)
	f.Write(filepath.Join(bin, "tool"), "#!/usr/bin/env bash\necho \"tool $*\" >>\"$FAKE_LOG\"\n")
	if err := os.Chmod(filepath.Join(bin, "tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.Write(script, `tool first "$1"
tool second --state "$(cat "$FAKE_STATE/knob")"
echo "GREETING=${GREETING:-unset} HOME_EMPTY=$(ls -A "$HOME" | wc -l)"
`)
	f.Write(filepath.Join(f.State, "knob"), "on")
	return f
}

func TestFixture(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]string{"GREETING": "hello"})

	if got := f.Calls(); got != nil {
		t.Errorf("Calls before a run = %q, want none", got)
	}
	out := f.MustRun("arg")
	if want := "GREETING=hello HOME_EMPTY=0"; strings.TrimSpace(out) != want {
		t.Errorf("output = %q, want %q", out, want)
	}
	want := []string{"tool first arg", "tool second --state on"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls = %q, want %q", got, want)
	}
	if got := f.Matching("tool", "--state"); !slices.Equal(got, want[1:]) {
		t.Errorf("Matching = %q, want %q", got, want[1:])
	}
	if got := f.Index("second"); got != 1 {
		t.Errorf("Index(second) = %d, want 1", got)
	}
	if got := f.Index("third"); got != -1 {
		t.Errorf("Index(third) = %d, want -1", got)
	}

	f.Set(map[string]string{"GREETING": ""})
	if out := f.MustRun("arg"); !strings.Contains(out, "GREETING=unset") {
		t.Errorf("after Set(GREETING \"\"), output = %q, want GREETING unset", out)
	}
}

func TestFixture_runFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if err := os.Remove(filepath.Join(f.State, "knob")); err != nil {
		t.Fatal(err)
	}
	f.Write(f.Script, "set -e\ncat \"$FAKE_STATE/knob\"\n")
	if out, err := f.Run(); err == nil {
		t.Errorf("Run of a failing script = nil error, output %q", out)
	}
}
