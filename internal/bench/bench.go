// Package bench holds the load benchmarks `make bench` runs against a local
// stack on the embedded engine, with vegeta as the load generator:
//
//   - ingest: a fixed-rate load on POST /events, latency percentiles and
//     non-2xx count (the source's 500 ms budget is what matters), with
//     tracing and metrics off, then on at each sample ratio, to show what
//     they cost in latency and in CPU per request; a no-op handler on the
//     same server settings takes the same load in the same rounds, the
//     floor ingest is compared with;
//   - saturation: rising fixed rates, each on a fresh stack, up to the
//     first whose p99 reaches 500 ms or that draws a non-2xx answer;
//   - drain: a burst into a slower target, drain time against the ideal
//     N / limit, the target's observed max rate, lost and duplicate counts;
//   - latency: end-to-end latency (received -> delivered) below the limit.
//
// It prints a table and writes the numbers as JSON.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"go.opentelemetry.io/otel"

	"eventrelay/internal/devstack"
	"eventrelay/internal/event"
	"eventrelay/internal/status"
	"eventrelay/internal/telemetry"
)

// Options choose the scenarios' sizes.
type Options struct {
	// IngestRate and IngestDuration shape the ingest load (default 1000/s, 30s).
	IngestRate     int
	IngestDuration time.Duration
	// IngestWarmup is sent at IngestRate before each measured ingest run and
	// not counted (0: none): the first second of a fresh stack is a cold
	// start, not the steady state.
	IngestWarmup time.Duration
	// SampleRatios are the trace sample ratios the ingest scenario runs at
	// with tracing and metrics on (default 0.1 and 1: production's and
	// relayctl dev's); it always runs with both off too, the baseline. The
	// other scenarios run at the highest ratio.
	SampleRatios []float64
	// IngestRounds splits each mode's IngestDuration into this many rounds
	// (default 3). Rounds cycle through the modes, each on a fresh stack,
	// so that load from elsewhere on a shared machine weighs on every mode
	// alike rather than on whichever ran last.
	IngestRounds int
	// DrainEvents and DrainLimit shape the burst (default 2000 events into a
	// 100/s target).
	DrainEvents int
	DrainLimit  float64
	// LatencyRate and LatencyDuration shape the below-the-limit run
	// (default 50/s for 20s into a 100/s target).
	LatencyRate     int
	LatencyDuration time.Duration
	// WorkDir holds each scenario's data dir (default a temp dir).
	WorkDir string
	// Engine is devstack.EngineEmbedded (default) or EngineGCP (the
	// emulators; GCP says where they are). Queue ids and collections get a
	// per-run suffix, since the Cloud Tasks emulator never forgets a queue.
	Engine string
	GCP    devstack.GCPOptions
	// SaturationRates are the rates the saturation scenario tries in turn
	// (default 2000 to 7000 in steps of 1000), each for SaturationDuration
	// (default 5s) after IngestWarmup, with telemetry off, SaturationRuns
	// times (default 3).
	SaturationRates    []int
	SaturationDuration time.Duration
	SaturationRuns     int
	// Scenarios limits the run to these scenarios (ingest, saturation,
	// drain, latency); empty runs all.
	Scenarios []string
}

func (o Options) want(name string) bool {
	return len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, name)
}

func (o *Options) defaults() {
	if o.IngestRate == 0 {
		o.IngestRate = 1000
	}
	if o.IngestDuration == 0 {
		o.IngestDuration = 30 * time.Second
	}
	if o.IngestRounds < 1 {
		o.IngestRounds = 3
	}
	if len(o.SaturationRates) == 0 {
		o.SaturationRates = []int{2000, 3000, 4000, 5000, 6000, 7000}
	}
	if o.SaturationDuration == 0 {
		o.SaturationDuration = 5 * time.Second
	}
	if o.SaturationRuns < 1 {
		o.SaturationRuns = 3
	}
	if len(o.SampleRatios) == 0 {
		o.SampleRatios = []float64{0.1, 1}
	}
	if o.DrainEvents == 0 {
		o.DrainEvents = 2000
	}
	if o.DrainLimit == 0 {
		o.DrainLimit = 100
	}
	if o.LatencyRate == 0 {
		o.LatencyRate = 50
	}
	if o.LatencyDuration == 0 {
		o.LatencyDuration = 20 * time.Second
	}
}

