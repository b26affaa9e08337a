package bootstraptest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"eventrelay/internal/testutil/scripttest"
)

const (
	project = "p"
	state   = "gs://p-tfstate"
	sources = "gs://p-eventrelay-sources"
)

// The first, targeted apply: the APIs, the registries, the sources bucket,
// every service account and the two metric descriptors the alerts read
// (ADR 0011), and nothing else.
var firstTargets = []string{
	"module.eventrelay.google_project_service.apis",
	"module.eventrelay.google_artifact_registry_repository.images",
	"module.eventrelay.google_artifact_registry_repository.function_images",
	"module.eventrelay.google_storage_bucket.sources",
	"module.eventrelay.google_service_account.runtime",
	"module.eventrelay.google_service_account.tasks_invoker",
	"module.eventrelay.google_service_account.scheduler",
	"module.eventrelay.google_service_account.smoke",
	"module.eventrelay.google_service_account.build",
	"module.eventrelay.google_service_account.ci",
	"module.eventrelay.google_service_account.function_builder",
	"module.eventrelay.google_service_account.terraform",
	"module.eventrelay.module.monitoring.google_monitoring_metric_descriptor.dispatch_attempts",
	"module.eventrelay.module.monitoring.google_monitoring_metric_descriptor.queue_oldest_age",
}

// fixture is one project's world: scripts/bootstrap.sh with the fakes in
// testdata/bin, their state and call log, the environment's values and the
// environment the script runs with.
type fixture struct {
	*scripttest.Fixture
	t      testing.TB
	tfvars string
}

func newFixture(t testing.TB, env map[string]string) *fixture {
	t.Helper()
	tfvars := filepath.Join(t.TempDir(), "values", "terraform.tfvars")
	f := &fixture{
		Fixture: scripttest.New(t, "../../scripts/bootstrap.sh", "testdata/bin", map[string]string{
			"PROJECT": project, "ENV": "dev", "REGION": "europe-west1", "AUTO_APPROVE": "true",
			"TFVARS": tfvars,
		}),
		t:      t,
		tfvars: tfvars,
	}
	f.Set(env)
	f.Write(f.tfvars, "# values\nproject_id   = \""+project+"\"\ngithub_owner = \"example\"\n")
	f.knob("billing")
	return f
}

// knob creates a marker file the fakes read (testdata/bin/gcloud).
func (f *fixture) knob(name string) { f.Write(filepath.Join(f.State, name), "") }

func (f *fixture) unknob(name string) {
	f.t.Helper()
	if err := os.RemoveAll(filepath.Join(f.State, name)); err != nil {
		f.t.Fatal(err)
	}
}

// applies returns the positions of the terraform apply calls.
func applies(calls []string) []int {
	var out []int
	for i, c := range calls {
		if strings.HasPrefix(c, "terraform ") && slices.Contains(strings.Fields(c), "apply") {
			out = append(out, i)
		}
	}
	return out
}

func targets(call string) []string {
	var out []string
	for _, w := range strings.Fields(call) {
		if t, ok := strings.CutPrefix(w, "-target="); ok {
			out = append(out, t)
		}
	}
	return out
}

// before fails the test unless the first call matching a comes before the
// first call matching b, both present.
func before(t *testing.T, calls []string, what string, a, b []string) {
	t.Helper()
	i, j := scripttest.Index(calls, a...), scripttest.Index(calls, b...)
	switch {
	case i < 0:
		t.Errorf("%s: no call with %q; calls:\n%s", what, a, strings.Join(calls, "\n"))
	case j < 0:
		t.Errorf("%s: no call with %q; calls:\n%s", what, b, strings.Join(calls, "\n"))
	case i > j:
		t.Errorf("%s: %q (call %d) came after %q (call %d); calls:\n%s", what, a, i, b, j, strings.Join(calls, "\n"))
	}
}

