// SPDX-License-Identifier: Apache-2.0

package logout

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Which path each client configuration takes: direct when go-redis bounds
// the call by its context itself, a goroutine per call otherwise, and for a
// ClusterClient goroutines until one call was answered in time.
func TestRedisCallPaths(t *testing.T) {
	const addr = "127.0.0.1:1" // never dialled: building a client does no I/O
	type wrapped struct{ *redis.Client }
	tests := []struct {
		name   string
		client func() redis.UniversalClient
		want   string
	}{
		{"Client", func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }, "goroutine"},
		{"Client, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		}, "direct"},
		{"Client, ContextTimeoutEnabled, no read timeout", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: -1})
		}, "direct"},
		{"Client, ContextTimeoutEnabled, read deadlines off", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: -2})
		}, "goroutine"},
		{"Client, ContextTimeoutEnabled, write deadlines off", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, WriteTimeout: -2})
		}, "goroutine"},
		{"FailoverClient", func() redis.UniversalClient {
			return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{addr}})
		}, "goroutine"},
		{"FailoverClient, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{addr}, ContextTimeoutEnabled: true})
		}, "direct"},
		{"UniversalClient of one address, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
		}, "direct"},
		{"UniversalClient with a master name, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, MasterName: "m", ContextTimeoutEnabled: true})
		}, "direct"},
		{"UniversalClient of two addresses, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr, addr}, ContextTimeoutEnabled: true})
		}, "goroutine until answered, then direct"},
		{"ClusterClient", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
		}, "goroutine"},
		{"ClusterClient, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
		}, "goroutine until answered, then direct"},
		{"ClusterClient, ContextTimeoutEnabled, read deadlines off", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true, ReadTimeout: -2})
		}, "goroutine"},
		{"ClusterClient, ContextTimeoutEnabled, DisableRoutingPolicies", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true, DisableRoutingPolicies: true})
		}, "goroutine"},
		{"FailoverClusterClient, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewFailoverClusterClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{addr}, ContextTimeoutEnabled: true})
		}, "goroutine until answered, then direct"},
		{"Ring", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}})
		}, "goroutine"},
		{"Ring, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true})
		}, "direct"},
		{"Ring, ContextTimeoutEnabled, no read timeout", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true, ReadTimeout: -1})
		}, "direct"},
		{"Ring, ContextTimeoutEnabled, read deadlines off", func() redis.UniversalClient {
			return redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true, ReadTimeout: -2})
		}, "goroutine"},
		{"a client type of the app's own", func() redis.UniversalClient {
			return wrapped{redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})}
		}, "goroutine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb := tt.client()
			defer rdb.Close()
			for what, c := range map[string]redisCalls{
				"RedisStore":     NewRedisStore(rdb).calls,
				"RevocationList": NewRevocationList(rdb).calls,
			} {
				if got := describePath(c); got != tt.want {
					t.Errorf("%s: got %q, want %q", what, got, tt.want)
				}
			}
		})
	}
}

func describePath(c redisCalls) string {
	switch {
	case c.cold != nil && c.cold.Load() && c.direct:
		return "goroutine until answered, then direct"
	case c.isDirect():
		return "direct"
	}
	return "goroutine"
}

// A ClusterClient goes direct once a call was answered in time, and not on
// a call that missed its deadline or failed.
func TestClusterCallsGoDirectOnceAnswered(t *testing.T) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer rdb.Close()
	c := newRedisCalls(rdb)
	fail := func() (int, error) { return 0, errTest }
	answer := func() (int, error) { return 1, nil }
	notFound := func() (int, error) { return 0, redis.Nil }
	ctx := t.Context()
	within(ctx, c, fail)
	if c.isDirect() {
		t.Fatal("direct after a failed call")
	}
	within(ctx, c, notFound)
	if !c.isDirect() {
		t.Fatal("still on goroutines after a nil reply, which is an answer")
	}
	c = newRedisCalls(rdb)
	within(ctx, c, answer)
	if !c.isDirect() {
		t.Fatal("still on goroutines after an answer")
	}
	// A call that misses its deadline proves nothing.
	c = newRedisCalls(rdb)
	expired, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-expired.Done()
	release := make(chan struct{})
	defer close(release)
	within(expired, c, func() (int, error) { <-release; return 1, nil })
	if c.isDirect() {
		t.Fatal("direct after a call that missed its deadline")
	}
}

var errTest = errors.New("test failure")
