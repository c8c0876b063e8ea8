// SPDX-License-Identifier: Apache-2.0

// RedisStore: sessions kept encrypted in Redis, shared by every instance.

package logout

import (
	"cmp"
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
	"unicode/utf8"
	"unsafe"

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
// Every call is one round trip. Save is one command (two on Redis Cluster,
// sent together), Load one, Update one (two on Cluster), End one: logging out
// is a single GETDEL, which reads the session and deletes it atomically, so
// the ID token is in hand before anything is gone and two logouts never both
// see the session. With WaitReplicas set, each ending also sends a WAIT in the
// same round trip.
//
// Each user's sessions are indexed by the user's issuer and subject, and by
// the provider's session ID (sid), so [RedisStore.EndSubject] costs one
// command and [RedisStore.EndSID] two, whatever the size of the keyspace. All
// keys of one user share a Redis Cluster hash tag.
//
// It needs Redis 6.2 or later (GETDEL) and works with a single node, Sentinel
// and Cluster alike. Create the client with ContextTimeoutEnabled set.
//
// Every call returns by its context's deadline (the Handler's StoreTimeout),
// whatever the client, in one of two ways chosen once, in NewRedisStore,
// from the client's type and options:
//
//   - Directly, on the caller's goroutine, for a *redis.Client (Sentinel's
//     failover client is one), a *redis.Ring or a *redis.ClusterClient whose
//     options set ContextTimeoutEnabled: go-redis then stops the call at the
//     deadline itself. This path adds nothing to go-redis's own cost.
//   - In a goroutine of its own per call, which the store stops waiting for
//     at the deadline while the call finishes in the background, for any
//     other client: one without ContextTimeoutEnabled, one that turns socket
//     deadlines off (a ReadTimeout or WriteTimeout of -2), a type of the
//     app's own that wraps a client. That costs four allocations per call
//     and, where the call wakes a second thread, several microseconds of
//     CPU: 14 to 18 µs per request in the bench's run (docs/bench.md).
//
// A ClusterClient with ContextTimeoutEnabled starts on the second path and
// takes the first once one of its calls has been answered in time: go-redis
// loads the cluster's command table on its first command under a 5-second
// bound of its own, which no context shortens.
//
// Redis replicates asynchronously: a session ended on a primary that dies
// before its replicas hear of it comes back when a replica is promoted. Set
// WaitReplicas to make every ending wait for that many replicas, and to report
// an ending they did not confirm as a failure, never as done.
//
// Set the fields before the store is first used; it is then safe for
// concurrent use.
type RedisStore struct {
	rdb     redis.UniversalClient
	calls   redisCalls
	cluster bool
	idle    time.Duration    // the Handler's idle timeout, once bound
	idleMs  any              // idle in milliseconds, boxed once for GETEX
	format  byte             // the format to write; 0 means the latest
	now     func() time.Time // nil means time.Now

	// KeyPrefix starts every key the store writes. NewRedisStore sets it
	// to "logout:"; change it to share a Redis between apps.
	KeyPrefix string
	// WaitReplicas, when above zero, makes End, EndSID and EndSubject wait
	// until that many replicas have the change (Redis WAIT, pipelined with
	// the write: still one round trip), and fail with [ErrNotConfirmed] when
	// they do not confirm it within WaitTimeout. It is not supported on a
	// redis.Ring, whose shards have no replicas of their own to wait for.
	WaitReplicas int
	// WaitTimeout bounds that wait. Zero means 500 milliseconds.
	WaitTimeout time.Duration
}

// NewRedisStore returns a store on rdb. It does no I/O and never closes rdb.
func NewRedisStore(rdb redis.UniversalClient) *RedisStore {
	return &RedisStore{rdb: rdb, calls: newRedisCalls(rdb), cluster: sharded(rdb), KeyPrefix: "logout:"}
}

// sharded reports whether keys of different hash tags may live on different
// servers (Cluster, Ring): a command or script may then use only keys of one
// tag, and the stores send one command a tag, pipelined.
func sharded(rdb redis.UniversalClient) bool {
	switch rdb.(type) {
	case *redis.ClusterClient, *redis.Ring:
		return true
	}
	return false
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
// The strings share one allocation.
type redisRef struct {
	session string // PREFIX{usertag}:s:HASH(id)
	base    int    // the length of PREFIX{usertag}
	tag     string // the user tag, hex
	field   string // HASH(id), hex
	key     [keyLen]byte
}

// index is the user's index: a hash from each session's field to its entry.
func (ref redisRef) index() string { return ref.session[:ref.base] + ":u" }

// Save stores a new session under a fresh random ID.
func (r *RedisStore) Save(ctx context.Context, s Session) (string, error) {
	ttl, life, err := r.ttls(s)
	if err != nil {
		return "", err
	}
	raw := make([]byte, rawToken)
	rand.Read(raw[:idLen+keyLen])
	copy(raw[idLen+keyLen:], userTag(s.Issuer, s.Subject))
	token := base64.RawURLEncoding.EncodeToString(raw)
	ref := r.ref(raw)

	blob, err := r.seal(ref, s)
	if err != nil {
		return "", err
	}
	keys := []string{ref.session, ref.index()}
	args := []any{blob, ttl.Milliseconds(), ref.field, indexEntry(s), unixMilli(r.clock()), strings.TrimSuffix(ref.session, ref.field), life.Milliseconds()}
	if s.SessionID == "" {
		_, err = within(ctx, r.calls, func() (any, error) { return saveScript.Run(ctx, r.rdb, keys, args...).Result() })
	} else if ptr := r.sidPointer(s.Issuer, s.SessionID); !r.cluster {
		_, err = within(ctx, r.calls, func() (any, error) {
			return saveScript.Run(ctx, r.rdb, append(keys, ptr), append(args, ref.tag)...).Result()
		})
	} else {
		// The pointer from sid to user lives in the sid's own slot, so on
		// Cluster it is a second command, sent in the same pipeline.
		// EVAL rather than EVALSHA: a pipeline cannot fall back on NOSCRIPT.
		_, err = within(ctx, r.calls, func() ([]redis.Cmder, error) {
			return r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				saveScript.Eval(ctx, p, keys, args...)
				p.Eval(ctx, pointerScript, []string{ptr}, ref.tag, life.Milliseconds())
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
	get := redis.NewStringCmd(ctx, "get", ref.session)
	err := r.calls.process(ctx, r.rdb, get)
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("logout: redis load: %w", err)
	}
	s, err := r.openReply(ref, get)
	if err != nil {
		return Session{}, r.dropLapsed(ctx, ref, err)
	}
	return s, nil
}

// identify returns the token's session, or its lapsed error when it is
// past its expiry, without deleting anything: "sign out everywhere" learns
// from it whose sessions to end, and the logout's own ending then reports
// the lapse.
func (r *RedisStore) identify(ctx context.Context, token string) (Session, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, ErrNoSession
	}
	get := redis.NewStringCmd(ctx, "get", ref.session)
	if err := r.calls.process(ctx, r.rdb, get); err != nil && !errors.Is(err, redis.Nil) {
		return Session{}, fmt.Errorf("logout: redis load: %w", err)
	}
	return r.openReply(ref, get)
}

// Renew loads the session and pushes its idle expiry, in one command:
// GETEX, which touches nothing when the session is gone, so a renewal racing
// a logout can never bring it back. The token stays the same. The record may
// outlive Expiry by up to idle, but never opens after it: the first request
// that finds it expired deletes it (a second command), and only that one is
// told the session lapsed.
func (r *RedisStore) Renew(ctx context.Context, token string, idle time.Duration) (Session, string, error) {
	if idle <= 0 {
		s, err := r.Load(ctx, token)
		return s, token, err
	}
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, "", ErrNoSession
	}
	var px any = r.idleMs
	if idle != r.idle || px == nil {
		px = idle.Milliseconds()
	}
	getex := redis.NewStringCmd(ctx, "getex", ref.session, "px", px)
	err := r.calls.process(ctx, r.rdb, getex)
	if errors.Is(err, redis.Nil) {
		return Session{}, "", ErrNoSession
	}
	if err != nil {
		return Session{}, "", fmt.Errorf("logout: redis renew: %w", err)
	}
	s, err := r.openReply(ref, getex)
	if err != nil {
		return Session{}, "", r.dropLapsed(ctx, ref, err)
	}
	s.LastSeen = r.clock().Truncate(time.Millisecond)
	return s, token, nil
}

// dropLapsed deletes the record of a session that open found past its
// absolute expiry: renewals keep a record alive up to an idle period
// longer. Only the request whose DEL removed it gets the lapsed error, so
// the ending is reported once; the others, and any when the DEL fails, get
// plain ErrNoSession.
func (r *RedisStore) dropLapsed(ctx context.Context, ref redisRef, err error) error {
	var lapsed *lapsedError
	if !errors.As(err, &lapsed) {
		return err
	}
	del := redis.NewIntCmd(ctx, "del", ref.session)
	if r.calls.process(ctx, r.rdb, del) != nil || del.Val() == 0 {
		return ErrNoSession
	}
	return err
}

// Update rewrites the session only while it still exists, in one script, so a
// refresh racing a logout can never bring the session back. The token stays
// the same, and the sid pointer is kept alive as long as the session (on
// Cluster by a second command, which refreshes the pointer even when the
// session turns out to be gone: a pointer without sessions ends nothing).
// The issuer, subject, sid and IssuedAt cannot change: start a new session.
func (r *RedisStore) Update(ctx context.Context, token string, s Session) (string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return "", ErrNoSession
	}
	return r.update(ctx, ref, token, "", s)
}

// update runs updateScript, checking the stored blob's SHA-1 against version
// unless it is empty.
func (r *RedisStore) update(ctx context.Context, ref redisRef, token, version string, s Session) (string, error) {
	if ref.tag != hex.EncodeToString(userTag(s.Issuer, s.Subject)) {
		return "", errChangedSession
	}
	ttl, life, err := r.ttls(s)
	if err != nil {
		return "", err
	}
	blob, err := r.seal(ref, s)
	if err != nil {
		return "", err
	}
	keys := []string{ref.session, ref.index()}
	args := []any{blob, ttl.Milliseconds(), ref.field, indexEntry(s), life.Milliseconds(), version}
	var n int
	if s.SessionID == "" {
		n, err = within(ctx, r.calls, func() (int, error) { return updateScript.Run(ctx, r.rdb, keys, args...).Int() })
	} else if ptr := r.sidPointer(s.Issuer, s.SessionID); !r.cluster {
		n, err = within(ctx, r.calls, func() (int, error) {
			return updateScript.Run(ctx, r.rdb, append(keys, ptr), append(args, ref.tag)...).Int()
		})
	} else {
		var update *redis.Cmd
		_, err = within(ctx, r.calls, func() ([]redis.Cmder, error) {
			return r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				update = updateScript.Eval(ctx, p, keys, args...)
				p.Eval(ctx, pointerScript, []string{ptr}, ref.tag, life.Milliseconds())
				return nil
			})
		})
		if err == nil {
			n, err = update.Int()
		}
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("logout: redis update: %w", err)
	case n == 0:
		return "", ErrNoSession
	case n == -2:
		return "", errStaleVersion
	case n < 0:
		return "", errChangedSession
	}
	return token, nil
}

