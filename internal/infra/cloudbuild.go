package infra

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

// cloudBuild is the part of a Cloud Build config file the policy reads.
// Unknown fields are refused, so a misspelt key (waitfor) fails the test
// instead of being silently ignored by the checks.
type cloudBuild struct {
	Steps            []step            `yaml:"steps"`
	Substitutions    map[string]string `yaml:"substitutions"`
	Options          map[string]any    `yaml:"options"`
	Images           []string          `yaml:"images"`
	Timeout          string            `yaml:"timeout"`
	Tags             []string          `yaml:"tags"`
	AvailableSecrets map[string]any    `yaml:"availableSecrets"`
	LogsBucket       string            `yaml:"logsBucket"`
	ServiceAccount   string            `yaml:"serviceAccount"`
}

// step is one build step.
type step struct {
	ID           string   `yaml:"id"`
	Name         string   `yaml:"name"`
	Entrypoint   string   `yaml:"entrypoint"`
	Args         []string `yaml:"args"`
	Env          []string `yaml:"env"`
	SecretEnv    []string `yaml:"secretEnv"`
	WaitFor      []string `yaml:"waitFor"`
	Dir          string   `yaml:"dir"`
	Timeout      string   `yaml:"timeout"`
	Script       string   `yaml:"script"`
	AllowFailure bool     `yaml:"allowFailure"`
}

// parseCloudBuild decodes a cloudbuild.yaml strictly.
func parseCloudBuild(src []byte) (*cloudBuild, error) {
	var cb cloudBuild
	if err := yaml.UnmarshalWithOptions(src, &cb, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("parse cloudbuild.yaml: %w", err)
	}
	return &cb, nil
}

// Built-in substitutions Cloud Build provides (no leading underscore).
var builtinSubstitutions = map[string]bool{
	"PROJECT_ID": true, "PROJECT_NUMBER": true, "BUILD_ID": true, "LOCATION": true,
	"TRIGGER_NAME": true, "TRIGGER_BUILD_CONFIG_PATH": true, "COMMIT_SHA": true,
	"SHORT_SHA": true, "REVISION_ID": true, "REPO_NAME": true, "REPO_FULL_NAME": true,
	"BRANCH_NAME": true, "TAG_NAME": true, "REF_NAME": true, "HEAD_BRANCH": true,
	"BASE_BRANCH": true, "HEAD_REPO_URL": true, "PR_NUMBER": true, "SERVICE_ACCOUNT_EMAIL": true,
	"SERVICE_ACCOUNT": true,
}

var substitutionRe = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// bootstrapImage is the one step image that may run something other than
// make: it builds the CI image (make, Go, gcloud, Terraform, Docker CLI)
// the other steps run in.
const bootstrapImage = "gcr.io/cloud-builders/docker"

