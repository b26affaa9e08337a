package shardedqueue_test

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"eventrelay/internal/queue"
	"eventrelay/internal/queue/queuetest"
)

// The conformance suite runs over sharded queues with these adaptations,
// each because a sharded queue is N queues, not one (docs/lld/queue.md,
// "Shards"):
//
//   - X-CloudTasks-QueueName: each shard is its own engine queue and names
//     itself, queue.ShardName(cfg.Name, i) (Cloud Tasks sets the header
//     from the queue id). The harness's shardProxy, between the shards and
//     the suite's target, checks every delivery came from the shard
//     queue.ShardOf picks for its task and rewrites the header to cfg.Name,
//     so DeliversBodyAndHeaders holds the rest of the delivery to the
//     suite's standard.
//   - RateLimit, SetRate and MaxConcurrent hold unchanged: the shards are
//     configured by shardedqueue.Configs, whose rate, burst and concurrency
//     shares sum to the totals the checks set, and SetRate splits the total.
//   - FIFO is not declared: each shard dispatches on its own, so with one
//     dispatch at a time per shard N tasks go at once, in whichever order
//     the shards reach them. Order holds within a shard only
//     (TestFIFO_withinAShard).
//   - RetryAfter is not declared: a 429 or 503 pauses only the shard that
//     got it; a task on another shard is not held (TestRetryAfter_pausesOnlyItsShard).

// capabilities removes what a sharded queue cannot promise from an
// engine's capabilities (see above).
func capabilities(c queuetest.Capabilities) queuetest.Capabilities {
	c.FIFO = false
	c.RetryAfter = false
	return c
}

// shardProxy starts a reverse proxy to target for the n shards of the
// queue named base, and returns its URL for the shards to POST to. Every
// delivery must carry the X-CloudTasks-QueueName of the shard ShardOf
// picks for its task name; the proxy reports a check failure otherwise,
// and forwards the delivery with the header set to base.
func shardProxy(t *testing.T, base string, n int, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("target %q: %v", target, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
			pr.Out.URL.Path = pr.In.URL.Path
			task := pr.In.Header.Get(queue.HeaderTaskName)
			want := queue.ShardName(base, queue.ShardOf(task, n))
			if got := pr.In.Header.Get(queue.HeaderQueueName); got != want {
				t.Errorf("task %s delivered by queue %q, want its shard %q", task, got, want)
			}
			pr.Out.Header.Set(queue.HeaderQueueName, base)
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(func() {
		// A delivery still in flight (a target holding it) is cut, as the
		// queue's own hang-up would: the target then sees its context end.
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL + u.Path
}
