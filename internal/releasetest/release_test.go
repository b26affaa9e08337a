package releasetest_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"eventrelay/internal/testutil/scripttest"
)

const (
	tag         = "0123456789abcdef0123456789abcdef01234567"
	revtag      = "c-0123456789ab"
	repository  = "europe-west1-docker.pkg.dev/p/eventrelay"
	placeholder = "us-docker.pkg.dev/cloudrun/container/hello"
	primary     = "europe-west1"
	second      = "europe-north1"
)

// fixture is one run's world: scripts/release.sh with the fakes in
// testdata/bin, their state and call log, the script's release state, and
// the environment Make would pass.
type fixture struct {
	*scripttest.Fixture
	t       testing.TB
	release string // $RELEASE_STATE
}

func newFixture(t testing.TB, env map[string]string) *fixture {
	t.Helper()
	f := &fixture{
		Fixture: scripttest.New(t, "../../scripts/release.sh", "testdata/bin", map[string]string{
			"DEPLOY": "true", "PROJECT": "p", "ENV": "dev", "REGION": primary, "REGIONS": primary,
			"TAG": tag, "REPOSITORY": repository, "SMOKE_SA": "eventrelay-smoke@p.iam.gserviceaccount.com",
			"INGEST_AUDIENCE": "https://ingest.example", "FIRESTORE_DATABASE": "(default)",
			"TARGETMOCK": "true", "SMOKE_MODE": "delivery", "SMOKE_COUNT": "2", "SMOKE_POLL": "0", "SMOKE_TIMEOUT": "30",
		}),
		t:       t,
		release: filepath.Join(t.TempDir(), "release"),
	}
	f.Env["RELEASE_STATE"] = f.release
	f.Set(env)
	return f
}

// service puts svc in region, serving one revision with image: a release of
// this pipeline (svc-00001-old) or the placeholder Terraform deploys
// (svc-00001-tf).
func (f *fixture) service(region, svc, image string) string {
	f.t.Helper()
	rev := svc + "-00001-old"
	if image == placeholder {
		rev = svc + "-00001-tf"
	}
	dir := filepath.Join(f.State, "run", region, svc)
	if err := os.RemoveAll(dir); err != nil {
		f.t.Fatal(err)
	}
	f.Write(filepath.Join(dir, "traffic"), "100,"+rev+",,\n")
	f.Write(filepath.Join(dir, "latest"), rev+"\n")
	f.Write(filepath.Join(dir, rev+".images"), image+";otelcol-google:0.143.0\n")
	return rev
}

// services puts every service the script deploys in regions (targetmock
// in the primary region only), all serving a release or all the placeholder.
func (f *fixture) services(released bool, regions ...string) {
	f.t.Helper()
	for _, r := range regions {
		svcs := []string{"ingest", "dispatcher"}
		if r == primary {
			svcs = append(svcs, "targetmock")
		}
		for _, s := range svcs {
			image := placeholder
			if released {
				image = repository + "/" + s + ":previous"
			}
			f.service(r, s, image)
		}
	}
}

// knob sets one of the fakes' knobs (testdata/bin/curl, gcloud).
func (f *fixture) knob(name, value string) {
	f.t.Helper()
	f.Write(filepath.Join(f.State, name), value)
}

// serving returns the fake Cloud Run's traffic split of svc in region ("rev=pct,...").
func (f *fixture) serving(region, svc string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.State, "run", region, svc, "traffic"))
	if err != nil {
		f.t.Fatal(err)
	}
	var split []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fields := strings.Split(line, ",")
		if fields[0] != "" {
			split = append(split, fields[1]+"="+fields[0])
		}
	}
	return strings.Join(split, ",")
}

// accepted returns the events the fake ingest accepted: each would have been
// queued for the dispatcher, and so for the target.
func (f *fixture) accepted() []string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.State, "accepted"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func (f *fixture) releaseFile(name string) (string, bool) {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.release, name))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), true
}

// flagValue returns the value after flag in a recorded call, or "".
func flagValue(call, flag string) string {
	fields := strings.Fields(call)
	if i := slices.Index(fields, flag); i >= 0 && i+1 < len(fields) {
		return fields[i+1]
	}
	return ""
}

