package infra

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"eventrelay/internal/version"
)

// terraformBinary returns the terraform binary, or skips saying why — and
// fails instead when REQUIRE_TERRAFORM=1 (CI sets it).
func terraformBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err == nil {
		return bin
	}
	msg := "terraform is not installed: install Terraform 1.11 to run the Terraform loading checks"
	if os.Getenv("REQUIRE_TERRAFORM") == "1" {
		t.Fatalf("%s (REQUIRE_TERRAFORM=1 forbids skipping)", msg)
	}
	t.Skip(msg)
	return ""
}

// copyTree copies dir src to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

var backendBlock = regexp.MustCompile(`(?s)\n\s*backend "gcs" \{.*?\n\s*\}\n`)

// TestTerraformLoads has the real Terraform load each environment with its
// whole module tree: every file parses as the Terraform language (blocks,
// meta-arguments, lifecycle paths) and the provider requirements agree.
// The backend is stripped from a copy, because initialising it needs the
// network. It needs no provider, so it runs where `make tf-test` (terraform
// validate and terraform test, which need the google provider) skips.
func TestTerraformLoads(t *testing.T) {
	t.Parallel()
	bin := terraformBinary(t)
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			copyTree(t, filepath.Join(repo, "terraform"), root)
			dir := filepath.Join(root, "environments", env)
			versions := filepath.Join(dir, "versions.tf")
			src, err := os.ReadFile(versions)
			if err != nil {
				t.Fatal(err)
			}
			stripped := backendBlock.ReplaceAll(src, []byte("\n"))
			if len(stripped) == len(src) {
				t.Fatalf("no backend \"gcs\" block found in %s", versions)
			}
			if err := os.WriteFile(versions, stripped, 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(bin, append([]string{"-chdir=" + dir}, args...)...)
				cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null", "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			run("get", "-no-color")
			out := run("providers", "-no-color")
			for _, want := range []string{"module.eventrelay", "module.region", "module.monitoring", "hashicorp/google] ~> 7.30"} {
				if !strings.Contains(out, want) {
					t.Errorf("terraform providers output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestTerraformFormatted is terraform fmt -check in Go, so a developer
// running only go test sees it too.
func TestTerraformFormatted(t *testing.T) {
	t.Parallel()
	bin := terraformBinary(t)
	cmd := exec.Command(bin, "fmt", "-check", "-recursive", "-list=true", filepath.Join(repo, "terraform"))
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("terraform fmt -check: %v; run make tf-fmt:\n%s", err, out)
	}
}

// TestFunctionSourceBuilds assembles the sourcemock function's deployable
// source (the wrapper module of ADR 0007) and builds it offline the way the
// Cloud Functions Go build does: a main package importing the module's root
// package and starting the Functions Framework.
func TestFunctionSourceBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the function source (-short)")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fn")
	script, err := filepath.Abs(filepath.Join(repo, "scripts", "function-source.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("function-source.sh: %v\n%s", err, out)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(gomod), "module eventrelay.dev/sourcemockfn\n") {
		t.Errorf("the function module path must have a dot:\n%s", gomod)
	}
	if _, err := os.Stat(filepath.Join(dir, "eventrelay", "internal", "sourcemock", "sender_test.go")); !os.IsNotExist(err) {
		t.Errorf("tests were copied into the function source (stat: %v)", err)
	}
	main := filepath.Join(dir, "buildpackmain")
	if err := os.MkdirAll(main, 0o755); err != nil {
		t.Fatal(err)
	}
	const src = `package main

import (
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "eventrelay.dev/sourcemockfn"
)

func main() {
	if err := funcframework.Start(os.Getenv("PORT")); err != nil {
		panic(err)
	}
}
`
	if err := os.WriteFile(filepath.Join(main, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./...")
	cmd.Dir = dir
	// Offline, and exactly the checksums of the repository's go.sum.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the function source: %v\n%s", err, out)
	}
}

// TestDockerfile checks the image recipe: multi-stage, one service by
// build argument, -trimpath, the version stamped into a symbol that exists,
// a distroless nonroot runtime.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := string(readRepo(t, "Dockerfile"))
	_ = version.Version // the -X target below must keep existing
	cases := []struct {
		name string
		re   string
	}{
		{"multi-stage", `(?m)^FROM golang:\S+ AS build$`},
		{"service build argument", `(?m)^ARG SERVICE$`},
		{"trimpath", `go build -trimpath`},
		{"static binary", `CGO_ENABLED=0`},
		{"version stamped", `-X eventrelay/internal/version\.Version=\$\{VERSION\}`},
		{"distroless nonroot runtime", `(?m)^FROM gcr\.io/distroless/static[a-z0-9-]*:nonroot$`},
		{"nonroot user", `(?m)^USER nonroot`},
	}
	for _, tc := range cases {
		if !regexp.MustCompile(tc.re).MatchString(df) {
			t.Errorf("Dockerfile: %s: no match for %s", tc.name, tc.re)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a build and a runtime stage", n)
	}
	if strings.Contains(df, ":latest") {
		t.Error("Dockerfile refers to a latest tag")
	}
}
