// Redis calls bounded by their context, and the small keyed records both
// Redis-backed types keep.

package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// within returns f's result, or ctx's error as soon as ctx is done, whichever
// comes first; f then finishes in the background. The Redis-backed stores
// wrap each network call in it: go-redis honours context deadlines only when
// the client was created with ContextTimeoutEnabled, and a hung Redis must
// never hold a logout past the Handler's StoreTimeout.
func within[T any](ctx context.Context, f func() (T, error)) (T, error) {
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
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// seenKey reports whether key exists.
func seenKey(ctx context.Context, rdb redis.UniversalClient, key string) (bool, error) {
	n, err := within(ctx, func() (int64, error) { return rdb.Exists(ctx, key).Result() })
	if err != nil {
		return false, fmt.Errorf("logout: redis: %w", err)
	}
	return n > 0, nil
}

// rememberKey sets key for ttl.
func rememberKey(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) error {
	_, err := within(ctx, func() (string, error) {
		return rdb.Set(ctx, key, "1", max(ttl, time.Millisecond)).Result()
	})
	if err != nil {
		return fmt.Errorf("logout: redis: %w", err)
	}
	return nil
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}