// Latency is a latency distribution.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// IngestResult is the fixed-rate ingest scenario's outcome.
type IngestResult struct {
	// Handler is "ingest", or "noop" for the no-op handler.
	Handler string `json:"handler"`
	// Telemetry is "off" (no-op providers) or "on": metrics aggregated and
	// SampleRatio of the traces sampled, their spans batched to an exporter
	// that drops them.
	Telemetry   string  `json:"telemetry"`
	SampleRatio float64 `json:"sample_ratio,omitempty"`
	// CPUPerRequest is the process's CPU time (user + system) during the
	// measured rounds per request sent: the stack, its dispatcher draining
	// at the target's rate, and the load generator.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
	// RoundP99s are the p99 of each round, and MedianRoundP99 their median
	// (the upper one for an even count): unlike the pooled p99, one round
	// hit by a noisy neighbour does not move it.
	RoundP99s      []time.Duration `json:"round_p99s_ns,omitempty"`
	MedianRoundP99 time.Duration   `json:"median_round_p99_ns,omitempty"`
	// RoundP50s and MedianRoundP50 are the same for the p50.
	RoundP50s      []time.Duration `json:"round_p50s_ns,omitempty"`
	MedianRoundP50 time.Duration   `json:"median_round_p50_ns,omitempty"`
	Rate           int             `json:"rate"`
	Duration       time.Duration   `json:"duration_ns"`
	Requests       uint64          `json:"requests"`
	Throughput     float64         `json:"throughput"`
	Latency        Latency         `json:"latency"`
	Non2xx         int             `json:"non_2xx"`
	Over500ms      int             `json:"over_500ms"`
	Status         map[string]int  `json:"status_codes"`
}

// DrainResult is the burst-drain scenario's outcome.
type DrainResult struct {
	Events          int           `json:"events"`
	Limit           float64       `json:"limit"`
	Accepted        int           `json:"accepted_by_ingest"`
	Ideal           time.Duration `json:"ideal_ns"`
	Drain           time.Duration `json:"drain_ns"`
	DrainVsIdeal    float64       `json:"drain_vs_ideal"`
	MaxPerSecond    int           `json:"target_max_accepted_per_second"`
	MaxCallsPerSec  int           `json:"target_max_calls_per_second"`
	Lost            int           `json:"lost"`
	DuplicateCalls  int           `json:"duplicate_calls"`
	RateLimited     int           `json:"rate_limited_calls"`
	BrandMismatches int           `json:"brand_mismatches"`
}

// LatencyResult is the below-the-limit scenario's outcome.
type LatencyResult struct {
	Rate      int     `json:"rate"`
	Limit     float64 `json:"limit"`
	Delivered int     `json:"delivered"`
	EndToEnd  Latency `json:"end_to_end"`
}

// Report is everything one run measured.
type Report struct {
	Started time.Time `json:"started"`
	Engine  string    `json:"engine,omitempty"`
	// Ingest ran with tracing and metrics on at the highest sample ratio.
	Ingest IngestResult `json:"ingest"`
	// IngestModes are all the ingest runs: telemetry off first, then on at
	// each sample ratio.
	IngestModes []IngestResult `json:"ingest_modes,omitempty"`
	// Noop is the no-op handler under the same load, in the same rounds.
	Noop       *IngestResult     `json:"noop,omitempty"`
	Saturation *SaturationResult `json:"saturation,omitempty"`
	Drain      DrainResult       `json:"drain"`
	Latency    LatencyResult     `json:"latency"`
}

