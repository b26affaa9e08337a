package infra

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// OTLPEndpoint is where every Cloud Run service exports its spans and
// metrics (OTEL_EXPORTER_OTLP_ENDPOINT): the OpenTelemetry Collector
// sidecar in the same instance (ADR 0009).
const OTLPEndpoint = "http://localhost:4317"

// CollectorHealthPort is the port of the collector's health_check
// extension, which the sidecar's startup probe reads.
const CollectorHealthPort = 13133

// collectorImage recognises an OpenTelemetry Collector image (the
// Google-built otelcol-google or a contrib build).
var collectorImage = regexp.MustCompile(`otelcol|opentelemetry-collector`)

// pinnedImage is an image reference pinned to a version tag or a digest.
var pinnedImage = regexp.MustCompile(`(:[0-9]+\.[0-9]+\.[0-9]+|@sha256:[0-9a-f]{64})$`)

// checkCollectorSidecar asserts ADR 0009's Terraform side on every Cloud
// Run service (each module call of a reusable service module counts):
//   - a collector sidecar whose image is pinned (tag or digest, not latest)
//     and owned by Terraform (not in ignore_changes), with CPU and memory
//     limits and a startup probe on its health check;
//   - the application is containers[0], exports to OTLPEndpoint and
//     depends on the collector, so it starts after it;
//   - the collector reads its configuration from a Secret Manager secret
//     mounted as a volume at a pinned version, which the service's own
//     account may read through a secret-level binding;
//   - the secret accessor role is granted nowhere but on secrets, and no
//     secret has authoritative IAM.
func checkCollectorSidecar(c *Config) []Finding {
	const rule = "otel-collector-sidecar"
	var out []Finding
	add := func(where, msg string) { out = append(out, Finding{rule, where, msg}) }
	services := instances(c, "google_cloud_run_v2_service")
	if len(services) == 0 {
		add("terraform", "no google_cloud_run_v2_service")
	}
	for _, in := range services {
		name := in.String()
		tmpl := dig(in.b.Body, "template")
		containers := nested(tmpl, "containers")
		collector := -1
		for i, ct := range containers {
			for _, t := range in.deepValues(c, attrExpr(ct.Body, "image")) {
				if t.expr == nil {
					add(in.where(), fmt.Sprintf("%s: containers[%d] image: %s", name, i, t.missing))
				}
				if s, ok := literal(t.expr); ok && collectorImage.MatchString(s) && collector < 0 {
					collector = i
				}
			}
		}
		if collector < 0 {
			add(in.where(), name+" has no OpenTelemetry Collector sidecar container")
			continue
		}
		if collector == 0 {
			add(in.where(), name+": the collector is containers[0], where the pipeline deploys the application's image")
			continue
		}
		app, col := containers[0].Body, containers[collector].Body
		colName, _ := literal(attrExpr(col, "name"))

		// The image: pinned, and Terraform's.
		for _, t := range in.deepValues(c, attrExpr(col, "image")) {
			s, ok := literal(t.expr)
			switch {
			case !ok:
				add(in.where(), fmt.Sprintf("%s: collector image is not a literal anywhere up the modules: %s", name, t.text()))
			case strings.HasSuffix(s, ":latest") || !pinnedImage.MatchString(s):
				add(t.at.Where(t.expr.Range()), fmt.Sprintf("%s: collector image %s is not pinned to a version tag or digest", name, s))
			}
		}
		if lc := dig(in.b.Body, "lifecycle"); lc != nil && attr(lc, "ignore_changes") != nil {
			for _, p := range ignorePaths(in.b, attr(lc, "ignore_changes").Expr) {
				if coversContainerImage(p, collector) {
					add(in.b.Where(in.b.DefRange()), fmt.Sprintf("%s: lifecycle.ignore_changes %s covers the collector's image, which Terraform owns", name, p))
				}
			}
		}
		limits := attrExpr(dig(col, "resources"), "limits")
		if keys := objectKeys(limits); !slices.Contains(keys, "cpu") || !slices.Contains(keys, "memory") {
			add(in.where(), name+": the collector sets no cpu and memory limits (resources.limits)")
		}
		probe := dig(col, "startup_probe")
		if probe == nil {
			add(in.where(), name+": the collector has no startup probe; the application could start before it")
		} else {
			port := attrExpr(dig(probe, "http_get"), "port")
			if port == nil {
				port = attrExpr(dig(probe, "tcp_socket"), "port")
			}
			if n, ok := literalNumber(port); !ok || int(n) != CollectorHealthPort {
				add(in.where(), fmt.Sprintf("%s: the collector's startup probe must read its health_check port %d", name, CollectorHealthPort))
			}
		}

		// The application: first, pointed at the sidecar, started after it.
		if len(nested(app, "ports")) == 0 {
			add(in.where(), name+": containers[0] declares no port: it must be the application (the ingress container)")
		}
		endpoint := false
		for _, e := range nested(app, "env") {
			if n, _ := literal(attrExpr(e.Body, "name")); n != "OTEL_EXPORTER_OTLP_ENDPOINT" {
				continue
			}
			for _, t := range in.deepValues(c, attrExpr(e.Body, "value")) {
				if v, _ := literal(t.expr); v == OTLPEndpoint {
					endpoint = true
				} else {
					add(in.where(), fmt.Sprintf("%s: OTEL_EXPORTER_OTLP_ENDPOINT is %s, want %q (the sidecar)", name, t.text(), OTLPEndpoint))
				}
			}
		}
		if !endpoint {
			add(in.where(), fmt.Sprintf("%s: the application's env sets no OTEL_EXPORTER_OTLP_ENDPOINT = %q", name, OTLPEndpoint))
		}
		if deps := literalStrings(attrExpr(app, "depends_on")); colName == "" || !slices.Contains(deps, colName) {
			add(in.where(), fmt.Sprintf("%s: the application does not depend_on the collector container %q", name, colName))
		}

		// The configuration: a mounted secret at a pinned version, read by
		// the service's own account through secret-level IAM.
		out = append(out, checkCollectorSecret(in, tmpl, col, name)...)
	}

	// The accessor role lives only on secrets; secrets have no
	// authoritative IAM.
	for _, dir := range c.ModuleDirs() {
		m := c.Modules[dir]
		for _, b := range m.Find("resource") {
			switch {
			case b.Labels[0] == "google_secret_manager_secret_iam_binding" || b.Labels[0] == "google_secret_manager_secret_iam_policy":
				add(b.Where(b.DefRange()), b.Addr()+" is authoritative on a secret; grant each reader with an iam_member")
			case b.Labels[0] != "google_secret_manager_secret_iam_member" && strings.Contains(b.Text(b.Body.Range()), "roles/secretmanager.secretAccessor"):
				add(b.Where(b.DefRange()), b.Addr()+" grants roles/secretmanager.secretAccessor beyond one secret")
			}
		}
		for _, l := range m.Locals() {
			if strings.Contains(l.block.Text(l.attr.Expr.Range()), "roles/secretmanager.secretAccessor") {
				add(l.block.Where(l.attr.Expr.Range()), "roles/secretmanager.secretAccessor in a local: grant it only in a google_secret_manager_secret_iam_member")
			}
		}
	}
	return out
}

