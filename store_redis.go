package logout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps sessions in Redis, shared by every instance of the app, so
// a logout on one instance ends the session on all of them: a copy of the
// cookie taken before logout signs nobody in afterwards.
//
// The cookie holds a random 128-bit session ID, a random 256-bit key and a
// short hash of the user. Redis holds the session encrypted with that key,
// under a name derived from the ID and key by SHA-256. A Redis dump or a MONITOR log
// therefore shows no token and no usable cookie value.
//
// Costs, in Redis commands: Save 1 (2 on Redis Cluster, sent together), Load
// 1, Update 1, End 1. Logging out is a single GETDEL, which reads the session
// and deletes it atomically, so the ID token is in hand before anything is
// gone and two logouts never both see the session.
//
// Each user's sessions are indexed by the user's issuer and subject, and by
// the provider's session ID (sid), so [RedisStore.EndSubject] and
// [RedisStore.EndSID] cost one command whatever the size of the keyspace. All
// keys of one user share a Redis Cluster hash tag.
//
// It needs Redis 6.2 or later (GETDEL) and works with a single node, Sentinel
// and Cluster alike. Create the client with ContextTimeoutEnabled set, so
// that the contexts the store is given bound its network I/O; without it
// go-redis waits for its own ReadTimeout. (The Handler bounds its logout call
// by StoreTimeout either way.)
type RedisStore struct {
	rdb     redis.UniversalClient
	cluster bool

	// KeyPrefix starts every key the store writes. NewRedisStore sets it
	// to "logout:"; change it before first use to share a Redis between
	// apps.
	KeyPrefix string
	// Now, when set before first use, replaces time.Now.
	Now func() time.Time
}

// NewRedisStore returns a store on rdb. It does no I/O and never closes rdb.
func NewRedisStore(rdb redis.UniversalClient) *RedisStore {
	_, cluster := rdb.(*redis.ClusterClient)
	return &RedisStore{rdb: rdb, cluster: cluster, KeyPrefix: "logout:"}
}

// A token is base64url(id | key | user tag).
const (
	idLen      = 16
	keyLen     = 32
	tagLen     = 8
	rawToken   = idLen + keyLen + tagLen
	redisToken = (rawToken*8 + 5) / 6
)

// redisRef is what a token names: the session's keys and its encryption key.
type redisRef struct {
	session string // PREFIX{usertag}:s:HASH(id)
	index   string // PREFIX{usertag}:u, a hash of field HASH(id) -> "expiryMs sid"
	field   string
	key     []byte
}

// Save stores a new session under a fresh random ID.
func (r *RedisStore) Save(ctx context.Context, s Session) (string, error) {
	ttl := s.Expiry.Sub(r.clock())
	if ttl < time.Millisecond {
		return "", fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	raw := make([]byte, rawToken)
	rand.Read(raw[:idLen+keyLen])
	copy(raw[idLen+keyLen:], userTag(s.Issuer, s.Subject))
	token := base64.RawURLEncoding.EncodeToString(raw)
	ref := r.ref(raw)

	blob, err := seal(ref, s)
	if err != nil {
		return "", err
	}
	keys := []string{ref.session, ref.index}
	args := []any{blob, ttl.Milliseconds(), ref.field, r.indexEntry(s), unixMilli(r.clock()), strings.TrimSuffix(ref.session, ref.field)}
	if s.SessionID == "" {
		_, err = within(ctx, func() (any, error) { return saveScript.Run(ctx, r.rdb, keys, args...).Result() })
	} else if ptr, tag := r.sidPointer(s.Issuer, s.SessionID), hex.EncodeToString(raw[idLen+keyLen:]); !r.cluster {
		_, err = within(ctx, func() (any, error) {
			return saveScript.Run(ctx, r.rdb, append(keys, ptr), append(args, tag)...).Result()
		})
	} else {
		// The pointer from sid to user lives in the sid's own slot, so on
		// Cluster it is a second command, sent in the same pipeline.
		// EVAL rather than EVALSHA: a pipeline cannot fall back on NOSCRIPT.
		_, err = within(ctx, func() ([]redis.Cmder, error) {
			return r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				saveScript.Eval(ctx, p, keys, args...)
				pointerScript.Eval(ctx, p, []string{ptr}, tag, ttl.Milliseconds())
				return nil
			})
		})
	}
	if err != nil {
		return "", fmt.Errorf("logout: redis save: %w", err)
	}
	return token, nil
}