// TestFromEmptyProject: on a project with nothing in it, each step comes
// after what it needs.
func TestFromEmptyProject(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, map[string]string{"ENV": env})
			out := f.MustRun()
			calls := f.Calls()
			init := []string{"terraform ", " init "}

			before(t, calls, "the storage API before the state bucket",
				[]string{"gcloud services enable ", "storage.googleapis.com", "--project " + project},
				[]string{"gcloud storage buckets create " + state})
			before(t, calls, "the state bucket before its versioning",
				[]string{"gcloud storage buckets create " + state},
				[]string{"gcloud storage buckets update " + state + " --versioning"})
			before(t, calls, "versioning before terraform init",
				[]string{"gcloud storage buckets update " + state + " --versioning"}, init)
			if c := scripttest.Matching(calls, init...); len(c) != 1 || !scripttest.ContainsAll(c[0], "-chdir=terraform/environments/"+env, "-backend-config=bucket=p-tfstate") {
				t.Errorf("init calls %q, want one of terraform/environments/%s on bucket p-tfstate", c, env)
			}
			if c := scripttest.Matching(calls, "gcloud storage buckets create "+state); len(c) == 1 && !scripttest.ContainsAll(c[0], "--location europe-west1", "--uniform-bucket-level-access", "--public-access-prevention") {
				t.Errorf("state bucket created without its location or access settings: %s", c[0])
			}

			a := applies(calls)
			if len(a) != 2 {
				t.Fatalf("%d terraform applies, want the targeted one then the full one; calls:\n%s", len(a), strings.Join(calls, "\n"))
			}
			first, full := calls[a[0]], calls[a[1]]
			if got := targets(first); !slices.Equal(got, firstTargets) {
				t.Errorf("the first apply targets\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(firstTargets, "\n"))
			}
			if got := targets(full); len(got) > 0 {
				t.Errorf("the second apply targets %q: it must apply everything", got)
			}
			upload := []string{"gcloud storage cp " + f.tfvars + " " + state + "/eventrelay/" + env + "/terraform.tfvars"}
			if i := scripttest.Index(calls, upload...); i < 0 || i > a[0] {
				t.Errorf("the values uploaded at call %d, the first apply is call %d: the pipeline reads them from the bucket", i, a[0])
			}
			if i := scripttest.Index(calls, init...); i > a[0] {
				t.Errorf("init (call %d) after the first apply (call %d)", i, a[0])
			}
			for _, c := range []string{first, full} {
				if !strings.Contains(c, "-var-file="+f.tfvars) || !strings.Contains(c, "-chdir=terraform/environments/"+env) {
					t.Errorf("an apply without the environment's directory and values: %s", c)
				}
			}
			got, err := os.ReadFile(filepath.Join(f.State, "buckets", "p-tfstate", "eventrelay", env, "terraform.tfvars"))
			want, _ := os.ReadFile(f.tfvars)
			if err != nil || string(got) != string(want) {
				t.Errorf("the uploaded values are %q (%v), want %q", got, err, want)
			}

			zip := []string{"gcloud storage cp ", sources + "/sourcemock/bootstrap.zip"}
			if env == "dev" {
				i := scripttest.Index(calls, zip...)
				if i < a[0] || i > a[1] {
					t.Errorf("the function's source uploaded at call %d, want between the applies (%d, %d)", i, a[0], a[1])
				}
				b, err := os.ReadFile(filepath.Join(f.State, "buckets", "p-eventrelay-sources", "sourcemock", "bootstrap.zip"))
				if err != nil || !strings.HasPrefix(string(b), "PK") {
					t.Errorf("sourcemock/bootstrap.zip is not a zip (%v)", err)
				}
			} else if c := scripttest.Matching(calls, zip...); len(c) > 0 {
				t.Errorf("prod has no sourcemock, yet: %q", c)
			}
			if c := scripttest.Matching(calls, "builds triggers run"); len(c) > 0 {
				t.Errorf("the pipeline started without RUN_PIPELINE=true: %q", c)
			}

			last := -1
			for n := 1; n <= 9; n++ {
				i := strings.Index(out, fmt.Sprintf("== step %d/9: ", n))
				if i < 0 || i < last {
					t.Errorf("step %d not printed after step %d:\n%s", n, n-1, out)
				}
				last = i
			}
		})
	}
}

// TestRefuses: without what it needs the script stops before it changes
// anything.
func TestRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		setup   func(f *fixture)
		say     string
		allowed []string // calls it may make: read-only checks
	}{
		{name: "no PROJECT", env: map[string]string{"PROJECT": ""}, say: "PROJECT is required"},
		{name: "no ENV", env: map[string]string{"ENV": ""}, say: "ENV must be dev or prod"},
		{name: "unknown ENV", env: map[string]string{"ENV": "staging"}, say: "ENV must be dev or prod"},
		{name: "no values", setup: func(f *fixture) {
			if err := os.Remove(f.tfvars); err != nil {
				f.t.Fatal(err)
			}
		}, say: "not found"},
		{name: "values of another project", setup: func(f *fixture) { f.Write(f.tfvars, "project_id = \"other\"\n") }, say: `project_id = "other"`},
		{name: "unknown argument", args: []string{"--yes"}, say: "unknown argument"},
		{name: "no such project", setup: func(f *fixture) { f.knob("no-project") }, say: "create it first",
			allowed: []string{"gcloud projects describe"}},
		{name: "billing off", setup: func(f *fixture) { f.unknob("billing") }, say: "billing is not enabled",
			allowed: []string{"gcloud projects describe", "gcloud billing projects describe"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.env)
			if tc.setup != nil {
				tc.setup(f)
			}
			out, err := f.Run(tc.args...)
			if err == nil {
				t.Fatalf("bootstrap passed:\n%s", out)
			}
			if !strings.Contains(out, tc.say) {
				t.Errorf("output does not say %q:\n%s", tc.say, out)
			}
			for _, c := range f.Calls() {
				if !slices.ContainsFunc(tc.allowed, func(p string) bool { return strings.HasPrefix(c, p) }) {
					t.Errorf("a call before refusing: %s", c)
				}
			}
		})
	}
}