func TestSkippedUnlessDeploy(t *testing.T) {
	t.Parallel()
	cmds := []string{"tf-plan", "tf-apply", "deploy", "smoke", "promote", "rollback", "function-upload", "function-deploy"}
	for _, deploy := range []string{"", "false", "yes", "TRUE"} {
		for _, cmd := range cmds {
			t.Run(deploy+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, map[string]string{"DEPLOY": deploy})
				f.services(true, primary)
				out := f.MustRun(cmd)
				if !strings.Contains(out, "skipped") {
					t.Errorf("output %q does not say the step was skipped", out)
				}
				if calls := f.Calls(); len(calls) > 0 {
					t.Errorf("DEPLOY=%q %s made calls:\n%s", deploy, cmd, strings.Join(calls, "\n"))
				}
			})
		}
	}
}

// TestDeploy: every service in every region gets a new revision without
// traffic, tagged with the commit, with the image on the application's
// container only; what served before is recorded for rollback.
func TestDeploy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		regions []string
		want    []string // "service region", in order
	}{
		{name: "one region", regions: []string{primary},
			want: []string{"ingest " + primary, "dispatcher " + primary, "targetmock " + primary}},
		{name: "two regions, targetmock in the primary only", regions: []string{primary, second},
			want: []string{"ingest " + primary, "dispatcher " + primary, "targetmock " + primary, "ingest " + second, "dispatcher " + second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, map[string]string{"REGIONS": strings.Join(tc.regions, ",")})
			f.services(true, tc.regions...)
			f.MustRun("deploy")

			deploys := f.Matching("gcloud run deploy ")
			var got []string
			for _, c := range deploys {
				svc := strings.Fields(c)[3]
				got = append(got, svc+" "+flagValue(c, "--region"))
				fields := strings.Fields(c)
				container, image := slices.Index(fields, "--container"), slices.Index(fields, "--image")
				switch {
				case !slices.Contains(fields, "--no-traffic"):
					t.Errorf("deploy without --no-traffic: %s", c)
				case flagValue(c, "--tag") != revtag:
					t.Errorf("deploy tagged %q, want %q: %s", flagValue(c, "--tag"), revtag, c)
				case flagValue(c, "--container") != svc:
					t.Errorf("deploy of %s names container %q: %s", svc, flagValue(c, "--container"), c)
				case flagValue(c, "--image") != repository+"/"+svc+":"+tag:
					t.Errorf("deploy of %s with image %q: %s", svc, flagValue(c, "--image"), c)
				case image < container:
					t.Errorf("--image comes before --container, so it would not be scoped to the app: %s", c)
				case slices.Index(fields, "--no-traffic") > container || slices.Index(fields, "--tag") > container:
					t.Errorf("service flags after --container (gcloud wants them before): %s", c)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("deployed %q, want %q", got, tc.want)
			}
			if c := f.Matching("update-traffic"); len(c) > 0 {
				t.Errorf("deploy moved traffic: %q", c)
			}
			for _, sr := range tc.want {
				s, r, _ := strings.Cut(sr, " ")
				if prev, _ := f.releaseFile("previous-" + s + "-" + r); prev != s+"-00001-old=100" {
					t.Errorf("recorded previous of %s in %s = %q, want %q", s, r, prev, s+"-00001-old=100")
				}
				if _, ok := f.releaseFile("bootstrap-" + s + "-" + r); ok {
					t.Errorf("%s in %s serves a release, but deploy marked it bootstrap", s, r)
				}
				if got := f.serving(r, s); got != s+"-00001-old=100" {
					t.Errorf("after deploy %s in %s serves %q; the new revision must get no traffic", s, r, got)
				}
			}
		})
	}
}

// TestDeployRefusesWithoutPrevious: no deploy without a split to roll back to.
func TestDeployRefusesWithoutPrevious(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, knob, content string }{
		{name: "describe fails", knob: "fail-describe"},
		{name: "no revision serves", knob: "run/" + primary + "/ingest/traffic", content: ",ingest-00001-old,c-old,https://c-old---ingest\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			f.services(true, primary)
			f.knob(tc.knob, tc.content)
			if out, err := f.Run("deploy"); err == nil {
				t.Fatalf("deploy succeeded without knowing what serves:\n%s", out)
			}
			if c := f.Matching("gcloud run deploy"); len(c) > 0 {
				t.Errorf("deployed without a recorded previous revision: %q", c)
			}
		})
	}
}

