package infra

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func readRepo(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRepositoryCloudBuild checks cloudbuild.yaml against the Makefile.
func TestRepositoryCloudBuild(t *testing.T) {
	t.Parallel()
	cb, err := parseCloudBuild(readRepo(t, "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkCloudBuild(cb, makeTargets(readRepo(t, "Makefile"))) {
		t.Error(f)
	}
	// The pipeline's shape: deploy without traffic, smoke test, then shift.
	var ids []string
	for _, s := range cb.Steps {
		ids = append(ids, s.ID)
	}
	order := []string{"test", "images", "tf-plan", "tf-apply", "deploy", "smoke-ingest", "promote-dispatcher", "smoke-delivery", "promote-ingest"}
	last := -1
	for _, id := range order {
		i := slices.Index(ids, id)
		if i < 0 {
			t.Errorf("no step %q", id)
			continue
		}
		if i < last {
			t.Errorf("step %q comes before a step it must follow (want order %v)", id, order)
		}
		last = i
	}
}

// TestTriggerSubstitutionsDeclared: every substitution the Terraform
// triggers pass is declared in cloudbuild.yaml (Cloud Build refuses unknown
// ones), and the file declares none the triggers do not set.
func TestTriggerSubstitutionsDeclared(t *testing.T) {
	t.Parallel()
	cb, err := parseCloudBuild(readRepo(t, "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keys := triggerSubstitutions(loadRepo(t))
	if !slices.Contains(keys, "_DEPLOY") || !slices.Contains(keys, "_REPOSITORY") {
		t.Fatalf("trigger substitutions %v lack _DEPLOY or _REPOSITORY: the parser lost them", keys)
	}
	for _, k := range keys {
		if _, ok := cb.Substitutions[k]; !ok {
			t.Errorf("the triggers pass %s, which cloudbuild.yaml does not declare", k)
		}
	}
	for k := range cb.Substitutions {
		if !slices.Contains(keys, k) {
			t.Errorf("cloudbuild.yaml declares %s, which no trigger sets", k)
		}
	}
}

const goodBuild = `
substitutions:
  _REPO: r
options:
  logging: CLOUD_LOGGING_ONLY
timeout: 600s
steps:
  - id: ci-image
    name: gcr.io/cloud-builders/docker
    args: [build, -t, ci, .]
  - id: test
    name: ci
    entrypoint: make
    args: [test]
    waitFor: [ci-image]
  - id: images
    name: ci
    entrypoint: make
    args: [images, TAG=$COMMIT_SHA, "REPOSITORY=${_REPO}"]
    waitFor: [test]
  - id: shell
    name: ci
    entrypoint: make
    args: [deploy, NAME=$$HOME]
`

// TestCloudBuildRules shows each cloudbuild rule catching its violation.
func TestCloudBuildRules(t *testing.T) {
	t.Parallel()
	targets := map[string]bool{"test": true, "images": true, "deploy": true}
	cases := []struct {
		name    string
		edit    func(string) string
		wantMsg string // "" means no finding
	}{
		{name: "conforming", edit: func(s string) string { return s }},
		{name: "duplicate id", edit: func(s string) string { return strings.Replace(s, "id: shell", "id: test", 1) }, wantMsg: "duplicate step id test"},
		{name: "missing id", edit: func(s string) string { return strings.Replace(s, "  - id: shell\n    name: ci", "  - name: ci", 1) }, wantMsg: "has no id"},
		{name: "waitFor unknown step", edit: func(s string) string { return strings.Replace(s, "waitFor: [test]", "waitFor: [tests]", 1) }, wantMsg: `waits for "tests"`},
		{name: "waitFor later step", edit: func(s string) string { return strings.Replace(s, "waitFor: [test]", "waitFor: [shell]", 1) }, wantMsg: `waits for "shell"`},
		{name: "substitution without underscore", edit: func(s string) string { return strings.Replace(s, "_REPO: r", "_REPO: r\n  REPO2: x", 1) }, wantMsg: "must start with _"},
		{name: "undeclared substitution", edit: func(s string) string { return strings.Replace(s, "${_REPO}", "${_REGISTRY}", 1) }, wantMsg: "does not declare"},
		{name: "unescaped shell variable", edit: func(s string) string { return strings.Replace(s, "$$HOME", "$HOME", 1) }, wantMsg: "neither built in nor declared"},
		{name: "no logging option", edit: func(s string) string {
			return strings.Replace(s, "  logging: CLOUD_LOGGING_ONLY\n", "  machineType: E2_HIGHCPU_8\n", 1)
		}, wantMsg: "options.logging"},
		{name: "latest tag", edit: func(s string) string { return strings.Replace(s, "TAG=$COMMIT_SHA", "TAG=latest", 1) }, wantMsg: "latest"},
		{name: "branch tag", edit: func(s string) string { return strings.Replace(s, "TAG=$COMMIT_SHA", "TAG=$BRANCH_NAME", 1) }, wantMsg: "not $COMMIT_SHA"},
		{name: "images untagged", edit: func(s string) string { return strings.Replace(s, "TAG=$COMMIT_SHA, ", "", 1) }, wantMsg: "without TAG=$COMMIT_SHA"},
		{name: "images entry by latest", edit: func(s string) string { return s + "images: [r/ingest:latest]\n" }, wantMsg: "not tagged with the commit"},
		{name: "fat step", edit: func(s string) string {
			return strings.Replace(s, "    entrypoint: make\n    args: [deploy, NAME=$$HOME]", "    entrypoint: bash\n    args: [-c, gcloud run deploy]", 1)
		}, wantMsg: "not a `make <target>` step"},
		{name: "unknown make target", edit: func(s string) string { return strings.Replace(s, "args: [deploy,", "args: [ship,", 1) }, wantMsg: "does not define"},
		{name: "misspelt key", edit: func(s string) string { return strings.Replace(s, "waitFor: [ci-image]", "waitfor: [ci-image]", 1) }, wantMsg: "parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cb, err := parseCloudBuild([]byte(tc.edit(goodBuild)))
			if err != nil {
				if tc.wantMsg == "parse" {
					return
				}
				t.Fatal(err)
			}
			findings := checkCloudBuild(cb, targets)
			if tc.wantMsg == "" {
				for _, f := range findings {
					t.Errorf("unexpected finding: %v", f)
				}
				return
			}
			for _, f := range findings {
				if strings.Contains(f.msg, tc.wantMsg) {
					return
				}
			}
			t.Errorf("no finding containing %q; got %v", tc.wantMsg, findings)
		})
	}
}

func TestMakeTargets(t *testing.T) {
	t.Parallel()
	got := makeTargets([]byte("A ?= 1\nB := 2\n.PHONY: x\nx: y\n\techo\ny:\ntf-plan tf-apply: z\n"))
	for _, want := range []string{"x", "y", "tf-plan", "tf-apply"} {
		if !got[want] {
			t.Errorf("target %q not found in %v", want, got)
		}
	}
	for _, not := range []string{"A", "B"} {
		if got[not] {
			t.Errorf("variable %q read as a target", not)
		}
	}
}