// Run runs every scenario in turn.
func Run(ctx context.Context, o Options, progress io.Writer) (Report, error) {
	o.defaults()
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "eventrelay-bench-")
		if err != nil {
			return Report{}, err
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	r := Report{Started: time.Now().UTC(), Engine: o.Engine}
	// What every service main installs: trace context crosses each hop.
	otel.SetTextMapPropagator(telemetry.Propagator())
	var err error
	if o.want("ingest") {
		modes := append([]float64{noopMode, 0}, o.SampleRatios...)
		fmt.Fprintf(progress, "ingest: %d events/s for %v per mode (no-op handler; telemetry off, on at sample ratios %v), in %d rounds each ...\n",
			o.IngestRate, o.IngestDuration, o.SampleRatios, o.IngestRounds)
		if r.IngestModes, err = runIngest(ctx, o, modes, progress); err != nil {
			return r, fmt.Errorf("ingest scenario: %w", err)
		}
		noop := r.IngestModes[0]
		r.Noop, r.IngestModes = &noop, r.IngestModes[1:]
		r.Ingest = r.IngestModes[len(r.IngestModes)-1]
	}
	if o.want("saturation") {
		fmt.Fprintf(progress, "saturation: rates %v for %v each, telemetry off, %d runs ...\n",
			o.SaturationRates, o.SaturationDuration, o.SaturationRuns)
		sat, err := runSaturation(ctx, o, progress)
		if err != nil {
			return r, fmt.Errorf("saturation scenario: %w", err)
		}
		r.Saturation = &sat
	}
	if o.want("drain") {
		fmt.Fprintf(progress, "drain: %d events into a %.4g/s target ...\n", o.DrainEvents, o.DrainLimit)
		if r.Drain, err = runDrain(ctx, o); err != nil {
			return r, fmt.Errorf("drain scenario: %w", err)
		}
	}
	if o.want("latency") {
		fmt.Fprintf(progress, "latency: %d events/s for %v into a %.4g/s target ...\n", o.LatencyRate, o.LatencyDuration, o.DrainLimit)
		if r.Latency, err = runLatency(ctx, o); err != nil {
			return r, fmt.Errorf("latency scenario: %w", err)
		}
	}
	return r, nil
}

// startStack starts a stack for one scenario, instrumented with traces
// sampled at ratio and metrics (ratio 0: no telemetry); stop stops it and
// its providers.
func startStack(ctx context.Context, o Options, dir string, limit, ratio float64) (stack *devstack.Stack, stop func(), err error) {
	ins, err := newInstruments(ratio)
	if err != nil {
		return nil, nil, err
	}
	gcp := o.GCP
	suffix := fmt.Sprintf("bench-%s-%d", filepath.Base(dir), time.Now().UnixNano())
	gcp.Queue, gcp.Collection = suffix, suffix
	stack, err = devstack.Start(ctx, devstack.Options{
		Engine:         o.Engine,
		GCP:            gcp,
		DataDir:        dir,
		TargetRate:     limit,
		TargetBurst:    max(1, int(limit/10)),
		IngestAddr:     "127.0.0.1:0",
		TargetAddr:     "127.0.0.1:0",
		DispatcherAddr: "127.0.0.1:0",
		TracerProvider: ins.tracer,
		MeterProvider:  ins.meter,
	})
	if err != nil {
		return nil, nil, errors.Join(err, ins.shutdown(context.WithoutCancel(ctx)))
	}
	return stack, func() {
		_ = stack.Stop()
		_ = ins.shutdown(context.WithoutCancel(ctx))
	}, nil
}

// eventTargeter yields one POST /events per call with a fresh random id and
// records the ids it produced.
type eventTargeter struct {
	url, token string
	mu         sync.Mutex
	ids        []string
}

func (t *eventTargeter) target(tgt *vegeta.Target) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	body, err := json.Marshal(event.Event{ID: id, Name: "test event", Body: "test body", Timestamp: time.Now().UTC()})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.ids = append(t.ids, id)
	t.mu.Unlock()
	tgt.Method = http.MethodPost
	tgt.URL = t.url + "/events"
	tgt.Body = body
	tgt.Header = http.Header{
		"Content-Type":  {"application/json"},
		"Authorization": {"Bearer " + t.token},
	}
	return nil
}

// maxConns bounds the load generator's connections to the server.
const maxConns = 1024

// attack sends rate events/s for d and returns vegeta's metrics, the
// per-result latencies and how many answers took over 500 ms.
func attack(ctx context.Context, stack *devstack.Stack, rate int, d time.Duration) (*vegeta.Metrics, int, error) {
	tok, err := stack.Token(ctx)
	if err != nil {
		return nil, 0, err
	}
	return attackURL(ctx, stack.IngestURL, tok, rate, d)
}

