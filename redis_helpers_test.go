// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/endsession/logout"
	"github.com/endsession/logout/internal/testenv"
)

var (
	realRedis         = testenv.RealRedis
	startRedisServer  = testenv.StartRedisServer
	redisCluster      = testenv.RedisCluster
	redisClusterNodes = testenv.RedisClusterNodes
	newCommandCounter = testenv.NewCommandCounter
	total             = testenv.Total
	keyPrefix         = testenv.KeyPrefix
)

// newMini starts an in-process Redis (miniredis) for the test.
func newMini(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return m, rdb
}

// newMiniStore is a RedisStore on a fresh miniredis.
func newMiniStore(t testing.TB) *logout.RedisStore {
	t.Helper()
	_, rdb := newMini(t)
	return logout.NewRedisStore(rdb)
}

// realRedisStore is a RedisStore on the real Redis with a key prefix of its
// own, so tests sharing one server never see each other's keys.
func realRedisStore(t testing.TB) (*logout.RedisStore, *redis.Client) {
	t.Helper()
	rdb := realRedis(t)
	s := logout.NewRedisStore(rdb)
	s.KeyPrefix = keyPrefix(t, rdb)
	return s, rdb
}
