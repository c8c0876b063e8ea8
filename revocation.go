// RevocationList: the Redis records that make a cookie store's endings
// server-side.

package logout

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RevocationList remembers, in Redis, which sessions of a
// [RevocableCookieStore] have ended, so that a copy of an ended session's
// cookie opens on no instance. It holds no token: only hashes of session
// handles, of sids and of subjects, each with the time it was revoked.
//
// A logout records the session's handle until the session would have
// expired. A back-channel logout, a webhook or "sign out everywhere" records
// the sid or the subject with a time, and ends only sessions that began before
// it, so the user can sign in again at once. Those records are kept for
// Lifetime, and the store refuses sessions longer than that, so a record
// always outlives every session it can end.
//
// Every Load of a cookie session reads the records in one round trip (one
// MGET; on Redis Cluster or a Ring, one pipelined GET per key, sent
// together). Any
// error reading them, on any node, fails the Load: a revocation that cannot
// be checked is never taken for "not revoked".
//
// Set the fields before the list is first used; it is then safe for
// concurrent use.
type RevocationList struct {
	rdb     redis.UniversalClient
	cluster bool

	// KeyPrefix starts every key. NewRevocationList sets "logout:rev:".
	KeyPrefix string
	// Lifetime is how long a revoked sid or subject is remembered, and so
	// the longest session a RevocableCookieStore accepts.
	// NewRevocationList sets 24 hours.
	Lifetime time.Duration
	// WaitReplicas, when above zero, makes every record of an ended
	// session wait until that many replicas have it (Redis WAIT, sent in
	// the same round trip), so a failover cannot lose it. A record the
	// replicas did not confirm within WaitTimeout is reported as a store
	// failure.
	WaitReplicas int
	// WaitTimeout bounds that wait. Zero means 500 milliseconds.
	WaitTimeout time.Duration
}

// NewRevocationList returns a list kept in rdb. It does no I/O and never
// closes rdb.
func NewRevocationList(rdb redis.UniversalClient) *RevocationList {
	return &RevocationList{rdb: rdb, cluster: sharded(rdb), KeyPrefix: "logout:rev:", Lifetime: 24 * time.Hour}
}

// allTime, as a revocation time, ends every session under a sid whenever it
// began (Unix milliseconds of the year 2286).
const allTime = 9_999_999_999_999

func (l *RevocationList) handleKey(handle []byte) string {
	return l.KeyPrefix + "h:" + hashKey(string(handle))
}

func (l *RevocationList) key(kind, issuer, value string) string {
	return l.KeyPrefix + kind + ":" + hashKey(issuer+"\x00"+value)
}

func (l *RevocationList) durability() durability {
	return durability{replicas: l.WaitReplicas, timeout: l.WaitTimeout}
}

// endHandle records the session as ended, unless a revocation of its sid,
// its user or its user's other devices ended it already; only the first
// caller gets true. On one node it is one script; where the records live in
// different slots (Cluster, Ring), the record is set while they are read,
// side by side.
func (l *RevocationList) endHandle(ctx context.Context, handle []byte, s Session, ttl time.Duration) (bool, error) {
	key := l.handleKey(handle)
	ttl = max(ttl, 0) + time.Minute
	if l.cluster {
		return l.endHandleSharded(ctx, handle, s, ttl)
	}
	keys := l.recordKeys(handle, s)
	var end *redis.Cmd
	err := l.durability().write(ctx, l.rdb, key, func(c redis.Cmdable) {
		args := []any{ttl.Milliseconds(), unixMilli(s.IssuedAt), cookieHandle(handle)}
		if p, ok := c.(redis.Pipeliner); ok {
			end = endHandleScript.Eval(ctx, p, keys, args...) // a pipeline cannot fall back on NOSCRIPT
		} else {
			end = endHandleScript.Run(ctx, c.(redis.Scripter), keys, args...)
		}
	})
	// The reply is read only once the write returned: a write cut off by
	// its deadline may still be filling it in.
	return settleEnd(func() (int, error) { return end.Int() }, err, false)
}

// settleEnd reads the reply of an ending write: whether this call ended the
// session, and, when it did but the replicas did not confirm it, their
// error. An ending that found the session already over is not this call's
// to report, confirmed or not.
func settleEnd(reply func() (int, error), writeErr error, revoked bool) (bool, error) {
	if writeErr != nil && !errors.Is(writeErr, ErrNotConfirmed) {
		return false, fmt.Errorf("logout: redis revocation: %w", writeErr)
	}
	n, err := reply()
	if err != nil {
		return false, fmt.Errorf("logout: redis revocation: %w", err)
	}
	if n != 1 || revoked {
		return false, nil
	}
	if writeErr != nil {
		return true, fmt.Errorf("logout: redis revocation: %w", writeErr)
	}
	return true, nil
}

func (l *RevocationList) endHandleSharded(ctx context.Context, handle []byte, s Session, ttl time.Duration) (bool, error) {
	key := l.handleKey(handle)
	var revoked bool
	var checkErr error
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		revoked, checkErr = l.revoked(ctx, handle, s)
	}()
	var set *redis.StatusCmd
	err := l.durability().write(ctx, l.rdb, key, func(c redis.Cmdable) {
		set = c.SetArgs(ctx, key, "1", redis.SetArgs{Mode: "NX", TTL: ttl})
	})
	<-checked
	if checkErr != nil && (err == nil || errors.Is(err, ErrNotConfirmed)) {
		return false, checkErr
	}
	return settleEnd(func() (int, error) {
		switch _, err := set.Result(); {
		case errors.Is(err, redis.Nil):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return 1, nil
	}, err, revoked)
}