// attackURL is attack on the server at url, with the bearer token tok.
func attackURL(ctx context.Context, url, tok string, rate int, d time.Duration) (*vegeta.Metrics, int, error) {
	var m vegeta.Metrics
	over, err := attackInto(ctx, url, tok, rate, d, []*vegeta.Metrics{&m})
	m.Close()
	return &m, over, err
}

// attackInto is attackURL adding the results to each of ms (not closed),
// so that several attacks can be pooled.
func attackInto(ctx context.Context, url, tok string, rate int, d time.Duration, ms []*vegeta.Metrics) (int, error) {
	tr := &eventTargeter{url: url, token: tok}
	// As many idle connections kept as may be open: past the saturation
	// point, a smaller idle pool closes and redials connections by the
	// thousand, and the load generator's dials and the sockets left in
	// TIME_WAIT then cost more CPU than the stack under test, in this step
	// and the next.
	atk := vegeta.NewAttacker(vegeta.Timeout(5*time.Second), vegeta.KeepAlive(true),
		vegeta.Connections(maxConns), vegeta.MaxConnections(maxConns))
	over := 0
	for res := range atk.Attack(tr.target, vegeta.Rate{Freq: rate, Per: time.Second}, d, "ingest") {
		for _, m := range ms {
			m.Add(res)
		}
		if res.Latency > 500*time.Millisecond {
			over++
		}
		if ctx.Err() != nil {
			atk.Stop()
		}
	}
	return over, ctx.Err()
}

func non2xx(m *vegeta.Metrics) int {
	n := 0
	for code, c := range m.StatusCodes {
		if len(code) != 3 || code[0] != '2' {
			n += c
		}
	}
	return n
}

// noopMode is the mode of the no-op handler in runIngest.
const noopMode = -1

// runIngest measures ingest at o.IngestRate for o.IngestDuration in each
// mode (a trace sample ratio, 0 for telemetry off, noopMode for the no-op
// handler), in o.IngestRounds rounds per mode that cycle through the
// modes. Each round runs on a fresh stack (or no-op server) after the
// warm-up; a mode's latencies are pooled over its rounds.
func runIngest(ctx context.Context, o Options, modes []float64, progress io.Writer) ([]IngestResult, error) {
	type pool struct {
		m       vegeta.Metrics
		over    int
		elapsed time.Duration
		cpu     time.Duration
		p50s    []time.Duration
		p99s    []time.Duration
	}
	pools := make([]pool, len(modes))
	round := o.IngestDuration / time.Duration(o.IngestRounds)
	for i := range o.IngestRounds {
		for j, ratio := range modes {
			fmt.Fprintf(progress, "  round %d/%d, %s\n", i+1, o.IngestRounds, modeName(ratio))
			p := &pools[j]
			err := func() error {
				url, tok, stop, err := ingestTarget(ctx, o, filepath.Join(o.WorkDir, fmt.Sprintf("ingest-%d-%d", j, i)), ratio)
				if err != nil {
					return err
				}
				defer stop()
				if o.IngestWarmup > 0 {
					if _, _, err := attackURL(ctx, url, tok, o.IngestRate, o.IngestWarmup); err != nil {
						return err
					}
				}
				var this vegeta.Metrics
				start, cpu := time.Now(), cpuTime()
				over, err := attackInto(ctx, url, tok, o.IngestRate, round, []*vegeta.Metrics{&p.m, &this})
				p.cpu += cpuTime() - cpu
				this.Close()
				p.p50s = append(p.p50s, this.Latencies.P50)
				p.p99s = append(p.p99s, this.Latencies.P99)
				p.over += over
				p.elapsed += time.Since(start)
				return err
			}()
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]IngestResult, len(modes))
	for j, ratio := range modes {
		p := &pools[j]
		p.m.Close()
		res := IngestResult{
			Handler:     "ingest",
			Telemetry:   "off",
			SampleRatio: max(ratio, 0),
			Rate:        o.IngestRate,
			Duration:    o.IngestDuration,
			Requests:    p.m.Requests,
			Throughput:  float64(p.m.StatusCodes["202"]) / p.elapsed.Seconds(),
			Latency: Latency{
				P50: p.m.Latencies.P50, P90: p.m.Latencies.P90, P99: p.m.Latencies.P99,
				P999: p.m.Latencies.Quantile(0.999), Max: p.m.Latencies.Max,
			},
			Non2xx:         non2xx(&p.m),
			Over500ms:      p.over,
			Status:         p.m.StatusCodes,
			RoundP50s:      p.p50s,
			RoundP99s:      p.p99s,
			MedianRoundP50: median(p.p50s),
			MedianRoundP99: median(p.p99s),
		}
		switch {
		case ratio == noopMode:
			res.Handler = "noop"
		case ratio > 0:
			res.Telemetry = "on"
		}
		if p.m.Requests > 0 {
			res.CPUPerRequest = p.cpu / time.Duration(p.m.Requests)
		}
		out[j] = res
	}
	return out, nil
}