// checkCloudBuild asserts the pipeline's rules: steps have unique ids and
// wait only for earlier steps; user substitutions start with _ and every
// one used is declared; built-ins are real; logging is set; images are
// tagged by commit, never latest; every step but the bootstrap is a thin
// `make <target>` whose target exists in targets.
func checkCloudBuild(cb *cloudBuild, targets map[string]bool) []finding {
	const file = "cloudbuild.yaml"
	var out []finding
	add := func(rule, msg string) { out = append(out, finding{rule, file, msg}) }

	if len(cb.Steps) == 0 {
		add("cloudbuild-steps", "no steps")
	}
	seen := map[string]bool{}
	for i, s := range cb.Steps {
		label := fmt.Sprintf("step %d (%s)", i, s.ID)
		if s.ID == "" {
			add("cloudbuild-steps", label+" has no id")
		} else if seen[s.ID] {
			add("cloudbuild-steps", "duplicate step id "+s.ID)
		}
		for _, w := range s.WaitFor {
			if w != "-" && !seen[w] {
				add("cloudbuild-steps", fmt.Sprintf("%s waits for %q, which is not an earlier step", label, w))
			}
		}
		seen[s.ID] = true

		switch {
		case s.Name == bootstrapImage && i == 0:
		case s.Entrypoint == "make" && len(s.Args) > 0:
			for _, a := range s.Args {
				if strings.Contains(a, "=") || strings.HasPrefix(a, "-") {
					continue
				}
				if !targets[a] {
					add("cloudbuild-thin", fmt.Sprintf("%s calls make %s, which the Makefile does not define", label, a))
				}
			}
		default:
			add("cloudbuild-thin", label+" is not a `make <target>` step")
		}
		if s.Script != "" {
			add("cloudbuild-thin", label+" embeds a script; put it behind a Make target")
		}
	}

	for k := range cb.Substitutions {
		if !strings.HasPrefix(k, "_") {
			add("cloudbuild-substitutions", "user substitution "+k+" must start with _")
		}
	}
	used := func(where, text string) {
		for _, m := range substitutionRe.FindAllStringSubmatch(text, -1) {
			name := m[2] + m[3]
			switch {
			case m[1] == "$":
			case strings.HasPrefix(name, "_"):
				if _, ok := cb.Substitutions[name]; !ok {
					add("cloudbuild-substitutions", fmt.Sprintf("%s uses $%s, which substitutions does not declare", where, name))
				}
			case !builtinSubstitutions[name]:
				add("cloudbuild-substitutions", fmt.Sprintf("%s uses $%s, which is neither built in nor declared (escape shell variables as $$)", where, name))
			}
		}
	}
	for _, s := range cb.Steps {
		for _, t := range append(append(append([]string{s.Name, s.Entrypoint, s.Dir}, s.Args...), s.Env...), s.Script) {
			used("step "+s.ID, t)
		}
	}
	for _, v := range cb.Substitutions {
		used("substitutions", v)
	}

	if logging, _ := cb.Options["logging"].(string); logging == "" {
		add("cloudbuild-logging", "options.logging is not set (required for a build running as a user-managed service account)")
	} else if logging == "GCS_ONLY" || logging == "LEGACY" {
		if cb.LogsBucket == "" {
			add("cloudbuild-logging", "options.logging "+logging+" needs logsBucket")
		}
	}
	if cb.Timeout == "" {
		add("cloudbuild-steps", "no build timeout")
	}

	tagged := false
	check := func(where, text string) {
		if strings.Contains(text, ":latest") || regexp.MustCompile(`(^|[^A-Za-z_])TAG=latest\b`).MatchString(text) {
			add("cloudbuild-images", where+" refers to the latest tag")
		}
		if m := regexp.MustCompile(`\bTAG=(\S+)`).FindStringSubmatch(text); m != nil {
			if m[1] != "$COMMIT_SHA" && m[1] != "${COMMIT_SHA}" {
				add("cloudbuild-images", fmt.Sprintf("%s tags images %s, not $COMMIT_SHA", where, m[1]))
			} else {
				tagged = true
			}
		}
	}
	for _, s := range cb.Steps {
		for _, a := range append(append([]string{}, s.Args...), s.Env...) {
			check("step "+s.ID, a)
		}
		if s.Entrypoint == "make" && slices.Contains(s.Args, "images") && !argHas(s.Args, "TAG=") {
			add("cloudbuild-images", "step "+s.ID+" builds images without TAG=$COMMIT_SHA")
		}
	}
	for _, img := range cb.Images {
		if !strings.HasSuffix(img, ":$COMMIT_SHA") && !strings.HasSuffix(img, ":${COMMIT_SHA}") {
			add("cloudbuild-images", "images entry "+img+" is not tagged with the commit")
		}
	}
	if !tagged {
		add("cloudbuild-images", "no step builds the images with TAG=$COMMIT_SHA")
	}
	return out
}

func argHas(list []string, prefix string) bool {
	for _, v := range list {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

var makeTargetRe = regexp.MustCompile(`(?m)^([A-Za-z0-9][A-Za-z0-9_. -]*?)\s*:([^=]|$)`)

// makeTargets returns the explicit targets a Makefile defines, including
// every target of a rule that names several.
func makeTargets(makefile []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range makeTargetRe.FindAllStringSubmatch(string(makefile), -1) {
		for _, t := range strings.Fields(m[1]) {
			out[t] = true
		}
	}
	return out
}

// triggerSubstitutions returns the substitution keys the Terraform passes
// to the Cloud Build triggers: the keys of the cicd module call's
// substitutions and those the cicd module merges in itself.
func triggerSubstitutions(c *config) []string {
	var keys []string
	for _, m := range c.sorted() {
		for _, call := range m.find("module") {
			if child := c.child(m, call); child != nil && len(child.find("resource", "google_cloudbuild_trigger")) > 0 {
				keys = append(keys, objectKeys(attrExpr(call.Body, "substitutions"))...)
			}
		}
		for _, t := range m.find("resource", "google_cloudbuild_trigger") {
			if e := attrExpr(t.Body, "substitutions"); e != nil {
				for _, k := range mergedKey.FindAllStringSubmatch(t.text(e.Range()), -1) {
					keys = append(keys, k[1])
				}
			}
		}
	}
	return keys
}

// mergedKey finds the keys a trigger merges into its substitutions itself
// (merge(var.substitutions, { _DEPLOY = "true" })).
var mergedKey = regexp.MustCompile(`\b(_[A-Z0-9_]+)\s*=`)
