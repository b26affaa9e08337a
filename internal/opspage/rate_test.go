package opspage

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"eventrelay/internal/governor"
	"eventrelay/internal/queue"
	"eventrelay/internal/status"
)

// fakeRate is a RateSource whose snapshot the test sets.
type fakeRate struct {
	mu   sync.Mutex
	snap governor.Snapshot
}

func (f *fakeRate) Snapshot() governor.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeRate) set(s governor.Snapshot) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
}

// holdingSnapshot is a governor holding the queue at 2.4/s of 10/s, with a
// burst of 5.
func holdingSnapshot(at time.Time) governor.Snapshot {
	slow := governor.Decision{Action: governor.ActionSlow, Rate: 2.4, Reason: "70% of 100 target calls rate limited (threshold 20%)"}
	return governor.Snapshot{
		Enabled: true, Leader: true,
		Live:   queue.Control{Rate: 2.4, Burst: 5, By: queue.ByGovernor, At: at},
		LiveAt: at, Ceiling: 10, Holding: true,
		Decision: slow, Acted: slow, ActedAt: at,
	}
}

// breakerOpenSnapshot is a governor whose breaker opened 10 s before at:
// the queue at the floor of 1/s until 20 s after at.
func breakerOpenSnapshot(at time.Time) governor.Snapshot {
	open := governor.Decision{Action: governor.ActionBreakOpen, Rate: 1,
		Reason: "60% of 40 target calls failed (threshold 50%): the queue goes to the floor 1/s for 30s"}
	since := at.Add(-10 * time.Second)
	return governor.Snapshot{
		Enabled: true, Leader: true,
		Live:   queue.Control{Rate: 1, By: queue.ByGovernor, At: since},
		LiveAt: at, Ceiling: 10, Holding: true,
		Decision: open, Acted: open, ActedAt: since,
		Breaker: governor.Breaker{State: governor.BreakerOpenState, Since: since, Until: since.Add(30 * time.Second), Resume: 10},
	}
}

func ptr[T any](v T) *T { return &v }

