// SPDX-License-Identifier: Apache-2.0

// RedisStore's active sessions: listing a user's sessions, ending one by its
// handle, and ending all but one.

package logout

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ListSessions returns the user's live sessions, at most MaxListPage of them,
// in one round trip, and a cursor for the next page ("" after the last).
// Only the index is read: the sessions stay encrypted with keys only their
// cookies hold. Sessions come in the order of their handles; a page costs
// Redis work in proportion to the user's sessions, not the keyspace.
func (r *RedisStore) ListSessions(ctx context.Context, issuer, subject, cursor string) ([]SessionInfo, string, error) {
	base := r.KeyPrefix + "{" + hex.EncodeToString(userTag(issuer, subject)) + "}"
	if _, err := hex.DecodeString(cursor); err != nil || len(cursor) > 32 {
		return nil, "", errors.New("logout: ListSessions: malformed cursor")
	}
	res, err := within(ctx, r.calls, func() ([]any, error) {
		return r.rdb.Eval(ctx, listScript, []string{base + ":u"}, base+":s:", cursor, MaxListPage).Slice()
	})
	if err != nil {
		return nil, "", fmt.Errorf("logout: redis list sessions: %w", err)
	}
	if len(res) == 0 {
		return nil, "", errors.New("logout: redis list sessions: empty reply")
	}
	next, _ := res[0].(string)
	now := r.clock()
	var out []SessionInfo
	for i := 1; i+2 < len(res); i += 3 {
		field, _ := res[i].(string)
		entry, _ := res[i+1].(string)
		idleSec, _ := res[i+2].(int64)
		info := SessionInfo{Handle: field}
		exp, rest, _ := strings.Cut(entry, " ")
		_, rest, _ = strings.Cut(rest, " ")
		iat, device, _ := strings.Cut(rest, " ")
		if ms, err := strconv.ParseInt(exp, 10, 64); err == nil {
			info.ExpiresAt = fromUnixMilli(ms)
		}
		if ms, err := strconv.ParseInt(iat, 10, 64); err == nil {
			info.CreatedAt = fromUnixMilli(ms)
		}
		info.Device = device
		if idleSec >= 0 {
			info.LastSeen = now.Add(-time.Duration(idleSec) * time.Second).Truncate(time.Second)
		}
		if !info.ExpiresAt.IsZero() && !info.ExpiresAt.After(now) {
			continue
		}
		out = append(out, info)
	}
	return out, next, nil
}

// EndHandle ends the user's session that handle names (as ListSessions
// gave it), and reports whether there was one. A handle is looked up only
// among that user's sessions, so no handle reaches another user's.
func (r *RedisStore) EndHandle(ctx context.Context, issuer, subject, handle string) (bool, error) {
	if len(handle) != 32 {
		return false, nil
	}
	if _, err := hex.DecodeString(handle); err != nil {
		return false, nil
	}
	base := r.KeyPrefix + "{" + hex.EncodeToString(userTag(issuer, subject)) + "}"
	del := redis.NewIntCmd(ctx, "del", base+":s:"+handle)
	if err := r.durability().write(ctx, r.calls, r.rdb, base+":u", del); err != nil {
		return false, fmt.Errorf("logout: redis end session: %w", err)
	}
	return del.Val() == 1, nil
}

// endOthers ends every session of the token's user but the token's own, and
// returns their handles. The token stays valid.
func (r *RedisStore) endOthers(ctx context.Context, token string, before time.Time) ([]string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return nil, ErrNoSession
	}
	return r.endIndexed(ctx, ref.tag, "", unixMilli(minTime(before, r.clock())), ref.field)
}