var errChangedSession = errors.New("logout: Update cannot change a session's issuer, subject, sid or IssuedAt; start a new session")

// End deletes the session and returns what it held, in one command: GETDEL,
// atomic in Redis itself, so two logouts never both get the session. The
// user index entry is left to be pruned by the next sign-in or revocation of
// that user, which keeps logout free of Lua.
//
// With WaitReplicas set and the replicas not confirming, the session is
// ended on the primary but a failover could bring it back: End then returns
// what the session held together with an error wrapping
// [ErrNotConfirmed], so the caller can still send the ID token to the
// provider while it reports the logout as not done.
func (r *RedisStore) End(ctx context.Context, token string) (Session, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, ErrNoSession
	}
	get := redis.NewStringCmd(ctx, "getdel", ref.session)
	err := r.durability().write(ctx, r.calls, r.rdb, ref.session, get)
	if errors.Is(err, ErrNotConfirmed) {
		s, _ := r.openReply(ref, get)
		return s, fmt.Errorf("logout: redis end: %w", err)
	}
	if err != nil {
		return Session{}, fmt.Errorf("logout: redis end: %w", err)
	}
	// The session is gone whatever the blob holds; a blob that does not open
	// yields nothing to the caller.
	return r.openReply(ref, get)
}

// openReply opens what a command read: ErrNoSession when it read nothing.
// The reply is opened where go-redis read it, without a copy: Open only
// reads its ciphertext, and writes the plaintext to memory of its own.
func (r *RedisStore) openReply(ref redisRef, get *redis.StringCmd) (Session, error) {
	switch err := get.Err(); {
	case errors.Is(err, redis.Nil):
		return Session{}, ErrNoSession
	case err != nil:
		return Session{}, fmt.Errorf("logout: redis end: %w", err)
	}
	blob := get.Val()
	return r.open(ref, unsafe.Slice(unsafe.StringData(blob), len(blob)))
}

