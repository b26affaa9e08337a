package relayctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"eventrelay/internal/dispatcher"
	"eventrelay/internal/ingest"
	"eventrelay/internal/queue"
	"eventrelay/internal/reconcile"
	"eventrelay/internal/targetmock"
)

// lockedBuffer is an io.Writer safe to read while relayctl dev writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	metricsLine = regexp.MustCompile(`metrics +(\S+/metrics)`)
	acceptedRE  = regexp.MustCompile(`(?m)^eventrelay_ingest_requests_total\{[^}]*outcome="accepted"[^}]*\} (\S+)$`)
)

// TestDevServesMetrics runs relayctl dev with a small source and scrapes
// /metrics until it counts accepted events: on the ops page's listener by
// default, on a listener of its own with --metrics-addr.
func TestDevServesMetrics(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
	}{
		{name: "on the ops listener", flags: []string{"--ops-addr", "127.0.0.1:0"}},
		{name: "own listener", flags: []string{"--ops-addr", "", "--metrics-addr", "127.0.0.1:0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			args := append([]string{"dev", "--data", t.TempDir(), "--source-rate", "20", "--target-rate", "50",
				"--ingest-addr", "127.0.0.1:0", "--target-addr", "127.0.0.1:0"}, c.flags...)
			var out, errOut lockedBuffer
			exit := make(chan int, 1)
			go func() { exit <- Main(ctx, args, &out, &errOut) }()

			deadline := time.Now().Add(30 * time.Second)
			var accepted float64
			for accepted < 1 {
				if time.Now().After(deadline) {
					t.Fatalf("no accepted events in /metrics after 30s; stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
				}
				select {
				case code := <-exit:
					t.Fatalf("relayctl dev exited %d early; stderr:\n%s", code, errOut.String())
				case <-time.After(200 * time.Millisecond):
				}
				m := metricsLine.FindStringSubmatch(out.String())
				if m == nil {
					continue
				}
				accepted = scrapeAccepted(t, m[1])
			}
			cancel()
			if code := <-exit; code != 0 {
				t.Errorf("relayctl dev exited %d; stderr:\n%s", code, errOut.String())
			}
		})
	}
}

func scrapeAccepted(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	m := acceptedRE.FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("accepted count %q: %v", m[1], err)
	}
	return v
}

// collector is an OTLP trace collector that notes the service names of the
// spans it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names map[string]bool
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				c.names[kv.GetValue().GetStringValue()] = true
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) seen(names ...string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if !c.names[n] {
			return false
		}
	}
	return true
}

// TestDevExportsLikeProduction runs relayctl dev with
// OTEL_EXPORTER_OTLP_ENDPOINT set: its spans reach the collector, each
// component's under the service name it has in production.
func TestDevExportsLikeProduction(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{names: map[string]bool{}}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: export soon

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	args := []string{"dev", "--data", t.TempDir(), "--source-rate", "20", "--target-rate", "50",
		"--ingest-addr", "127.0.0.1:0", "--target-addr", "127.0.0.1:0", "--ops-addr", ""}
	var out, errOut lockedBuffer
	exit := make(chan int, 1)
	go func() { exit <- Main(ctx, args, &out, &errOut) }()
	deadline := time.Now().Add(30 * time.Second)
	for !col.seen("ingest", "dispatcher", "targetmock") {
		if time.Now().After(deadline) {
			col.mu.Lock()
			names := fmt.Sprint(col.names)
			col.mu.Unlock()
			t.Fatalf("the collector saw services %s after 30s, want ingest, dispatcher and targetmock; stderr:\n%s", names, errOut.String())
		}
		select {
		case code := <-exit:
			t.Fatalf("relayctl dev exited %d early; stderr:\n%s", code, errOut.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("relayctl dev exited %d; stderr:\n%s", code, errOut.String())
	}
	if col.seen("relayctl-dev") {
		t.Error("spans exported as relayctl-dev: the components must carry their own service names")
	}
}

// TestDevFlagDefaults: the flags that stand for a service setting default
// to that setting's env tag default, as the binaries read it.
func TestDevFlagDefaults(t *testing.T) {
	t.Parallel()
	var services struct {
		Dispatcher dispatcher.Config
		Ingest     ingest.Config
		Queue      queue.Config
		Reconcile  reconcile.Config
	}
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &services,
		Lookuper: envconfig.MapLookuper(map[string]string{"TARGET_URL": "http://t.invalid/"})}); err != nil {
		t.Fatal(err)
	}
	target, err := targetmock.LoadConfig(t.Context(), envconfig.MapLookuper(nil))
	if err != nil {
		t.Fatal(err)
	}
	var usage bytes.Buffer
	if err := runDev(t.Context(), []string{"-h"}, io.Discard, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("relayctl dev -h = %v, want flag.ErrHelp", err)
	}
	for flagName, want := range map[string]string{
		"target-rate": strconv.FormatFloat(services.Queue.MaxDispatchesPerSecond, 'g', -1, 64),
		"brand":       strconv.Quote(services.Dispatcher.Brand),
		"target-mode": strconv.Quote(string(target.RateLimitMode)),
		"ingest-addr": strconv.Quote("127.0.0.1:" + services.Ingest.Port),
		"target-addr": strconv.Quote("127.0.0.1:" + target.Port),

		"reconcile-grace":    services.Reconcile.Grace.String(),
		"reconcile-interval": services.Reconcile.Interval.String(),
	} {
		re := regexp.MustCompile(`(?m)^  -` + flagName + ` .*\n(?:    .*\n)*?.*\(default ` + regexp.QuoteMeta(want) + `\)`)
		if !re.MatchString(usage.String()) {
			t.Errorf("--%s: want default %s (its env tag's), usage:\n%s", flagName, want, usage.String())
		}
	}
}