// Load reads and decrypts the session.
func (r *RedisStore) Load(ctx context.Context, token string) (Session, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, ErrNoSession
	}
	blob, err := within(ctx, func() ([]byte, error) { return r.rdb.Get(ctx, ref.session).Bytes() })
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("logout: redis load: %w", err)
	}
	return r.open(ref, blob)
}

// Update rewrites the session only while it still exists, in one script, so a
// refresh racing a logout can never bring the session back. The token stays
// the same. The issuer, subject and sid cannot change: start a new session.
func (r *RedisStore) Update(ctx context.Context, token string, s Session) (string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return "", ErrNoSession
	}
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	if !bytesEqual(raw[idLen+keyLen:], userTag(s.Issuer, s.Subject)) {
		return "", errors.New("logout: Update cannot change a session's issuer or subject; start a new session")
	}
	ttl := s.Expiry.Sub(r.clock())
	if ttl < time.Millisecond {
		return "", fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	blob, err := seal(ref, s)
	if err != nil {
		return "", err
	}
	n, err := within(ctx, func() (int, error) {
		return updateScript.Run(ctx, r.rdb, []string{ref.session, ref.index}, blob, ttl.Milliseconds(), ref.field, r.indexEntry(s)).Int()
	})
	if err != nil {
		return "", fmt.Errorf("logout: redis update: %w", err)
	}
	if n == 0 {
		return "", ErrNoSession
	}
	return token, nil
}

// End deletes the session and returns what it held, in one command: GETDEL,
// atomic in Redis itself, so two logouts never both get the session. The
// user index entry is left to be pruned by the next sign-in or revocation of
// that user, which keeps logout free of Lua.
func (r *RedisStore) End(ctx context.Context, token string) (Session, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, ErrNoSession
	}
	blob, err := within(ctx, func() ([]byte, error) { return r.rdb.GetDel(ctx, ref.session).Bytes() })
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("logout: redis end: %w", err)
	}
	// The session is gone whatever the blob holds; a blob that does not open
	// yields nothing to the caller.
	return r.open(ref, blob)
}

// EndSubject ends every session of the user, on every instance, in one
// command whose cost grows with that user's sessions only. It returns how
// many sessions it ended.
func (r *RedisStore) EndSubject(ctx context.Context, issuer, subject string) (int, error) {
	return r.endIndexed(ctx, hex.EncodeToString(userTag(issuer, subject)), "")
}

// EndSID ends every session opened under the provider session sid. With the
// subject known it is one command; with only the sid, as a back-channel
// logout token may give, it first reads which user the sid belongs to.
func (r *RedisStore) EndSID(ctx context.Context, issuer, sid, subject string) (int, error) {
	if sid == "" {
		return 0, errors.New("logout: EndSID needs a sid")
	}
	if subject != "" {
		return r.endIndexed(ctx, hex.EncodeToString(userTag(issuer, subject)), sidTag(issuer, sid))
	}
	tag, err := within(ctx, func() (string, error) { return r.rdb.Get(ctx, r.sidPointer(issuer, sid)).Result() })
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("logout: redis end sid: %w", err)
	}
	if _, err := hex.DecodeString(tag); err != nil || len(tag) != 2*tagLen {
		return 0, fmt.Errorf("logout: redis end sid: malformed pointer")
	}
	return r.endIndexed(ctx, tag, sidTag(issuer, sid))
}

func (r *RedisStore) endIndexed(ctx context.Context, tag, sid string) (int, error) {
	base := r.KeyPrefix + "{" + tag + "}"
	n, err := within(ctx, func() (int, error) {
		return endIndexedScript.Run(ctx, r.rdb, []string{base + ":u"}, base+":s:", sid).Int()
	})
	if err != nil {
		return 0, fmt.Errorf("logout: redis end sessions: %w", err)
	}
	return n, nil
}