// checkCollectorSecret checks the collector's configuration volume of one
// service instance.
func checkCollectorSecret(in instance, tmpl, col *hclsyntax.Body, name string) []Finding {
	const rule = "otel-collector-sidecar"
	var out []Finding
	add := func(msg string) { out = append(out, Finding{rule, in.where(), name + ": " + msg}) }
	mounts := nested(col, "volume_mounts")
	if len(mounts) == 0 {
		add("the collector mounts no configuration volume")
		return out
	}
	var secretRef string
	for _, mnt := range mounts {
		vol, _ := literal(attrExpr(mnt.Body, "name"))
		for _, v := range nested(tmpl, "volumes") {
			if n, _ := literal(attrExpr(v.Body, "name")); n != vol {
				continue
			}
			sec := dig(v.Body, "secret")
			if sec == nil {
				continue
			}
			expr := attrExpr(sec, "secret")
			if expr == nil {
				continue
			}
			for _, t := range hclsyntax.Variables(expr) {
				if t.RootName() == "google_secret_manager_secret" && len(attrNames(t)) > 0 {
					secretRef = "google_secret_manager_secret." + attrNames(t)[0]
				}
			}
			items := nested(sec, "items")
			if len(items) == 0 {
				add("the configuration volume names no items (version and path)")
			}
			for _, it := range items {
				ver := attrExpr(it.Body, "version")
				if s, ok := literal(ver); ver == nil || (ok && s == "latest") {
					add("the configuration secret is mounted at version latest (or none): pin the version so a change rolls out, and back, with a revision")
				}
			}
		}
	}
	if secretRef == "" {
		add("the collector's configuration is not a mounted google_secret_manager_secret of this module")
		return out
	}
	sa := attrExpr(dig(in.b.Body, "template"), "service_account")
	if sa == nil {
		return out // reported by service-account-per-service
	}
	saText := in.b.Text(sa.Range())
	granted := false
	for _, b := range in.m.Find("resource", "google_secret_manager_secret_iam_member") {
		role, _ := literal(attrExpr(b.Body, "role"))
		secret, member := attrExpr(b.Body, "secret_id"), attrExpr(b.Body, "member")
		if role != "roles/secretmanager.secretAccessor" || secret == nil || member == nil {
			continue
		}
		if refersTo(b.Text(secret.Range()), secretRef) && strings.Contains(b.Text(member.Range()), saText) {
			granted = true
		}
	}
	if !granted {
		add(fmt.Sprintf("no google_secret_manager_secret_iam_member grants roles/secretmanager.secretAccessor on %s to the service's account (%s)", secretRef, saText))
	}
	return out
}