// TestMultiRegion: promote and smoke reach every region, targetmock only
// where it is deployed.
func TestMultiRegion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, map[string]string{"REGIONS": primary + "," + second})
	f.services(true, primary, second)
	f.MustRun("deploy")
	f.MustRun("promote", "dispatcher", "targetmock")
	var promoted []string
	for _, c := range f.Matching("update-traffic", "--to-latest") {
		promoted = append(promoted, strings.Fields(c)[4]+" "+flagValue(c, "--region"))
	}
	want := []string{"dispatcher " + primary, "targetmock " + primary, "dispatcher " + second}
	if !slices.Equal(promoted, want) {
		t.Errorf("promoted %q, want %q", promoted, want)
	}
	f.Env["SMOKE_ROLLBACK"] = "dispatcher targetmock"
	f.MustRun("smoke")
	for _, r := range []string{primary, second} {
		url := "https://" + revtag + "---ingest-" + r + ".a.run.app"
		if len(f.Matching("curl ", url+"/health")) != 1 || len(f.Matching("curl ", url+"/events", "timestamp")) != 2 {
			t.Errorf("smoke did not probe and send 2 events to the tagged ingest in %s (%s)", r, url)
		}
	}
	if n := len(f.accepted()); n != 4 {
		t.Errorf("%d events accepted, want 2 per region", n)
	}
}

// TestBootstrap: a dispatcher (or targetmock) still on the placeholder
// delivers nothing, so the delivery smoke promotes this release's first.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		regions      []string
		placeholders []string // "service region" still on the placeholder; the rest serve a release
		wantPromoted []string
	}{
		{name: "first release", regions: []string{primary},
			placeholders: []string{"ingest " + primary, "dispatcher " + primary, "targetmock " + primary},
			wantPromoted: []string{"dispatcher " + primary, "targetmock " + primary}},
		{name: "a new region", regions: []string{primary, second},
			placeholders: []string{"ingest " + second, "dispatcher " + second},
			wantPromoted: []string{"dispatcher " + second}},
		{name: "normal release", regions: []string{primary}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, map[string]string{"REGIONS": strings.Join(tc.regions, ",")})
			f.services(true, tc.regions...)
			for _, sr := range tc.placeholders {
				s, r, _ := strings.Cut(sr, " ")
				f.service(r, s, placeholder)
			}
			f.MustRun("deploy")
			for _, sr := range tc.placeholders {
				s, r, _ := strings.Cut(sr, " ")
				if got, ok := f.releaseFile("bootstrap-" + s + "-" + r); !ok || got != s+"-00001-tf=100" {
					t.Errorf("deploy did not mark %s in %s bootstrap (file %q, %v)", s, r, got, ok)
				}
			}
			f.MustRun("smoke") // smoke-ingest: delivery mode, no SMOKE_ROLLBACK

			firstEvent := f.Index("curl ", "/events", "timestamp")
			if firstEvent < 0 {
				t.Fatal("the delivery smoke sent no event")
			}
			var promoted []string
			for _, c := range f.Matching("update-traffic") {
				promoted = append(promoted, strings.Fields(c)[4]+" "+flagValue(c, "--region"))
				if !strings.Contains(c, "--to-latest") {
					t.Errorf("bootstrap moved traffic other than to the latest revision: %s", c)
				}
			}
			if !slices.Equal(promoted, tc.wantPromoted) {
				t.Errorf("smoke promoted %q, want %q", promoted, tc.wantPromoted)
			}
			for _, sr := range tc.wantPromoted {
				s, r, _ := strings.Cut(sr, " ")
				if i := f.Index("update-traffic "+s, "--region "+r); i > firstEvent {
					t.Errorf("%s in %s promoted after the first smoke event (call %d > %d)", s, r, i, firstEvent)
				}
				if got := f.serving(r, s); got != s+"-00002-new=100" {
					t.Errorf("%s in %s serves %q after the bootstrap promotion", s, r, got)
				}
			}
			for _, r := range tc.regions {
				if got := f.serving(r, "ingest"); strings.Contains(got, "-new") {
					t.Errorf("the smoke promoted ingest in %s (%s): ingest waits for promote-ingest", r, got)
				}
			}
		})
	}
}