// ingestTarget starts what one ingest round loads: a stack with telemetry
// at ratio, or the no-op server for noopMode.
func ingestTarget(ctx context.Context, o Options, dir string, ratio float64) (url, tok string, stop func(), err error) {
	if ratio == noopMode {
		url, stop, err := noopServer(ctx)
		return url, "unused", stop, err
	}
	stack, stop, err := startStack(ctx, o, dir, 200, ratio)
	if err != nil {
		return "", "", nil, err
	}
	if tok, err = stack.Token(ctx); err != nil {
		stop()
		return "", "", nil, err
	}
	return stack.IngestURL, tok, stop, nil
}

// median is the middle value (the upper one for an even count); 0 for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(d))
	return sorted[len(sorted)/2]
}

// modeName describes a mode as the progress and the table say it.
func modeName(ratio float64) string {
	switch {
	case ratio == noopMode:
		return "no-op handler"
	case ratio <= 0:
		return "telemetry off"
	case ratio >= 1:
		return "telemetry on, every trace"
	default:
		return fmt.Sprintf("telemetry on, %g %% of traces", 100*ratio)
	}
}

// waitDelivered polls the target until it stored want distinct events or
// the timeout passes.
func waitDelivered(ctx context.Context, stack *devstack.Stack, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := stack.Target.Stats(ctx)
		if err != nil {
			return err
		}
		if st.DistinctEvents >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d events delivered after %v", st.DistinctEvents, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runDrain(ctx context.Context, o Options) (DrainResult, error) {
	stack, stop, err := startStack(ctx, o, filepath.Join(o.WorkDir, "drain"), o.DrainLimit, slices.Max(o.SampleRatios))
	if err != nil {
		return DrainResult{}, err
	}
	defer stop()
	// The burst: every event within about one second.
	m, _, err := attack(ctx, stack, o.DrainEvents, time.Second)
	if err != nil {
		return DrainResult{}, err
	}
	accepted := m.StatusCodes["202"]
	ideal := time.Duration(float64(accepted) / o.DrainLimit * float64(time.Second))
	if err := waitDelivered(ctx, stack, accepted, 3*ideal+30*time.Second); err != nil {
		return DrainResult{}, err
	}
	return drainResult(ctx, stack, o, accepted, ideal)
}

func drainResult(ctx context.Context, stack *devstack.Stack, o Options, accepted int, ideal time.Duration) (DrainResult, error) {
	st, err := stack.Target.Stats(ctx)
	if err != nil {
		return DrainResult{}, err
	}
	events, err := stack.Target.Events(ctx)
	if err != nil {
		return DrainResult{}, err
	}
	var first, last time.Time
	mismatches := 0
	for _, e := range events {
		at := e.FirstReceivedAt
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		if e.Brand != event.DefaultBrand {
			mismatches++
		}
	}
	drain := last.Sub(first)
	return DrainResult{
		Events:          o.DrainEvents,
		Limit:           o.DrainLimit,
		Accepted:        accepted,
		Ideal:           ideal,
		Drain:           drain,
		DrainVsIdeal:    drain.Seconds() / ideal.Seconds(),
		MaxPerSecond:    st.MaxAcceptedPerSecond,
		MaxCallsPerSec:  st.MaxCallsPerSecond,
		Lost:            accepted - st.DistinctEvents,
		DuplicateCalls:  st.Duplicates,
		RateLimited:     st.RateLimited,
		BrandMismatches: mismatches,
	}, nil
}