func TestRateView(t *testing.T) {
	t.Parallel()
	now := t0
	cases := []struct {
		name       string
		snap       governor.Snapshot
		want       RateView
		bannerHas  []string
		noBanner   bool
		wantReason bool
	}{
		{
			name:      "holding below the ceiling",
			snap:      holdingSnapshot(now),
			want:      RateView{Live: 2.4, Burst: 5, FirstSecond: 7.4, Ceiling: 10, Governor: GovernorOn, Holding: true, Breaker: governor.BreakerClosed},
			bannerHas: []string{"holds the queue at 2.4/s", "ceiling of 10/s", "70% of 100 target calls rate limited", "relayctl queue rate N", "QUEUE_GOVERNOR=off"},
		},
		{
			name:     "at the ceiling: no banner",
			snap:     governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: now, Ceiling: 10},
			want:     RateView{Live: 10, Ceiling: 10, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name:      "paused by hand",
			snap:      governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10, Paused: true, By: queue.ByOperator}, LiveAt: now, Ceiling: 10},
			want:      RateView{Live: 10, Ceiling: 10, Paused: true, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			bannerHas: []string{"paused by operator", "relayctl queue resume"},
		},
		{
			name: "stood down for ops",
			snap: governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 6, By: queue.ByOperator}, LiveAt: now, Ceiling: 6,
				HoldUntil: now.Add(5 * time.Minute)},
			want:      RateView{Live: 6, Ceiling: 6, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			bannerHas: []string{"stood down", "changed by hand to 6/s"},
		},
		{
			name:     "after the hold: no banner",
			snap:     governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 6}, LiveAt: now, Ceiling: 6, HoldUntil: now.Add(-time.Second)},
			want:     RateView{Live: 6, Ceiling: 6, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name:     "off: watching only, never holding",
			snap:     governor.Snapshot{Enabled: false, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: now, Ceiling: 10, Holding: true},
			want:     RateView{Live: 10, Ceiling: 10, Governor: GovernorOff, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name:     "the engine cannot tell the burst",
			snap:     governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10, Burst: 0}, LiveAt: now, Ceiling: 10},
			want:     RateView{Live: 10, Ceiling: 10, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name:     "not read yet: no burst either",
			snap:     governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 3, Burst: 4}, Ceiling: 10},
			want:     RateView{Ceiling: 10, Governor: GovernorOn, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name:     "standby: another instance holds the lease",
			snap:     governor.Snapshot{Enabled: true, Leader: false, Ceiling: 10},
			want:     RateView{Ceiling: 10, Governor: GovernorStandby, Breaker: governor.BreakerClosed},
			noBanner: true,
		},
		{
			name: "breaker open: held at the floor until it probes",
			snap: breakerOpenSnapshot(now),
			want: RateView{Live: 1, Ceiling: 10, Governor: GovernorOn, Holding: true, Breaker: governor.BreakerOpenState,
				BreakerSince: ptr(now.Add(-10 * time.Second)), BreakerUntil: ptr(now.Add(20 * time.Second))},
			bannerHas: []string{"circuit breaker is open since " + clock(now.Add(-10*time.Second)),
				"60% of 40 target calls failed", "holds the queue at 1/s until " + clock(now.Add(20*time.Second)),
				"relayctl queue rate N", "QUEUE_GOVERNOR=off"},
		},
		{
			name: "breaker half-open: probing, the holding banner",
			snap: func() governor.Snapshot {
				s := holdingSnapshot(now)
				s.Breaker = governor.Breaker{State: governor.BreakerHalfOpen, Since: now.Add(-time.Second), Resume: 10}
				return s
			}(),
			want: RateView{Live: 2.4, Burst: 5, FirstSecond: 7.4, Ceiling: 10, Governor: GovernorOn, Holding: true, Breaker: governor.BreakerHalfOpen,
				BreakerSince: ptr(now.Add(-time.Second))},
			bannerHas: []string{"holds the queue at 2.4/s"},
		},
		{
			name:     "breaker closed again: since when",
			snap:     governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: now, Ceiling: 10, Breaker: governor.Breaker{State: governor.BreakerClosed, Since: now.Add(-time.Minute)}},
			want:     RateView{Live: 10, Ceiling: 10, Governor: GovernorOn, Breaker: governor.BreakerClosed, BreakerSince: ptr(now.Add(-time.Minute))},
			noBanner: true,
		},
		{
			name: "the governor's error shows",
			snap: governor.Snapshot{Enabled: true, Leader: true, Ceiling: 10, Err: "read the queue's settings: boom"},
			want: RateView{Ceiling: 10, Governor: GovernorOn, Error: "read the queue's settings: boom", Breaker: governor.BreakerClosed}, noBanner: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := rateView(tc.snap, now)
			if tc.noBanner && got.Banner != "" {
				t.Errorf("banner %q, want none", got.Banner)
			}
			for _, w := range tc.bannerHas {
				if !strings.Contains(got.Banner, w) {
					t.Errorf("banner %q lacks %q", got.Banner, w)
				}
			}
			got.Banner, got.Decision = "", ""
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("rateView (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOverviewShowsTheRate(t *testing.T) {
	t.Parallel()
	rate := &fakeRate{}
	rate.set(holdingSnapshot(t0))
	p, store, _ := newPage(t, func(o *Options) { o.Rate = rate })
	store.addN(t, "a", 3, status.Delivered, t0)
	mustSample(t, p, t0)
	mustSample(t, p, t0.Add(time.Second))
	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	if ov.Rate == nil || ov.Rate.Live != 2.4 || ov.Rate.Ceiling != 10 || !ov.Rate.Holding || ov.Rate.Banner == "" {
		t.Fatalf("overview rate = %+v, want holding at 2.4 of 10 with a banner", ov.Rate)
	}
	if n := len(ov.Samples); n != 1 || ov.Samples[0].DispatchRate != 2.4 {
		t.Errorf("samples = %+v, want one with dispatch rate 2.4", ov.Samples)
	}

	// Without a RateSource the overview has no rate and samples none.
	p2, store2, _ := newPage(t, nil)
	store2.addN(t, "a", 1, status.Delivered, t0)
	mustSample(t, p2, t0)
	mustSample(t, p2, t0.Add(time.Second))
	ov2 := decode[Overview](t, get(t, p2.Handler(), "/api/overview"))
	if ov2.Rate != nil || ov2.Samples[0].DispatchRate != 0 {
		t.Errorf("overview without a rate source: rate %+v, sample %+v", ov2.Rate, ov2.Samples[0])
	}
}

func TestPageShowsTheGovernorBanner(t *testing.T) {
	t.Parallel()
	rate := &fakeRate{}
	p, _, _ := newPage(t, func(o *Options) { o.Rate = rate })

	rate.set(holdingSnapshot(t0))
	body := get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<p id="rate-banner" class="banner" role="status">The rate governor holds the queue at 2.4/s`,
		`<div class="card warn" id="rate-card"><dt>Queue rate</dt>`,
		`<dd id="queue-rate">2.4/s</dd>`,
		`<dd class="card-sub" id="queue-rate-sub">ceiling 10/s · governor on</dd>`,
		`<dd class="card-sub" id="queue-burst">burst 5 · first second after idle ≤ 7.4 tasks</dd>`,
		`<span class="key key-rate" id="key-rate">queue rate</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}

	rate.set(governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: t0, Ceiling: 10})
	body = get(t, p.Handler(), "/").Body.String()
	if !strings.Contains(body, `<p id="rate-banner" class="banner" role="status" hidden></p>`) {
		t.Error("the banner shows while the queue runs at its ceiling")
	}
	if !strings.Contains(body, `<div class="card" id="rate-card"><dt>Queue rate</dt>`) {
		t.Error("the rate card is marked while the queue runs at its ceiling")
	}
	if !strings.Contains(body, `<dd class="card-sub" id="queue-burst">burst unknown</dd>`) {
		t.Error("the rate card does not say the burst is unknown when the engine reports none")
	}

	// Without a rate source, the card, the key and the banner stay hidden.
	p2, _, _ := newPage(t, nil)
	body = get(t, p2.Handler(), "/").Body.String()
	for _, want := range []string{
		`<p id="rate-banner" class="banner" role="status" hidden></p>`,
		`id="rate-card" hidden>`,
		`<span class="key key-rate" id="key-rate" hidden>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page without a rate source lacks %s", want)
		}
	}
}

func TestPageShowsTheBreaker(t *testing.T) {
	t.Parallel()
	rate := &fakeRate{}
	p, _, _ := newPage(t, func(o *Options) { o.Rate = rate })

	rate.set(breakerOpenSnapshot(t0))
	ov := decode[Overview](t, get(t, p.Handler(), "/api/overview"))
	if ov.Rate == nil || ov.Rate.Breaker != governor.BreakerOpenState || ov.Rate.BreakerSince == nil ||
		!ov.Rate.BreakerSince.Equal(t0.Add(-10*time.Second)) || ov.Rate.BreakerUntil == nil {
		t.Fatalf("overview rate = %+v, want the breaker open since 10 s before t0", ov.Rate)
	}
	body := get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<p id="rate-banner" class="banner" role="status">The circuit breaker is open since ` + clock(t0.Add(-10*time.Second)),
		`<div class="card bad" id="rate-card"><dt>Queue rate</dt>`,
		`<dd class="card-sub" id="breaker">breaker <span id="breaker-state" class="breaker breaker-open">open</span><span id="breaker-since"> since ` + clock(t0.Add(-10*time.Second)) + `</span></dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page with the breaker open lacks %s", want)
		}
	}

	half := holdingSnapshot(t0)
	half.Breaker = governor.Breaker{State: governor.BreakerHalfOpen, Since: t0}
	rate.set(half)
	body = get(t, p.Handler(), "/").Body.String()
	for _, want := range []string{
		`<div class="card warn" id="rate-card">`,
		`<span id="breaker-state" class="breaker breaker-half_open">half-open</span><span id="breaker-since"> since ` + clock(t0) + `</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page with the breaker half-open lacks %s", want)
		}
	}

	// A governor that never opened it: closed, no since.
	rate.set(governor.Snapshot{Enabled: true, Leader: true, Live: queue.Control{Rate: 10}, LiveAt: t0, Ceiling: 10})
	body = get(t, p.Handler(), "/").Body.String()
	if want := `<span id="breaker-state" class="breaker breaker-closed">closed</span><span id="breaker-since"></span>`; !strings.Contains(body, want) {
		t.Errorf("page with the breaker never opened lacks %s", want)
	}
}