// EndSubject ends every session of the user that began before the given
// time, on every instance, in one command whose cost grows with that user's
// sessions only. It returns how many sessions it ended.
func (r *RedisStore) EndSubject(ctx context.Context, issuer, subject string, before time.Time) (int, error) {
	ended, err := r.endSubjectHandles(ctx, issuer, subject, before)
	return len(ended), err
}

func (r *RedisStore) endSubjectHandles(ctx context.Context, issuer, subject string, before time.Time) ([]string, error) {
	if subject == "" {
		return nil, errors.New("logout: EndSubject needs a subject")
	}
	return r.endIndexed(ctx, hex.EncodeToString(userTag(issuer, subject)), "", unixMilli(minTime(before, r.clock())), "")
}

// EndSID ends every session opened under the provider session sid: one
// command to find the sid's user, one to end the sessions.
func (r *RedisStore) EndSID(ctx context.Context, issuer, sid string) (int, error) {
	ended, err := r.endSIDHandles(ctx, issuer, sid)
	return len(ended), err
}

func (r *RedisStore) endSIDHandles(ctx context.Context, issuer, sid string) ([]string, error) {
	if sid == "" {
		return nil, errors.New("logout: EndSID needs a sid")
	}
	tag, err := within(ctx, r.calls, func() (string, error) { return r.rdb.Get(ctx, r.sidPointer(issuer, sid)).Result() })
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logout: redis end sid: %w", err)
	}
	if _, err := hex.DecodeString(tag); err != nil || len(tag) != 2*tagLen {
		return nil, fmt.Errorf("logout: redis end sid: malformed pointer")
	}
	return r.endIndexed(ctx, tag, sidTag(issuer, sid), allTime, "")
}