func runLatency(ctx context.Context, o Options) (LatencyResult, error) {
	stack, stop, err := startStack(ctx, o, filepath.Join(o.WorkDir, "latency"), o.DrainLimit, slices.Max(o.SampleRatios))
	if err != nil {
		return LatencyResult{}, err
	}
	defer stop()
	m, _, err := attack(ctx, stack, o.LatencyRate, o.LatencyDuration)
	if err != nil {
		return LatencyResult{}, err
	}
	accepted := m.StatusCodes["202"]
	if err := waitDelivered(ctx, stack, accepted, o.LatencyDuration+30*time.Second); err != nil {
		return LatencyResult{}, err
	}
	recs, err := stack.Status.List(ctx, status.Query{Status: status.Delivered, Limit: accepted + 10})
	if err != nil {
		return LatencyResult{}, err
	}
	lat := make([]time.Duration, 0, len(recs))
	for _, r := range recs {
		if r.DeliveredAt != nil {
			lat = append(lat, r.DeliveredAt.Sub(r.ReceivedAt))
		}
	}
	if len(lat) == 0 {
		return LatencyResult{}, errors.New("no delivered records")
	}
	return LatencyResult{Rate: o.LatencyRate, Limit: o.DrainLimit, Delivered: len(lat), EndToEnd: percentiles(lat)}, nil
}

func percentiles(d []time.Duration) Latency {
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(p * float64(len(d)-1))
		return d[i]
	}
	return Latency{P50: q(0.5), P90: q(0.9), P99: q(0.99), P999: q(0.999), Max: d[len(d)-1]}
}