// ignorePaths returns the attribute paths of an ignore_changes list,
// without spaces ("all" for the keyword).
func ignorePaths(b *Block, expr hclsyntax.Expression) []string {
	tuple, ok := expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		return []string{strings.Join(strings.Fields(b.Text(expr.Range())), "")}
	}
	var out []string
	for _, e := range tuple.Exprs {
		out = append(out, strings.Join(strings.Fields(b.Text(e.Range())), ""))
	}
	return out
}

// coversContainerImage reports whether ignore path p covers the image of
// containers[i].
func coversContainerImage(p string, i int) bool {
	c := "template[0].containers[" + strconv.Itoa(i) + "]"
	return slices.Contains([]string{"all", "template", "template[0]", "template[0].containers", c, c + ".image"}, p)
}

// literalStrings returns the string literals of a tuple expression.
func literalStrings(expr hclsyntax.Expression) []string {
	tuple, ok := expr.(*hclsyntax.TupleConsExpr)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range tuple.Exprs {
		if s, ok := literal(e); ok {
			out = append(out, s)
		}
	}
	return out
}

// collectorConfig is the part of an OpenTelemetry Collector configuration
// the checks read; the rest is left to the Collector.
type collectorConfig struct {
	Receivers  map[string]any `yaml:"receivers"`
	Processors map[string]any `yaml:"processors"`
	Exporters  map[string]any `yaml:"exporters"`
	Extensions map[string]any `yaml:"extensions"`
	Service    struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// CheckCollectorConfig checks the collector sidecar's configuration (file
// is its name in findings) against the Terraform and the services: the
// OTLP/gRPC receiver on OTLPEndpoint's host and port, the health_check
// extension on CollectorHealthPort, a traces and a metrics pipeline that
// start with memory_limiter, detect the GCP resource and end with batch,
// metrics exported by googlecloud under workload.googleapis.com (the
// names the dashboards and alerts read), every component used defined,
// and no debug exporter.
func CheckCollectorConfig(src []byte, file string) []Finding {
	const rule = "collector-config"
	var out []Finding
	add := func(msg string) { out = append(out, Finding{rule, file, msg}) }
	var cfg collectorConfig
	if err := yaml.Unmarshal(src, &cfg); err != nil {
		add("parse: " + err.Error())
		return out
	}
	u, err := url.Parse(OTLPEndpoint)
	if err != nil {
		panic(err)
	}
	if got := lookup(cfg.Receivers, "otlp", "protocols", "grpc", "endpoint"); got != u.Host {
		add(fmt.Sprintf("receivers.otlp.protocols.grpc.endpoint = %q, want %q (OTEL_EXPORTER_OTLP_ENDPOINT %s)", got, u.Host, OTLPEndpoint))
	}
	hc := lookup(cfg.Extensions, "health_check", "endpoint")
	if _, port, err := net.SplitHostPort(hc); err != nil || port != strconv.Itoa(CollectorHealthPort) {
		add(fmt.Sprintf("extensions.health_check.endpoint = %q, want port %d (the sidecar's startup probe)", hc, CollectorHealthPort))
	}
	if !slices.Contains(cfg.Service.Extensions, "health_check") {
		add("service.extensions does not enable health_check: the startup probe would never pass")
	}
	for _, id := range cfg.Service.Extensions {
		if _, ok := cfg.Extensions[id]; !ok {
			add("service.extensions uses " + id + ", which extensions does not define")
		}
	}
	for _, want := range []string{"traces", "metrics"} {
		if _, ok := cfg.Service.Pipelines[want]; !ok {
			add("no " + want + " pipeline: the services export " + want + " over OTLP")
		}
	}
	for _, name := range sortedKeys(cfg.Service.Pipelines) {
		p := cfg.Service.Pipelines[name]
		for _, part := range []struct {
			kind    string
			ids     []string
			defined map[string]any
		}{{"receivers", p.Receivers, cfg.Receivers}, {"processors", p.Processors, cfg.Processors}, {"exporters", p.Exporters, cfg.Exporters}} {
			for _, id := range part.ids {
				if _, ok := part.defined[id]; !ok {
					add(fmt.Sprintf("pipeline %s uses %s %s, which is not defined", name, strings.TrimSuffix(part.kind, "s"), id))
				}
			}
		}
		if !slices.Contains(p.Receivers, "otlp") {
			add("pipeline " + name + " does not receive otlp")
		}
		if len(p.Processors) == 0 || componentType(p.Processors[0]) != "memory_limiter" {
			add("pipeline " + name + ": memory_limiter must be the first processor")
		}
		if len(p.Processors) == 0 || componentType(p.Processors[len(p.Processors)-1]) != "batch" {
			add("pipeline " + name + ": batch must be the last processor")
		}
		if !slices.ContainsFunc(p.Processors, func(id string) bool { return componentType(id) == "resourcedetection" }) {
			add("pipeline " + name + " does not detect the GCP resource (resourcedetection)")
		}
		if len(p.Exporters) == 0 {
			add("pipeline " + name + " exports nowhere")
		}
		for _, id := range p.Exporters {
			if t := componentType(id); t == "debug" || t == "logging" {
				add("pipeline " + name + " exports to " + id + ": every span and point would be written to the logs")
			}
		}
		if name == "metrics" {
			ok := false
			for _, id := range p.Exporters {
				if componentType(id) != "googlecloud" {
					continue
				}
				if prefix := lookup(cfg.Exporters, id, "metric", "prefix"); prefix == "" || prefix == "workload.googleapis.com" {
					ok = true
				} else {
					add(fmt.Sprintf("exporter %s writes metrics under %s, not workload.googleapis.com (terraform/modules/monitoring)", id, prefix))
				}
			}
			if !ok {
				add("the metrics pipeline does not export with googlecloud (workload.googleapis.com/<name>, which the dashboards and alerts read)")
			}
		}
	}
	return out
}

// componentType is the type of a component id ("otlp/2" → "otlp").
func componentType(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

// lookup returns the string at a key path in nested YAML maps, or "".
func lookup(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}