// TestBootstrapRollback: a failed smoke after a bootstrap promotion puts
// the placeholder back, as recorded at deploy, and says so.
func TestBootstrapRollback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.services(false, primary)
	f.MustRun("deploy")
	f.knob("event-status", "dead_lettered")
	out, err := f.Run("smoke")
	if err == nil {
		t.Fatalf("smoke passed although the events were dead-lettered:\n%s", out)
	}
	for _, s := range []string{"dispatcher", "targetmock"} {
		want := s + "-00001-tf=100"
		if c := f.Matching("update-traffic "+s, "--to-revisions "+want); len(c) != 1 {
			t.Errorf("no rollback of %s to %s; calls:\n%s", s, want, strings.Join(f.Calls(), "\n"))
		}
		if got := f.serving(primary, s); got != want {
			t.Errorf("%s serves %q after the rollback, want %q", s, got, want)
		}
	}
	if !strings.Contains(out, "placeholder") {
		t.Errorf("the rollback does not say it restored the placeholder:\n%s", out)
	}
	if c := f.Matching("update-traffic ingest"); len(c) > 0 {
		t.Errorf("ingest's traffic moved: %q", c)
	}
}

// TestRollbackAfterPromote: the smoke after promote-dispatcher rolls the
// promoted services back to what deploy recorded when any check fails,
// and touches nothing when all pass.
func TestRollbackAfterPromote(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		env      map[string]string
		knob     string
		notReady bool
		skip     bool // promote-dispatcher did not run
		services []string
		wantFail bool
	}{
		{name: "delivery passes", services: []string{"dispatcher", "targetmock"}},
		{name: "event failed", knob: "event-status=failed", services: []string{"dispatcher", "targetmock"}, wantFail: true},
		{name: "ingest unhealthy", knob: "health-code=503", services: []string{"dispatcher", "targetmock"}, wantFail: true},
		{name: "promoted revision not ready", notReady: true, services: []string{"dispatcher", "targetmock"}, wantFail: true},
		{name: "promote did not happen", skip: true, services: []string{"dispatcher", "targetmock"}, wantFail: true},
		{name: "no-target passes", env: map[string]string{"SMOKE_MODE": "no-target", "TARGETMOCK": "false"}, services: []string{"dispatcher"}},
		{name: "no-target, invalid event accepted", env: map[string]string{"SMOKE_MODE": "no-target", "TARGETMOCK": "false"},
			knob: "accept-invalid=", services: []string{"dispatcher"}, wantFail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tc.env)
			f.services(true, primary)
			f.MustRun("deploy")
			if !tc.skip {
				f.MustRun("promote", "dispatcher", "targetmock")
			}
			if tc.notReady {
				f.knob("run/"+primary+"/dispatcher/dispatcher-00002-new.notready", "")
			}
			if name, value, ok := strings.Cut(tc.knob, "="); ok {
				f.knob(name, value)
			}
			f.Env["SMOKE_ROLLBACK"] = "dispatcher targetmock"
			out, err := f.Run("smoke")
			if (err != nil) != tc.wantFail {
				t.Fatalf("smoke error = %v, want failure %v\n%s", err, tc.wantFail, out)
			}
			rollbacks := f.Matching("update-traffic", "--to-revisions")
			if !tc.wantFail {
				if len(rollbacks) > 0 {
					t.Errorf("a passing smoke rolled back: %q", rollbacks)
				}
				return
			}
			for _, s := range tc.services {
				want := s + "-00001-old=100"
				if c := f.Matching("update-traffic "+s, "--to-revisions "+want); len(c) != 1 {
					t.Errorf("%s not rolled back to %s; calls:\n%s", s, want, strings.Join(f.Calls(), "\n"))
				}
				if got := f.serving(primary, s); got != want {
					t.Errorf("%s serves %q after the rollback, want %q", s, got, want)
				}
			}
			if len(rollbacks) != len(tc.services) {
				t.Errorf("rolled back %q, want only %q", rollbacks, tc.services)
			}
			if c := f.Matching("update-traffic ingest"); len(c) > 0 {
				t.Errorf("ingest's traffic moved: %q", c)
			}
		})
	}
}