// TestLinksBilling: with BILLING_ACCOUNT the project is linked before
// anything is enabled in it.
func TestLinksBilling(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]string{"BILLING_ACCOUNT": "0X0X0X-0X0X0X-0X0X0X"})
	f.unknob("billing")
	f.MustRun()
	calls := f.Calls()
	before(t, calls, "billing before the APIs",
		[]string{"gcloud billing projects link " + project + " --billing-account=0X0X0X-0X0X0X-0X0X0X"},
		[]string{"gcloud services enable "})
}

// TestRerun: running it again on a bootstrapped project, or on a state
// bucket made by hand, creates no bucket and converges the rest.
func TestRerun(t *testing.T) {
	t.Parallel()
	t.Run("again", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		f.MustRun()
		n := len(f.Calls())
		out := f.MustRun()
		again := f.Calls()[n:]
		if c := scripttest.Matching(again, "buckets create"); len(c) > 0 {
			t.Errorf("the second run created %q", c)
		}
		if !strings.Contains(out, state+" exists") {
			t.Errorf("the second run does not say the bucket exists:\n%s", out)
		}
		before(t, again, "versioning before init, again",
			[]string{"gcloud storage buckets update " + state + " --versioning"}, []string{"terraform ", " init "})
		if a := applies(again); len(a) != 2 {
			t.Errorf("the second run applied %d times, want 2", len(a))
		}
	})
	t.Run("bucket made by hand", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, nil)
		f.Write(filepath.Join(f.State, "buckets", "p-tfstate", "notes"), "") // exists, not versioned
		f.MustRun()
		calls := f.Calls()
		if c := scripttest.Matching(calls, "buckets create "+state); len(c) > 0 {
			t.Errorf("created an existing bucket: %q", c)
		}
		before(t, calls, "versioning of the existing bucket before init",
			[]string{"gcloud storage buckets update " + state + " --versioning"}, []string{"terraform ", " init "})
	})
}

var zipPath = regexp.MustCompile(`\S*/sourcemock-function\.zip`)

// TestDryRun: --dry-run calls nothing and prints exactly the commands a
// run on an empty project makes, in the same order.
func TestDryRun(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"dev", "prod"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, map[string]string{"ENV": env, "RUN_PIPELINE": "true"})
			out := f.MustRun("--dry-run")
			if c := f.Calls(); len(c) > 0 {
				t.Fatalf("the dry run made calls:\n%s", strings.Join(c, "\n"))
			}
			var printed []string
			for _, line := range strings.Split(out, "\n") {
				if cmd, ok := strings.CutPrefix(line, "+ "); ok && (strings.HasPrefix(cmd, "gcloud ") || strings.HasPrefix(cmd, "terraform ")) {
					printed = append(printed, zipPath.ReplaceAllString(strings.ReplaceAll(cmd, "'", ""), "ZIP"))
				}
			}
			f.MustRun()
			var made []string
			for _, c := range f.Calls() {
				made = append(made, zipPath.ReplaceAllString(c, "ZIP"))
			}
			if !slices.Equal(printed, made) {
				t.Errorf("the dry run printed\n%s\n\nthe run made\n%s", strings.Join(printed, "\n"), strings.Join(made, "\n"))
			}
		})
	}
}

// TestApproval: Terraform asks before each apply unless AUTO_APPROVE=true.
func TestApproval(t *testing.T) {
	t.Parallel()
	for _, auto := range []string{"", "true"} {
		f := newFixture(t, map[string]string{"AUTO_APPROVE": auto})
		f.MustRun()
		calls := f.Calls()
		for _, i := range applies(calls) {
			fields := strings.Fields(calls[i])
			if got := slices.Contains(fields, "-auto-approve"); got != (auto == "true") {
				t.Errorf("AUTO_APPROVE=%q: %s", auto, calls[i])
			}
			// -input=false without -auto-approve would refuse every plan.
			if slices.Contains(fields, "-input=false") != slices.Contains(fields, "-auto-approve") {
				t.Errorf("-input=false and -auto-approve apart: %s", calls[i])
			}
		}
	}
}

// TestRunPipeline: RUN_PIPELINE=true starts the environment's deploy
// trigger on main, after everything is applied.
func TestRunPipeline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]string{"ENV": "prod", "RUN_PIPELINE": "true"})
	f.MustRun()
	calls := f.Calls()
	want := "gcloud builds triggers run eventrelay-prod-deploy --branch=main --project " + project
	if calls[len(calls)-1] != want {
		t.Errorf("last call %q, want %q", calls[len(calls)-1], want)
	}
	if c := scripttest.Matching(calls, "builds triggers run"); len(c) != 1 {
		t.Errorf("trigger runs %q, want one", c)
	}
}
