// SPDX-License-Identifier: Apache-2.0

// Redis calls bounded by their context, directly or in a goroutine of their
// own, and the small keyed records both Redis-backed types keep.

package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCalls is how a Redis-backed type holds each of its calls to its
// context's deadline, decided once from the client it was given, so that a
// hung Redis never holds a logout past the Handler's StoreTimeout.
//
// Directly, on the caller's goroutine, when go-redis itself stops the call at
// the deadline: a *redis.Client (Sentinel's failover client is one), a
// *redis.ClusterClient or a *redis.Ring whose options set
// ContextTimeoutEnabled and do not turn socket deadlines off (a ReadTimeout
// or WriteTimeout of -2).
//
// Otherwise in a goroutine of its own that the caller stops waiting for at
// the deadline, the call finishing in the background: any other client (a
// wrapper of the app's own, whose options the store cannot read) or one whose
// options say the context does not bound its I/O. The goroutine, its channel
// and the closures cost four allocations a call and, where the goroutine
// wakes a second thread, several microseconds of CPU.
//
// A ClusterClient with those options starts on goroutines and goes direct once
// one of its calls has been answered in time: go-redis looks up the cluster's
// command table on the first command, under a 5-second bound of its own that
// no context shortens, so until then a hung node could hold a call past the
// deadline; the lookup is kept once it succeeds. With DisableRoutingPolicies
// a single command skips the lookup but a pipeline still makes it, so no
// answer proves it done: such a client stays on goroutines.
type redisCalls struct {
	direct bool
	cold   *atomic.Bool // a ClusterClient's: true until a call was answered in time
}

func newRedisCalls(rdb redis.UniversalClient) redisCalls {
	// A timeout below zero turns socket deadlines off, and the context's
	// deadline with them. A Client and a ClusterClient hold their options
	// with "no timeout" (-1) already turned into 0; a Ring holds them as
	// given, and its shards do that.
	switch c := rdb.(type) {
	case *redis.Client:
		o := c.Options()
		return redisCalls{direct: o.ContextTimeoutEnabled && o.ReadTimeout >= 0 && o.WriteTimeout >= 0}
	case *redis.Ring:
		o := c.Options()
		return redisCalls{direct: o.ContextTimeoutEnabled && o.ReadTimeout >= -1 && o.WriteTimeout >= -1}
	case *redis.ClusterClient:
		o := c.Options()
		if !o.ContextTimeoutEnabled || o.ReadTimeout < 0 || o.WriteTimeout < 0 || o.DisableRoutingPolicies {
			return redisCalls{}
		}
		cold := new(atomic.Bool)
		cold.Store(true)
		return redisCalls{direct: true, cold: cold}
	}
	return redisCalls{}
}

// isDirect reports whether a call may run on the caller's goroutine.
func (c redisCalls) isDirect() bool {
	return c.direct && (c.cold == nil || !c.cold.Load())
}

// process sends cmd and waits for its reply within ctx's deadline; the caller
// reads cmd only when process returns nil or redis.Nil. A single command
// needs no closure, so the direct path allocates nothing of its own.
func (c redisCalls) process(ctx context.Context, rdb redis.UniversalClient, cmd redis.Cmder) error {
	if c.isDirect() {
		return deadlineError(ctx, rdb.Process(ctx, cmd))
	}
	_, err := detached(ctx, c, func() (struct{}, error) { return struct{}{}, rdb.Process(ctx, cmd) })
	return err
}

// within returns f's result, or ctx's error as soon as ctx is done, whichever
// comes first, on the path c chose: f is a call of a few commands (a
// pipeline, a script that may fall back from EVALSHA to EVAL).
func within[T any](ctx context.Context, c redisCalls, f func() (T, error)) (T, error) {
	if c.isDirect() {
		v, err := f()
		return v, deadlineError(ctx, err)
	}
	return detached(ctx, c, f)
}

// deadlineError is what a direct call that failed as its context ended
// returns: the context's error, as on the goroutine path, where go-redis
// reports the socket deadline it took from the context as an i/o timeout.
func deadlineError(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The socket's deadline may fire a moment before the context's timer.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return err
}

// detached runs f in a goroutine of its own and returns its result, or ctx's
// error as soon as ctx is done; f then finishes in the background.
func detached[T any](ctx context.Context, c redisCalls, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if c.cold != nil && (r.err == nil || errors.Is(r.err, redis.Nil)) {
			c.cold.Store(false)
		}
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// seenKey reports whether key exists.
func seenKey(ctx context.Context, rdb redis.UniversalClient, c redisCalls, key string) (bool, error) {
	exists := redis.NewIntCmd(ctx, "exists", key)
	if err := c.process(ctx, rdb, exists); err != nil {
		return false, fmt.Errorf("logout: redis: %w", err)
	}
	return exists.Val() > 0, nil
}

// rememberKey sets key for ttl.
func rememberKey(ctx context.Context, rdb redis.UniversalClient, c redisCalls, key string, ttl time.Duration) error {
	set := redis.NewStatusCmd(ctx, "set", key, "1", "px", max(ttl, time.Millisecond).Milliseconds())
	if err := c.process(ctx, rdb, set); err != nil {
		return fmt.Errorf("logout: redis: %w", err)
	}
	return nil
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
