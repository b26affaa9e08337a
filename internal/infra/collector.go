package infra

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

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

// checkCollectorConfig checks the collector sidecar's configuration (file
// is its name in findings): the health_check extension enabled (the
// sidecar's startup probe reads it), a traces and a metrics pipeline that
// receive otlp, start with memory_limiter, detect the GCP resource and end
// with batch, metrics exported by googlecloud under
// workload.googleapis.com (the names the dashboards and alerts read),
// every component used defined, and no debug exporter. That the
// Terraform's endpoint and startup probe match the receiver and the
// health_check port is asserted by modules/service's terraform test,
// which reads this file.
func checkCollectorConfig(src []byte, file string) []finding {
	const rule = "collector-config"
	var out []finding
	add := func(msg string) { out = append(out, finding{rule, file, msg}) }
	var cfg collectorConfig
	if err := yaml.Unmarshal(src, &cfg); err != nil {
		add("parse: " + err.Error())
		return out
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
	for _, name := range slices.Sorted(maps.Keys(cfg.Service.Pipelines)) {
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
