package opspage

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
)

// fakeShards reports the shard settings and stats it holds.
type fakeShards struct {
	mu sync.Mutex
	cs []shardedqueue.ShardControl
	ss []queue.ShardStat
}

var _ ShardSource = (*fakeShards)(nil)

func (f *fakeShards) ShardControls(context.Context) []shardedqueue.ShardControl {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cs)
}

func (f *fakeShards) ShardStats(context.Context) []queue.ShardStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ss)
}

func (f *fakeShards) set(cs ...shardedqueue.ShardControl) {
	f.mu.Lock()
	f.cs = cs
	f.mu.Unlock()
}

func (f *fakeShards) setStats(ss ...queue.ShardStat) {
	f.mu.Lock()
	f.ss = ss
	f.mu.Unlock()
}

// twoShards is a queue of 2 shards, the second paused, each with a burst
// of its own.
func twoShards() []shardedqueue.ShardControl {
	return []shardedqueue.ShardControl{
		{Name: "relay-events", Control: queue.Control{Rate: 2.5, Burst: 5}},
		{Name: "relay-events-1", Control: queue.Control{Rate: 1.25, Burst: 3, Paused: true, By: queue.ByGovernor}},
	}
}

// twoShardStats are twoShards' stats: the paused second shard is behind.
func twoShardStats() []queue.ShardStat {
	return []queue.ShardStat{
		{Name: "relay-events", Stats: queue.Stats{Backlog: 12, InFlight: 2, OldestAge: 3500 * time.Millisecond}},
		{Name: "relay-events-1", Stats: queue.Stats{Backlog: 480, OldestAge: 95 * time.Second}},
	}
}

func TestOverviewShowsTheShards(t *testing.T) {
	t.Parallel()
	sh := &fakeShards{}
	sh.set(append(twoShards(), shardedqueue.ShardControl{Name: "relay-events-2", Err: errors.New("shard down")})...)
	stats := twoShardStats()
	stats[1] = queue.ShardStat{Name: "relay-events-1", Err: errors.New("stats down")}
	sh.setStats(append(stats, queue.ShardStat{Name: "relay-events-2", Stats: queue.Stats{Backlog: 7, InFlight: 1, OldestAge: time.Second}})...)
	p, _, _ := newPage(t, func(o *Options) { o.Shards = sh })

	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	want := []ShardView{
		{Name: "relay-events", Rate: 2.5, Burst: 5, Backlog: 12, InFlight: 2, OldestAgeSeconds: 3.5},
		{Name: "relay-events-1", Rate: 1.25, Burst: 3, Paused: true, StatsError: "stats down"},
		{Name: "relay-events-2", Error: "shard down", Backlog: 7, InFlight: 1, OldestAgeSeconds: 1},
	}
	if diff := cmp.Diff(want, ov.Shards); diff != "" {
		t.Errorf("overview shards (-want +got):\n%s", diff)
	}

	// One shard is no sharding: no list.
	sh.set(twoShards()[0])
	if ov := decode[Overview](t, get(t, p.Handler(), "/api/overview")); ov.Shards != nil {
		t.Errorf("overview with one shard lists %+v", ov.Shards)
	}
	// Nor without a ShardSource.
	p2, _, _ := newPage(t, nil)
	if rec := get(t, p2.Handler(), "/api/overview"); strings.Contains(rec.Body.String(), `"shards"`) {
		t.Errorf("overview without a shard source has shards: %s", rec.Body)
	}
}

// A shard the stats do not mention is listed with a stats error, never
// with a zero backlog that would read as "empty".
func TestShardViewsWithoutAShardsStats(t *testing.T) {
	t.Parallel()
	got := shardViews(twoShards(), twoShardStats()[:1])
	if got[1].StatsError == "" || got[1].Backlog != 0 {
		t.Errorf("shard without stats = %+v, want a StatsError", got[1])
	}
	if got[0].StatsError != "" || got[0].Backlog != 12 {
		t.Errorf("shard with stats = %+v", got[0])
	}
}

func TestPageShowsTheShards(t *testing.T) {
	t.Parallel()
	sh := &fakeShards{}
	sh.set(twoShards()...)
	stats := twoShardStats()
	stats[1].Err = errors.New("stats <down>")
	sh.setStats(stats...)
	rate := &fakeRate{}
	// The sharded queue's Control: the shards' rates and bursts summed.
	rate.set(governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 3.75, Burst: 8}, LiveAt: t0, Ceiling: 3.75})
	p, _, _ := newPage(t, func(o *Options) { o.Rate, o.Shards = rate, sh })

	body := get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<dd class="card-sub" id="queue-burst">burst 8 over 2 shards · first second after idle ≤ 11.75 tasks</dd>`,
		`<dd class="card-sub" id="shards"><table class="shards">`,
		`<th scope="col">rate</th><th scope="col">burst</th><th scope="col">paused</th><th scope="col">backlog</th><th scope="col">in flight</th><th scope="col">oldest</th>`,
		`<tr><td class="mono" title="relay-events">relay-events</td><td>2.5/s</td><td>5</td><td>no</td><td>12</td><td>2</td><td>3.5 s</td></tr>`,
		`<tr><td class="mono" title="relay-events-1">relay-events-1</td><td>1.25/s</td><td>3</td><td>paused</td><td colspan="3" title="stats &lt;down&gt;">unreadable</td></tr>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page with 2 shards lacks %s", want)
		}
	}

	// A shard whose settings cannot be read: one cell over rate, burst
	// and paused; a shard whose engine cannot tell its burst says so.
	unknown := twoShards()[0]
	unknown.Control.Burst = 0
	sh.set(unknown, shardedqueue.ShardControl{Name: "relay-events-1", Err: errors.New("shard down")})
	body = get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<td>2.5/s</td><td>unknown</td><td>no</td>`,
		`<tr><td class="mono" title="relay-events-1">relay-events-1</td><td colspan="3" title="shard down">unreadable</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page with an unreadable shard lacks %s", want)
		}
	}

	sh.set(twoShards()[0])
	body = get(t, p.Handler(), "/").Body.String()
	if !strings.Contains(body, `id="shards" hidden>`) || strings.Contains(body, `title="relay-events"`) {
		t.Error("the shard table shows for one shard")
	}
}