// revoke records that sessions under the sid or subject that began up to at
// are ended, keeping the later time if one is already recorded.
func (l *RevocationList) revoke(ctx context.Context, kind, issuer, value string, at time.Time) error {
	key := l.key(kind, issuer, value)
	var cmd *redis.Cmd
	err := l.durability().write(ctx, l.rdb, key, func(c redis.Cmdable) {
		cmd = c.Eval(ctx, keepLaterScript, []string{key}, unixMilli(at), l.Lifetime.Milliseconds())
	})
	if err == nil {
		err = cmd.Err()
	}
	if err != nil {
		return fmt.Errorf("logout: redis revoke: %w", err)
	}
	return nil
}

// revokeOthers records that the user's sessions that began up to at are
// ended, all but the one whose handle is keep: "sign out other devices". One
// record a user, keeping the later of two; a user-wide revocation is a record
// of its own, so neither absorbs the other.
func (l *RevocationList) revokeOthers(ctx context.Context, issuer, subject string, at time.Time, keep []byte) error {
	key := l.key("others", issuer, subject)
	value := fmt.Sprintf("%d %s", unixMilli(at), cookieHandle(keep))
	var cmd *redis.Cmd
	err := l.durability().write(ctx, l.rdb, key, func(c redis.Cmdable) {
		cmd = c.Eval(ctx, keepLaterScript, []string{key}, value, l.Lifetime.Milliseconds())
	})
	if err == nil {
		err = cmd.Err()
	}
	if err != nil {
		return fmt.Errorf("logout: redis revoke others: %w", err)
	}
	return nil
}

// recordKeys are the records that may end the session: its handle's, its
// user's other devices', its user's, and its sid's when it has one.
func (l *RevocationList) recordKeys(handle []byte, s Session) []string {
	keys := []string{l.handleKey(handle), l.key("others", s.Issuer, s.Subject), l.key("sub", s.Issuer, s.Subject)}
	if s.SessionID != "" {
		keys = append(keys, l.key("sid", s.Issuer, s.SessionID))
	}
	return keys
}

// revoked reads the session's records in one round trip. Only a nil reply
// means "no record"; any other error fails closed.
func (l *RevocationList) revoked(ctx context.Context, handle []byte, s Session) (bool, error) {
	revoked, _, err := l.read(ctx, handle, s, l.recordKeys(handle, s))
	return revoked, err
}

// records is revoked, and with it, in the same round trip, the hash of the
// session's current refresh token ("" before its first refresh).
func (l *RevocationList) records(ctx context.Context, handle []byte, s Session) (revoked bool, current string, err error) {
	return l.read(ctx, handle, s, append(l.recordKeys(handle, s), l.refreshKey(handle, "rt")))
}

// read reads the records keys names (recordKeys, and after them the
// current refresh's hash when asked for) in one round trip.
func (l *RevocationList) read(ctx context.Context, handle []byte, s Session, keys []string) (bool, string, error) {
	vals := make([]string, len(keys))
	if !l.cluster {
		got, err := within(ctx, func() ([]any, error) { return l.rdb.MGet(ctx, keys...).Result() })
		if err != nil {
			return false, "", fmt.Errorf("logout: redis revocation check: %w", err)
		}
		for i, v := range got {
			vals[i], _ = v.(string)
		}
	} else {
		// The keys live in different slots, so on Cluster they are read one
		// GET each, pipelined. The pipeline's own error is only the first
		// command's, and a nil reply there is normal: read every command's.
		cmds := make([]*redis.StringCmd, len(keys))
		_, err := within(ctx, func() ([]redis.Cmder, error) {
			return l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.Get(ctx, k)
				}
				return nil
			})
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return false, "", fmt.Errorf("logout: redis revocation check: %w", err)
		}
		for i, c := range cmds {
			v, err := c.Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, "", fmt.Errorf("logout: redis revocation check: %w", err)
			}
			vals[i] = v
		}
	}
	n := 3 // recordKeys: the handle's, the other devices', the user's, and the sid's
	if s.SessionID != "" {
		n = 4
	}
	var current string
	if len(vals) > n {
		current = vals[n]
	}
	if vals[0] != "" {
		return true, current, nil
	}
	issued := unixMilli(s.IssuedAt)
	if at, keep, ok := strings.Cut(vals[1], " "); ok {
		if ms, err := strconv.ParseInt(at, 10, 64); err == nil && issued <= ms && keep != cookieHandle(handle) {
			return true, current, nil
		}
	}
	for _, v := range vals[2:n] {
		if at, err := strconv.ParseInt(v, 10, 64); err == nil && issued <= at {
			return true, current, nil
		}
	}
	return false, current, nil
}

func (l *RevocationList) seen(ctx context.Context, key string) (bool, error) {
	return seenKey(ctx, l.rdb, l.KeyPrefix+"once:"+hashKey(key))
}

func (l *RevocationList) remember(ctx context.Context, key string, ttl time.Duration) error {
	return rememberKey(ctx, l.rdb, l.KeyPrefix+"once:"+hashKey(key), ttl)
}
