// SPDX-License-Identifier: Apache-2.0

// Durable endings: waiting for replicas to confirm a write that ends sessions,
// shared by RedisStore and RevocationList.

package logout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// durability is how many replicas must confirm a write that ends sessions.
type durability struct {
	replicas int
	timeout  time.Duration
}

// write sends cmd and returns its error, or the error of the call, other
// than a nil reply; the caller reads cmd itself. With replicas set, it
// pipelines a WAIT after it, to the primary that owns key (on Cluster, the
// node of key's slot: WAIT has no key to route by), and fails unless enough
// replicas confirm within the timeout. Still one round trip.
func (d durability) write(ctx context.Context, c redisCalls, rdb redis.UniversalClient, key string, cmd redis.Cmder) error {
	if d.replicas <= 0 {
		if err := c.process(ctx, rdb, cmd); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return nil
	}
	if _, ok := rdb.(*redis.Ring); ok {
		return errors.New("WaitReplicas is not supported on a redis.Ring")
	}
	timeout := cmp.Or(d.timeout, 500*time.Millisecond)
	var wait *redis.Cmd
	_, err := within(ctx, c, func() ([]redis.Cmder, error) {
		pipelined := rdb.Pipelined
		if cc, ok := rdb.(*redis.ClusterClient); ok {
			node, err := cc.MasterForKey(ctx, key)
			if err != nil {
				return nil, err
			}
			pipelined = node.Pipelined
		}
		return pipelined(ctx, func(p redis.Pipeliner) error {
			p.Process(ctx, cmd)
			wait = p.Do(ctx, "wait", d.replicas, timeout.Milliseconds())
			return nil
		})
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	n, err := wait.Int64()
	switch {
	case err != nil:
		return err
	case int(n) < d.replicas:
		return fmt.Errorf("%d of %d replicas confirmed within %v: %w", n, d.replicas, timeout, ErrNotConfirmed)
	}
	return nil
}

// ErrNotConfirmed is wrapped by the errors of a store whose WaitReplicas
// replicas did not confirm an ending in time: the primary ended the session,
// but a failover before replication could bring it back, so the ending is
// reported as a failure, never as done.
var ErrNotConfirmed = errors.New("logout: the replicas did not confirm the ending")