// endIndexed ends the sessions of the user index under tag that match sid
// (any, when empty) and began at or before beforeMs, all but keep's, and
// returns their handles.
func (r *RedisStore) endIndexed(ctx context.Context, tag, sid string, beforeMs int64, keep string) ([]string, error) {
	base := r.KeyPrefix + "{" + tag + "}"
	end := evalCmd(ctx, endIndexedScript, []string{base + ":u"}, base+":s:", sid, beforeMs, keep)
	err := r.durability().write(ctx, r.calls, r.rdb, base+":u", end)
	if err == nil {
		var ended []string
		if ended, err = end.StringSlice(); err == nil {
			return ended, nil
		}
	}
	return nil, fmt.Errorf("logout: redis end sessions: %w", err)
}

// ttls gives a session record's TTL, which an idle timeout shortens, and the
// session's whole remaining life, which the index and sid pointer keep.
func (r *RedisStore) ttls(s Session) (ttl, life time.Duration, err error) {
	life = s.Expiry.Sub(r.clock())
	if life < time.Millisecond {
		return 0, 0, fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	ttl = life
	if r.idle > 0 {
		ttl = min(life, r.idle)
	}
	return ttl, life, nil
}

func (r *RedisStore) bind(b binding) SessionStore {
	cp := *r
	cp.idle = b.idle
	cp.idleMs = b.idle.Milliseconds()
	cp.format = b.format
	return &cp
}

func (r *RedisStore) handleOf(token string) string {
	ref, _ := r.parse(token)
	return ref.field
}

func (r *RedisStore) durability() durability {
	return durability{replicas: r.WaitReplicas, timeout: r.WaitTimeout}
}

func (r *RedisStore) seen(ctx context.Context, key string) (bool, error) {
	return seenKey(ctx, r.rdb, r.calls, r.KeyPrefix+"once:"+hashKey(key))
}

func (r *RedisStore) remember(ctx context.Context, key string, ttl time.Duration) error {
	return rememberKey(ctx, r.rdb, r.calls, r.KeyPrefix+"once:"+hashKey(key), ttl)
}

// parse checks a token's shape and derives the keys it names. Nothing in a
// token is trusted further: the session key is hashed from the ID, and the
// blob must open with the token's key.
func (r *RedisStore) parse(token string) (redisRef, bool) {
	if len(token) != redisToken {
		return redisRef{}, false
	}
	// Decoded on the stack: a request's token costs no allocation here.
	var src [redisToken]byte
	var raw [rawToken]byte
	copy(src[:], token)
	if n, err := base64.RawURLEncoding.Decode(raw[:], src[:]); err != nil || n != rawToken {
		return redisRef{}, false
	}
	return r.ref(raw[:]), true
}

func (r *RedisStore) ref(raw []byte) redisRef {
	// The key name hashes the ID and the key together, so a token with any
	// bit changed names a key that does not exist: tampering can neither
	// read nor delete a session.
	idHash := sha256.Sum256(raw[:idLen+keyLen])
	var tag [2 * tagLen]byte
	var field [32]byte
	hex.Encode(tag[:], raw[idLen+keyLen:])
	hex.Encode(field[:], idHash[:16])
	var b strings.Builder
	b.Grow(len(r.KeyPrefix) + len("{}:s:") + len(tag) + len(field))
	b.WriteString(r.KeyPrefix)
	b.WriteByte('{')
	b.Write(tag[:])
	b.WriteByte('}')
	base := b.Len()
	b.WriteString(":s:")
	b.Write(field[:])
	session := b.String()
	ref := redisRef{
		session: session,
		base:    base,
		tag:     session[len(r.KeyPrefix)+1 : base-1],
		field:   session[len(session)-len(field):],
	}
	copy(ref.key[:], raw[idLen:idLen+keyLen])
	return ref
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
	aead, err := newAEAD(ref.key[:])
	if err != nil {
		return Session{}, err
	}
	plain, err := aead.Open(nil, nil, blob, []byte(ref.session))
	if err != nil {
		return Session{}, ErrNoSession
	}
	s, err := decodeSession(plain)
	if err != nil {
		return Session{}, ErrNoSession
	}
	if !s.Expiry.After(r.clock()) {
		return Session{}, &lapsedError{reason: EndExpired, s: s, handle: ref.field}
	}
	return s, nil
}

func (r *RedisStore) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *RedisStore) seal(ref redisRef, s Session) ([]byte, error) {
	aead, err := newAEAD(ref.key[:])
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, encodeSession(s, cmp.Or(r.format, latestSessionFormat)), []byte(ref.session)), nil
}

