// SPDX-License-Identifier: Apache-2.0

// RevocationList: the Redis records that make a cookie store's endings
// server-side.

package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
// together). Any error reading them, on any node, fails the Load: a
// revocation that cannot be checked is never taken for "not revoked".
//
// Its calls return by their context's deadline on the two paths [RedisStore]
// describes: directly on a client whose options set ContextTimeoutEnabled
// (a ClusterClient once a call was answered in time), in a goroutine per
// call, at four allocations and several microseconds of CPU, on any other.
//
// Set the fields before the list is first used; it is then safe for
// concurrent use.
type RevocationList struct {
	rdb     redis.UniversalClient
	calls   redisCalls
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
	return &RevocationList{rdb: rdb, calls: newRedisCalls(rdb), cluster: sharded(rdb), KeyPrefix: "logout:rev:", Lifetime: 24 * time.Hour}
}

// allTime, as a revocation time, ends every session under a sid whenever it
// began (Unix milliseconds of the year 2286).
const allTime = 9_999_999_999_999

func (l *RevocationList) handleKey(handle []byte) string {
	return recordKey(l.KeyPrefix, "h", handle)
}

func (l *RevocationList) key(kind, issuer, value string) string {
	var buf [256]byte // on the stack, unless issuer and value are longer
	return recordKey(l.KeyPrefix, kind, append(append(append(buf[:0], issuer...), 0), value...))
}

// recordKey is prefix+kind+":"+hashKey(value) in one allocation: a request
// reads up to four records.
func recordKey(prefix, kind string, value []byte) string {
	sum := sha256.Sum256(value)
	var h [32]byte
	hex.Encode(h[:], sum[:16])
	var b strings.Builder
	b.Grow(len(prefix) + len(kind) + 1 + len(h))
	b.WriteString(prefix)
	b.WriteString(kind)
	b.WriteByte(':')
	b.Write(h[:])
	return b.String()
}

func (l *RevocationList) durability() durability {
	return durability{replicas: l.WaitReplicas, timeout: l.WaitTimeout}
}

