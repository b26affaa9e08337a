package opspage

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/shardedqueue"
)

// fakeShards reports the shard settings it holds.
type fakeShards struct {
	mu sync.Mutex
	cs []shardedqueue.ShardControl
}

var _ ShardSource = (*fakeShards)(nil)

func (f *fakeShards) ShardControls(context.Context) []shardedqueue.ShardControl {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cs)
}

func (f *fakeShards) set(cs ...shardedqueue.ShardControl) {
	f.mu.Lock()
	f.cs = cs
	f.mu.Unlock()
}

// twoShards is a queue of 2 shards, the second paused.
func twoShards() []shardedqueue.ShardControl {
	return []shardedqueue.ShardControl{
		{Name: "relay-events", Control: queue.Control{Rate: 2.5}},
		{Name: "relay-events-1", Control: queue.Control{Rate: 1.25, Paused: true, By: queue.ByGovernor}},
	}
}

func TestOverviewShowsTheShards(t *testing.T) {
	t.Parallel()
	sh := &fakeShards{}
	sh.set(append(twoShards(), shardedqueue.ShardControl{Name: "relay-events-2", Err: errors.New("shard down")})...)
	p, _, _ := newPage(t, func(o *Options) { o.Shards = sh })

	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	want := []ShardView{
		{Name: "relay-events", Rate: 2.5},
		{Name: "relay-events-1", Rate: 1.25, Paused: true},
		{Name: "relay-events-2", Error: "shard down"},
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

func TestPageShowsTheShards(t *testing.T) {
	t.Parallel()
	sh := &fakeShards{}
	sh.set(twoShards()...)
	p, _, _ := newPage(t, func(o *Options) { o.Rate, o.Shards = &fakeRate{}, sh })

	body := get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<dd class="card-sub" id="shards"><table class="shards">`,
		`<tr><td class="mono" title="relay-events">relay-events</td><td>2.5/s</td><td>no</td></tr>`,
		`<tr><td class="mono" title="relay-events-1">relay-events-1</td><td>1.25/s</td><td>paused</td></tr>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page with 2 shards lacks %s", want)
		}
	}

	sh.set(twoShards()[0])
	body = get(t, p.Handler(), "/").Body.String()
	if !strings.Contains(body, `id="shards" hidden>`) || strings.Contains(body, `title="relay-events"`) {
		t.Error("the shard table shows for one shard")
	}
}