// parse checks a token's shape and derives the keys it names. Nothing in a
// token is trusted further: the session key is hashed from the ID, and the
// blob must open with the token's key.
func (r *RedisStore) parse(token string) (redisRef, bool) {
	if len(token) != redisToken {
		return redisRef{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != rawToken {
		return redisRef{}, false
	}
	return r.ref(raw), true
}

func (r *RedisStore) ref(raw []byte) redisRef {
	// The key name hashes the ID and the key together, so a token with any
	// bit changed names a key that does not exist: tampering can neither
	// read nor delete a session.
	idHash := sha256.Sum256(raw[:idLen+keyLen])
	field := hex.EncodeToString(idHash[:16])
	base := r.KeyPrefix + "{" + hex.EncodeToString(raw[idLen+keyLen:]) + "}"
	return redisRef{
		session: base + ":s:" + field,
		index:   base + ":u",
		field:   field,
		key:     raw[idLen : idLen+keyLen],
	}
}

func (r *RedisStore) sidPointer(issuer, sid string) string {
	return r.KeyPrefix + "{" + sidTag(issuer, sid) + "}:sid"
}

// sidTag names a provider session in keys and index entries without writing
// the sid itself into Redis.
func sidTag(issuer, sid string) string {
	sum := sha256.Sum256([]byte("logout sid\x00" + issuer + "\x00" + sid))
	return hex.EncodeToString(sum[:tagLen])
}

func (r *RedisStore) open(ref redisRef, blob []byte) (Session, error) {
	aead, err := newAEAD(ref.key)
	if err != nil {
		return Session{}, err
	}
	plain, err := aead.Open(nil, nil, blob, []byte(ref.session))
	if err != nil {
		return Session{}, ErrNoSession
	}
	s, err := decodeSession(plain)
	if err != nil || !s.Expiry.After(r.clock()) {
		return Session{}, ErrNoSession
	}
	return s, nil
}

func (r *RedisStore) clock() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func seal(ref redisRef, s Session) ([]byte, error) {
	aead, err := newAEAD(ref.key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, encodeSession(s), []byte(ref.session)), nil
}

// userTag is the hash tag shared by all keys of one user. It is derived from
// the issuer and subject, which are not secret, so EndSubject can find it.
func userTag(issuer, subject string) []byte {
	sum := sha256.Sum256([]byte("logout user\x00" + issuer + "\x00" + subject))
	return sum[:tagLen]
}

// indexEntry is the user index's value for a session: "expiryMs sidtag".
func (r *RedisStore) indexEntry(s Session) string {
	e := strconv.FormatInt(unixMilli(s.Expiry), 10)
	if s.SessionID != "" {
		e += " " + sidTag(s.Issuer, s.SessionID)
	}
	return e
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// The index entry of each session is "expiryMs sidtag". Each save looks at
// up to 32 random entries and prunes those whose sessions are gone (ended by
// a logout, or expired), so cleanup costs the same however many sessions a
// user piles up, and dead entries cannot accumulate. The index lives as long
// as its longest session. The session keys share the index's hash tag:
// ARGV[6] is their common prefix.
const pruneIndex = `
local now = tonumber(ARGV[5])
local sample = redis.call('HRANDFIELD', KEYS[2], 32, 'WITHVALUES')
for i = 1, #sample, 2 do
  local exp = tonumber(string.match(sample[i+1], '^(%d+)'))
  if exp <= now or redis.call('EXISTS', ARGV[6] .. sample[i]) == 0 then
    redis.call('HDEL', KEYS[2], sample[i])
  end
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
`

// setPointer keeps the sid -> user pointer alive as long as the longest
// session under that sid.
const setPointer = `
if redis.call('PTTL', %[1]s) < tonumber(%[3]s) then
  redis.call('SET', %[1]s, %[2]s, 'PX', %[3]s)
end
`

var (
	saveScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
` + pruneIndex + `
if KEYS[3] then
` + fmt.Sprintf(setPointer, "KEYS[3]", "ARGV[7]", "ARGV[2]") + `
end
return 1
`)

	pointerScript = redis.NewScript(fmt.Sprintf(setPointer, "KEYS[1]", "ARGV[1]", "ARGV[2]") + "return 1")

	updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
local ttl = redis.call('PTTL', KEYS[2])
if ttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
`)

	// endIndexedScript deletes the sessions the user index lists (all of
	// them, or those under the sid in ARGV[2]). The session keys share the
	// index's hash tag, so on Cluster they live on the same node.
	endIndexedScript = redis.NewScript(`
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  local sid = string.match(all[i+1], '^%d+ (%x+)$') or ''
  if ARGV[2] == '' or sid == ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. all[i])
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return n
`)
)

// rememberOnce records key until ttl passes and reports whether it was new.
// The back-channel receiver uses it to refuse a replayed logout token on
// every instance.
func (r *RedisStore) rememberOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return setOnce(ctx, r.rdb, r.KeyPrefix+"once:"+hashKey(key), ttl)
}

func (r *RedisStore) forget(ctx context.Context, key string) error {
	_, err := within(ctx, func() (int64, error) { return r.rdb.Del(ctx, r.KeyPrefix+"once:"+hashKey(key)).Result() })
	return err
}

// RevocationList remembers, in Redis, which sessions of a [CookieStore] have
// ended, so that a copy of an ended session's cookie opens on no instance. It
// holds no token: only hashes of session handles, of sids and of subjects,
// each with the time it was revoked.
//
// A logout records the session's handle until the session would have
// expired. A back-channel logout or [CookieStore.EndSubject] records the sid
// or subject with the time, and ends only sessions issued before it, so the
// user can sign in again at once. Those records are kept for Lifetime, which
// must be at least the longest session the app issues.
//
// Every Load of a cookie session reads the records in one round trip (one
// MGET; on Redis Cluster, one pipelined GET per key, sent together).
type RevocationList struct {
	rdb     redis.UniversalClient
	cluster bool

	// KeyPrefix starts every key. NewRevocationList sets "logout:rev:".
	KeyPrefix string
	// Lifetime is how long a revoked sid or subject is remembered.
	// NewRevocationList sets 24 hours.
	Lifetime time.Duration
}

// NewRevocationList returns a list kept in rdb. It does no I/O and never
// closes rdb.
func NewRevocationList(rdb redis.UniversalClient) *RevocationList {
	_, cluster := rdb.(*redis.ClusterClient)
	return &RevocationList{rdb: rdb, cluster: cluster, KeyPrefix: "logout:rev:", Lifetime: 24 * time.Hour}
}

func (l *RevocationList) handleKey(handle []byte) string {
	return l.KeyPrefix + "h:" + hashKey(string(handle))
}

func (l *RevocationList) key(kind, issuer, value string) string {
	return l.KeyPrefix + kind + ":" + hashKey(issuer+"\x00"+value)
}

// endHandle records the session as ended; only the first caller gets true.
func (l *RevocationList) endHandle(ctx context.Context, handle []byte, ttl time.Duration) (bool, error) {
	return setOnce(ctx, l.rdb, l.handleKey(handle), ttl+time.Minute)
}

// revoke records that sessions under the sid or subject issued up to at are
// ended, keeping the later time if one is already recorded.
func (l *RevocationList) revoke(ctx context.Context, kind, issuer, value string, at time.Time) error {
	_, err := within(ctx, func() (any, error) {
		return keepLaterScript.Run(ctx, l.rdb, []string{l.key(kind, issuer, value)}, unixMilli(at), l.Lifetime.Milliseconds()).Result()
	})
	if err != nil {
		return fmt.Errorf("logout: redis revoke: %w", err)
	}
	return nil
}

// revoked reads the session's records in one round trip.
func (l *RevocationList) revoked(ctx context.Context, handle []byte, s Session) (bool, error) {
	keys := []string{l.handleKey(handle), l.key("sub", s.Issuer, s.Subject)}
	if s.SessionID != "" {
		keys = append(keys, l.key("sid", s.Issuer, s.SessionID))
	}
	vals := make([]string, len(keys))
	if !l.cluster {
		got, err := within(ctx, func() ([]any, error) { return l.rdb.MGet(ctx, keys...).Result() })
		if err != nil {
			return false, fmt.Errorf("logout: redis revocation check: %w", err)
		}
		for i, v := range got {
			vals[i], _ = v.(string)
		}
	} else {
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
			return false, fmt.Errorf("logout: redis revocation check: %w", err)
		}
		for i, c := range cmds {
			vals[i], _ = c.Result()
		}
	}
	if vals[0] != "" {
		return true, nil
	}
	issued := unixMilli(s.IssuedAt)
	for _, v := range vals[1:] {
		if at, err := strconv.ParseInt(v, 10, 64); err == nil && issued <= at {
			return true, nil
		}
	}
	return false, nil
}

func (l *RevocationList) rememberOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return setOnce(ctx, l.rdb, l.KeyPrefix+"once:"+hashKey(key), ttl)
}

func (l *RevocationList) forget(ctx context.Context, key string) error {
	_, err := within(ctx, func() (int64, error) { return l.rdb.Del(ctx, l.KeyPrefix+"once:"+hashKey(key)).Result() })
	return err
}

// setOnce is SET key NX PX ttl: true when the key was not there.
func setOnce(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) (bool, error) {
	_, err := within(ctx, func() (string, error) {
		return rdb.SetArgs(ctx, key, "1", redis.SetArgs{Mode: "NX", TTL: max(ttl, time.Millisecond)}).Result()
	})
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("logout: redis: %w", err)
	}
	return true, nil
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

var keepLaterScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`)

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