// Print writes the report as a table.
func Print(w io.Writer, r Report) error {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if r.Engine != "" {
		fmt.Fprintf(tw, "engine\t%s\t\n", r.Engine)
	}
	fmt.Fprintf(tw, "scenario\tmeasure\tvalue\n")
	modes := r.IngestModes
	if len(modes) == 0 && r.Ingest.Requests > 0 {
		modes = []IngestResult{r.Ingest}
	}
	for _, in := range modes {
		fmt.Fprintf(tw, "ingest %d/s x %v, %s\trequests / throughput\t%d / %.1f/s\n", in.Rate, in.Duration, modeName(in.SampleRatio), in.Requests, in.Throughput)
		fmt.Fprintf(tw, "\tp50 / p90 / p99 / p99.9 / max\t%s / %s / %s / %s / %s\n", ms(in.Latency.P50), ms(in.Latency.P90), ms(in.Latency.P99), ms(in.Latency.P999), ms(in.Latency.Max))
		fmt.Fprintf(tw, "\tnon-2xx / over 500 ms\t%d / %d\n", in.Non2xx, in.Over500ms)
		if len(in.RoundP99s) > 0 {
			rounds := make([]string, len(in.RoundP99s))
			for i, d := range in.RoundP99s {
				rounds[i] = fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
			}
			fmt.Fprintf(tw, "\tp99 per round (ms) / median\t%s / %s\n", strings.Join(rounds, " "), ms(in.MedianRoundP99))
		}
		fmt.Fprintf(tw, "\tCPU per request (stack + load generator)\t%.1f µs\n", float64(in.CPUPerRequest)/float64(time.Microsecond))
	}
	if n := r.Noop; n != nil {
		in := *n
		fmt.Fprintf(tw, "no-op handler %d/s x %v\trequests / non-2xx\t%d / %d\n", in.Rate, in.Duration, in.Requests, in.Non2xx)
		fmt.Fprintf(tw, "\tp50 / p90 / p99 / p99.9 / max\t%s / %s / %s / %s / %s\n", ms(in.Latency.P50), ms(in.Latency.P90), ms(in.Latency.P99), ms(in.Latency.P999), ms(in.Latency.Max))
		fmt.Fprintf(tw, "\tmedian round p50 / p99\t%s / %s\n", ms(in.MedianRoundP50), ms(in.MedianRoundP99))
		for _, m := range modes {
			p50, p99 := VsNoop(in, m)
			fmt.Fprintf(tw, "ingest vs no-op, %s\tmedian round p50 / p99 (ingest / no-op)\t%s / %s (x%.1f / x%.1f)\n",
				modeName(m.SampleRatio), ms(m.MedianRoundP50), ms(m.MedianRoundP99), p50, p99)
		}
	}
	if sat := r.Saturation; sat != nil {
		for i, run := range sat.Runs {
			steps := make([]string, len(run.Steps))
			for j, st := range run.Steps {
				steps[j] = fmt.Sprintf("%d/s %.0f ms", st.Rate, float64(st.P99)/float64(time.Millisecond))
				if st.Non2xx > 0 {
					steps[j] += fmt.Sprintf(" %d non-2xx", st.Non2xx)
				}
			}
			fmt.Fprintf(tw, "saturation run %d (telemetry off, %v per rate)\tp99 per rate\t%s -> %d/s\n", i+1, sat.Duration, strings.Join(steps, ", "), run.Point)
		}
		fmt.Fprintf(tw, "saturation point (p99 < 500 ms, no non-2xx)\tmedian of %d runs\t%d/s\n", len(sat.Runs), sat.MedianPoint)
	}
	if len(modes) > 1 && modes[0].Telemetry == "off" {
		base := modes[0]
		for _, in := range modes[1:] {
			p99, cpu := TelemetryCost(base, in)
			fmt.Fprintf(tw, "telemetry cost, %s\tmedian round p99 / CPU per request vs off\t%+.1f %% (%s) / %+.1f %%\n",
				strings.TrimPrefix(modeName(in.SampleRatio), "telemetry on, "), 100*p99, ms(in.MedianRoundP99-base.MedianRoundP99), 100*cpu)
		}
	}
	if dr := r.Drain; dr.Events > 0 {
		fmt.Fprintf(tw, "drain %d into %.4g/s\taccepted by ingest\t%d\n", dr.Events, dr.Limit, dr.Accepted)
		fmt.Fprintf(tw, "\tdrain / ideal N/limit\t%.2fs / %.2fs (x%.3f)\n", dr.Drain.Seconds(), dr.Ideal.Seconds(), dr.DrainVsIdeal)
		fmt.Fprintf(tw, "\ttarget max accepted/s (calls/s)\t%d (%d)\n", dr.MaxPerSecond, dr.MaxCallsPerSec)
		fmt.Fprintf(tw, "\tlost / duplicate calls / rate-limited / wrong brand\t%d / %d / %d / %d\n", dr.Lost, dr.DuplicateCalls, dr.RateLimited, dr.BrandMismatches)
	}
	if la := r.Latency; la.Delivered > 0 {
		fmt.Fprintf(tw, "latency %d/s into %.4g/s\tdelivered\t%d\n", la.Rate, la.Limit, la.Delivered)
		fmt.Fprintf(tw, "\tend-to-end p50 / p90 / p99 / max\t%s / %s / %s / %s\n", ms(la.EndToEnd.P50), ms(la.EndToEnd.P90), ms(la.EndToEnd.P99), ms(la.EndToEnd.Max))
	}
	return tw.Flush()
}

// VsNoop is how many times the no-op handler's median round p50 and p99
// ingest's are (0 when the no-op's is 0).
func VsNoop(noop, in IngestResult) (p50, p99 float64) {
	if noop.MedianRoundP50 > 0 {
		p50 = float64(in.MedianRoundP50) / float64(noop.MedianRoundP50)
	}
	if noop.MedianRoundP99 > 0 {
		p99 = float64(in.MedianRoundP99) / float64(noop.MedianRoundP99)
	}
	return p50, p99
}

// TelemetryCost is the relative change of ingest's median round p99 and of
// the CPU time per request with telemetry (on) against without (base):
// 0.05 is 5 % more.
func TelemetryCost(base, on IngestResult) (p99, cpu float64) {
	if base.MedianRoundP99 > 0 {
		p99 = float64(on.MedianRoundP99-base.MedianRoundP99) / float64(base.MedianRoundP99)
	}
	if base.CPUPerRequest > 0 {
		cpu = float64(on.CPUPerRequest-base.CPUPerRequest) / float64(base.CPUPerRequest)
	}
	return p99, cpu
}

// WriteJSON writes the report to dir/bench-<time>.json and returns the path.
func WriteJSON(dir string, r Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "bench-"+r.Started.Format("20060102T150405Z")+".json")
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}