// TestNoTargetSmoke: prod's smoke sends nothing ingest would queue, so
// nothing can reach the target, and still fails when ingest misbehaves.
func TestNoTargetSmoke(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		mode     string
		knob     string
		wantFail bool
	}{
		{name: "passes", mode: "no-target"},
		{name: "the default mode", mode: ""},
		{name: "ingest open without a token", mode: "no-target", knob: "noauth-code=200", wantFail: true},
		{name: "ingest unhealthy", mode: "no-target", knob: "health-code=500", wantFail: true},
		{name: "ingest accepts an invalid event", mode: "no-target", knob: "accept-invalid=", wantFail: true},
		{name: "ingest refuses an invalid event with another code", mode: "no-target", knob: "invalid-code=422", wantFail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, map[string]string{"ENV": "prod", "TARGETMOCK": "false", "SMOKE_MODE": tc.mode})
			f.services(true, primary)
			f.MustRun("deploy")
			f.MustRun("promote", "dispatcher")
			if name, value, ok := strings.Cut(tc.knob, "="); ok {
				f.knob(name, value)
			}
			f.Env["SMOKE_ROLLBACK"] = "dispatcher"
			out, err := f.Run("smoke")
			if (err != nil) != tc.wantFail {
				t.Fatalf("smoke error = %v, want failure %v\n%s", err, tc.wantFail, out)
			}
			if c := f.Matching("curl ", "timestamp"); len(c) > 0 {
				t.Errorf("the no-target smoke sent a valid event: %q", c)
			}
			if c := f.Matching("firestore.googleapis.com"); len(c) > 0 {
				t.Errorf("the no-target smoke waited for a delivery: %q", c)
			}
			if tc.wantFail {
				return
			}
			if a := f.accepted(); len(a) > 0 {
				t.Errorf("ingest accepted %q: each would be queued for the real target", a)
			}
			url := "https://" + revtag + "---ingest-" + primary + ".a.run.app"
			const token = "Authorization: Bearer id-token-of-"
			probes := []struct {
				what string
				is   func(call string) bool
			}{
				{"no token", func(c string) bool {
					return scripttest.ContainsAll(c, "curl ", "POST "+url+"/events") && !strings.Contains(c, "Authorization")
				}},
				{"health", func(c string) bool { return scripttest.ContainsAll(c, "curl ", url+"/health", token) }},
				{"invalid event", func(c string) bool {
					return scripttest.ContainsAll(c, "curl ", "POST "+url+"/events", token, `"name":"release smoke test"`)
				}},
			}
			for _, p := range probes {
				if !slices.ContainsFunc(f.Calls(), p.is) {
					t.Errorf("no %s probe of the tagged ingest; calls:\n%s", p.what, strings.Join(f.Calls(), "\n"))
				}
			}
			if c := f.Matching("update-traffic"); len(c) != 1 {
				t.Errorf("traffic moves %q, want only promote's", c)
			}
		})
	}
}

// TestSmokeModeGuard: delivery is refused where the target is not
// targetmock, and an unknown mode is refused, before any call.
func TestSmokeModeGuard(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		{"SMOKE_MODE": "delivery", "TARGETMOCK": "false"},
		{"SMOKE_MODE": "delivery", "TARGETMOCK": ""},
		{"SMOKE_MODE": "full"},
	} {
		f := newFixture(t, env)
		f.services(true, primary)
		if out, err := f.Run("smoke"); err == nil {
			t.Errorf("smoke with %v passed:\n%s", env, out)
		}
		if c := f.Calls(); len(c) > 0 {
			t.Errorf("smoke with %v made calls: %q", env, c)
		}
	}
}

func TestRollbackWithoutRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.services(true, primary)
	out, err := f.Run("rollback", "dispatcher")
	if err == nil {
		t.Fatalf("rollback with nothing recorded succeeded:\n%s", out)
	}
	if !strings.Contains(out, "nothing recorded") {
		t.Errorf("rollback does not say why it failed:\n%s", out)
	}
	if c := f.Matching("update-traffic"); len(c) > 0 {
		t.Errorf("rollback moved traffic with nothing recorded: %q", c)
	}
}