// userTag is the hash tag shared by all keys of one user. It is derived from
// the issuer and subject, which are not secret, so EndSubject can find it.
func userTag(issuer, subject string) []byte {
	sum := sha256.Sum256([]byte("logout user\x00" + issuer + "\x00" + subject))
	return sum[:tagLen]
}

// indexEntry is the user index's value for a session: "expiryMs sidtag
// issuedMs device", with "-" for a session without a sid; the device
// description (which may hold spaces) is the rest of the line. Entries
// written before the start time was recorded ("expiryMs" or "expiryMs
// sidtag") read as having begun at 0, so any revocation of the user ends
// them.
func indexEntry(s Session) string {
	sid := "-"
	if s.SessionID != "" {
		sid = sidTag(s.Issuer, s.SessionID)
	}
	e := strconv.FormatInt(unixMilli(s.Expiry), 10) + " " + sid + " " + strconv.FormatInt(unixMilli(s.IssuedAt), 10)
	if d := deviceText(s.Device); d != "" {
		e += " " + d
	}
	return e
}

// deviceText is a device description fit for the index: printable, on one
// line, at most maxDevice bytes of whole characters.
func deviceText(d string) string {
	d = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(d))
	for len(d) > maxDevice {
		_, size := utf8.DecodeLastRuneInString(d)
		d = d[:len(d)-size]
	}
	return d
}

const maxDevice = 200

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