// endHandle records the session as ended, unless a revocation of its sid,
// its user or its user's other devices ended it already; only the first
// caller gets true. On one node it is one script (EVALSHA); where the
// records live in different slots (Cluster, Ring), the record is set while
// they are read, side by side.
func (l *RevocationList) endHandle(ctx context.Context, handle []byte, s Session, ttl time.Duration) (bool, error) {
	key := l.handleKey(handle)
	ttl = max(ttl, 0) + time.Minute
	if l.cluster {
		return l.endHandleSharded(ctx, handle, s, ttl)
	}
	var keyArray [4]string // on the stack
	keys := l.recordKeys(keyArray[:0], handle, s)
	args := [...]any{ttl.Milliseconds(), unixMilli(s.IssuedAt), cookieHandle(handle)}
	d := l.durability()
	// By its SHA-1, and by its text once when Redis does not hold it yet;
	// by its text always in a WAIT pipeline, where a second try would wait
	// for the replicas a second time.
	var end *redis.Cmd
	err := redisNoScript
	if d.replicas <= 0 {
		end = evalShaCmd(ctx, endHandleSHA, keys, args[:]...)
		err = d.write(ctx, l.calls, l.rdb, key, end)
	}
	if errors.Is(err, redisNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		end = evalCmd(ctx, endHandleSrc, keys, args[:]...)
		err = d.write(ctx, l.calls, l.rdb, key, end)
	}
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

// endHandleSharded is endHandle where the records live in different slots:
// the handle's record is set in the pipeline that reads the others, one
// round trip; with WaitReplicas, whose WAIT goes to the handle's node, the
// records are read first, a round trip before.
func (l *RevocationList) endHandleSharded(ctx context.Context, handle []byte, s Session, ttl time.Duration) (bool, error) {
	key := l.handleKey(handle)
	set := redis.NewStatusCmd(ctx, "set", key, "1", "px", ttl.Milliseconds(), "nx")
	var revoked bool
	var err error
	if d := l.durability(); d.replicas > 0 {
		if revoked, err = l.revoked(ctx, handle, s); err != nil {
			return false, err
		}
		err = d.write(ctx, l.calls, l.rdb, key, set)
	} else {
		revoked, err = l.readWith(ctx, handle, s, set)
	}
	return settleEnd(func() (int, error) {
		switch err := set.Err(); {
		case errors.Is(err, redis.Nil):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return 1, nil
	}, err, revoked)
}

// redisNoScript stands for a script Redis was never asked to run by its
// SHA-1.
var redisNoScript = errors.New("NOSCRIPT not sent")

// revoke records that sessions under the sid or subject that began up to at
// are ended, keeping the later time if one is already recorded.
func (l *RevocationList) revoke(ctx context.Context, kind, issuer, value string, at time.Time) error {
	key := l.key(kind, issuer, value)
	cmd := evalCmd(ctx, keepLaterScript, []string{key}, unixMilli(at), l.Lifetime.Milliseconds())
	if err := l.durability().write(ctx, l.calls, l.rdb, key, cmd); err != nil {
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
	cmd := evalCmd(ctx, keepLaterScript, []string{key}, value, l.Lifetime.Milliseconds())
	if err := l.durability().write(ctx, l.calls, l.rdb, key, cmd); err != nil {
		return fmt.Errorf("logout: redis revoke others: %w", err)
	}
	return nil
}

// recordKeys appends to dst the records that may end the session: its
// handle's, its user's other devices', its user's, and its sid's when it
// has one.
func (l *RevocationList) recordKeys(dst []string, handle []byte, s Session) []string {
	dst = append(dst, l.handleKey(handle), l.key("others", s.Issuer, s.Subject), l.key("sub", s.Issuer, s.Subject))
	if s.SessionID != "" {
		dst = append(dst, l.key("sid", s.Issuer, s.SessionID))
	}
	return dst
}

// revoked reads the session's records in one round trip. Only a nil reply
// means "no record"; any other error fails closed.
func (l *RevocationList) revoked(ctx context.Context, handle []byte, s Session) (bool, error) {
	revoked, _, err := l.read(ctx, handle, s, false)
	return revoked, err
}

// records is revoked, and with it, in the same round trip, the hash of the
// session's current refresh token ("" before its first refresh).
func (l *RevocationList) records(ctx context.Context, handle []byte, s Session) (revoked bool, current string, err error) {
	return l.read(ctx, handle, s, true)
}

// readWith is revoked with also sent in the same pipeline, on Cluster.
func (l *RevocationList) readWith(ctx context.Context, handle []byte, s Session, also redis.Cmder) (bool, error) {
	revoked, _, err := l.readAlso(ctx, handle, s, false, also)
	return revoked, err
}

// read reads the session's records and, with refresh, after them the hash
// of its current refresh token.
func (l *RevocationList) read(ctx context.Context, handle []byte, s Session, refresh bool) (bool, string, error) {
	return l.readAlso(ctx, handle, s, refresh, nil)
}

// readAlso is read; on Cluster it sends also in the same pipeline, and
// leaves its reply in it.
func (l *RevocationList) readAlso(ctx context.Context, handle []byte, s Session, refresh bool, also redis.Cmder) (bool, string, error) {
	var keyArray, valArray [5]string // on the stack
	keys := l.recordKeys(keyArray[:0], handle, s)
	n := len(keys)
	if refresh {
		keys = append(keys, l.refreshKey(handle, "rt"))
	}
	vals := valArray[:len(keys)]
	if !l.cluster {
		args := make([]any, 1+len(keys))
		args[0] = "mget"
		for i, k := range keys {
			args[1+i] = k
		}
		mget := redis.NewSliceCmd(ctx, args...)
		if err := l.calls.process(ctx, l.rdb, mget); err != nil {
			return false, "", fmt.Errorf("logout: redis revocation check: %w", err)
		}
		for i, v := range mget.Val() {
			vals[i], _ = v.(string)
		}
	} else {
		// The keys live in different slots, so on Cluster they are read one
		// GET each, pipelined. The pipeline's own error is only the first
		// command's, and a nil reply there is normal: read every command's.
		cmds := make([]*redis.StringCmd, len(keys))
		keys := slices.Clone(keys) // the pipeline may outlive this call
		_, err := within(ctx, l.calls, func() ([]redis.Cmder, error) {
			return l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.Get(ctx, k)
				}
				if also != nil {
					p.Process(ctx, also)
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
	var current string
	if refresh {
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
		if v == "" {
			continue // no record: nothing to parse, and no error to allocate
		}
		if at, err := strconv.ParseInt(v, 10, 64); err == nil && issued <= at {
			return true, current, nil
		}
	}
	return false, current, nil
}

func (l *RevocationList) seen(ctx context.Context, key string) (bool, error) {
	return seenKey(ctx, l.rdb, l.calls, l.KeyPrefix+"once:"+hashKey(key))
}

func (l *RevocationList) remember(ctx context.Context, key string, ttl time.Duration) error {
	return rememberKey(ctx, l.rdb, l.calls, l.KeyPrefix+"once:"+hashKey(key), ttl)
}
