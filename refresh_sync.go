// SPDX-License-Identifier: Apache-2.0

// Keeping the refreshes of one session single-flight: among the requests of
// one instance, and across instances through a lease in Redis.

package logout

import (
	"bytes"
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// refreshSync is what a store that instances share offers to keep refreshes
// of one session single-flight across them.
type refreshSync interface {
	// lease takes the session's refresh lease for ttl, or returns
	// errLeaseHeld.
	lease(ctx context.Context, token string, ttl time.Duration) (release func(), err error)
	leaseHeld(ctx context.Context, token string) (bool, error)
	// carriedRefresh is the refresh token the request's own token stands
	// for: the one the request saw.
	carriedRefresh(ctx context.Context, token string) (string, error)
	// loadVersion loads the newest state of the token's session and names
	// its refresh. A cookie that a refresh replaced (it still holds the
	// spent refresh token) gives the session that refresh stored, sealed
	// anew as used now, with the token to write in its place.
	loadVersion(ctx context.Context, token string) (s Session, newToken, version string, err error)
	// updateIfVersion stores s only if the refresh is still version, or
	// returns errStaleVersion.
	updateIfVersion(ctx context.Context, token, version string, s Session) (string, error)
	// isCurrent reports whether refreshToken is the session's current one.
	isCurrent(ctx context.Context, token, refreshToken string) (bool, error)
}

var (
	errLeaseHeld    = errors.New("logout: another instance is refreshing the session")
	errStaleVersion = errors.New("logout: the session was refreshed meanwhile")
	errRefreshLost  = errors.New("logout: another instance's refresh of the session did not complete; try again")
	errSpentCookie  = errors.New("logout: the cookie holds a refresh token already spent, and the session that replaced it is gone")
)

// refreshFlights shares one refresh among the requests of this instance
// that refresh the same session, and remembers for a while what the
// refreshes of stores that share nothing (a bare CookieStore) left behind.
type refreshFlights struct {
	mu      sync.Mutex
	flights map[string]*refreshFlight
	settled settledRefreshes
}

type refreshFlight struct {
	done chan struct{}
	res  refreshResult
}

func (f *refreshFlights) do(key string, fn func() refreshResult) refreshResult {
	f.mu.Lock()
	if f.flights == nil {
		f.flights = map[string]*refreshFlight{}
	}
	if fl, ok := f.flights[key]; ok {
		f.mu.Unlock()
		<-fl.done
		return fl.res
	}
	fl := &refreshFlight{done: make(chan struct{})}
	f.flights[key] = fl
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.flights, key)
		f.mu.Unlock()
		close(fl.done)
	}()
	fl.res = fn()
	return fl.res
}

// settledRefreshes remembers, in this process, the session token each
// recent refresh stored, under the hash of the refresh token it spent, so
// that a cookie still holding a spent token (another tab's, a renewal that
// raced the refresh) is answered with the session that replaced it instead
// of being redeemed again. It serves the stores that keep no shared state,
// for which nothing else can tell a spent token from a revoked session. It
// is bounded: entries last settledFor, at most settledMax of them, the
// oldest dropped first.
type settledRefreshes struct {
	mu      sync.Mutex
	entries map[string]settledRefresh
	order   []string // keys, oldest first
	n       atomic.Int32
}

type settledRefresh struct {
	token string
	until time.Time
}

const (
	settledFor = 5 * time.Minute
	settledMax = 4096
)

func (m *settledRefreshes) remember(spent, token string, now time.Time) {
	if spent == "" {
		return
	}
	key := refreshHash(spent)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]settledRefresh{}
	}
	for len(m.order) > 0 && (len(m.order) >= settledMax || now.After(m.entries[m.order[0]].until)) {
		delete(m.entries, m.order[0])
		m.order = m.order[1:]
	}
	if _, ok := m.entries[key]; !ok {
		m.order = append(m.order, key)
	}
	m.entries[key] = settledRefresh{token: token, until: now.Add(settledFor)}
	m.n.Store(int32(len(m.entries)))
}

// replacedBy returns the session token a refresh stored in place of the one
// holding refreshToken, if this process remembers one.
func (m *settledRefreshes) replacedBy(refreshToken string) (string, bool) {
	if refreshToken == "" || m.n.Load() == 0 {
		return "", false
	}
	key := refreshHash(refreshToken)
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || time.Now().After(e.until) {
		return "", false
	}
	return e.token, true
}

// refreshHash names a refresh token in Redis without writing it there.
func refreshHash(refreshToken string) string {
	sum := sha256.Sum256([]byte("logout refresh\x00" + refreshToken))
	return hex.EncodeToString(sum[:16])
}

// newLeaseOwner names one holder of a lease, so that only it releases it.
func newLeaseOwner() string { return rand.Text() }

// releaseLease deletes key if owner still holds it. It runs after the
// request's own deadline may have passed, so it has a short one of its own.
func releaseLease(rdb redis.UniversalClient, calls redisCalls, key, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	within(ctx, calls, func() (any, error) { return rdb.Eval(ctx, releaseScript, []string{key}, owner).Result() })
}

// How RedisStore takes part: a lease key beside the session, and updates that
// check the stored record is still the one the refresh loaded. Its token names
// the record, which always holds the latest tokens.

func (r *RedisStore) leaseKey(ref redisRef) string {
	return strings.TrimSuffix(ref.session, ref.field) + "lease:" + ref.field
}

func (r *RedisStore) lease(ctx context.Context, token string, ttl time.Duration) (func(), error) {
	ref, ok := r.parse(token)
	if !ok {
		return nil, ErrNoSession
	}
	key, owner := r.leaseKey(ref), newLeaseOwner()
	got, err := within(ctx, r.calls, func() (bool, error) { return r.rdb.SetNX(ctx, key, owner, ttl).Result() })
	if err != nil {
		return nil, fmt.Errorf("logout: redis refresh lease: %w", err)
	}
	if !got {
		return nil, errLeaseHeld
	}
	return func() { releaseLease(r.rdb, r.calls, key, owner) }, nil
}

func (r *RedisStore) leaseHeld(ctx context.Context, token string) (bool, error) {
	ref, ok := r.parse(token)
	if !ok {
		return false, ErrNoSession
	}
	return seenKey(ctx, r.rdb, r.calls, r.leaseKey(ref))
}

// carriedRefresh reads the record: the token names it, and it always holds
// the latest tokens.
func (r *RedisStore) carriedRefresh(ctx context.Context, token string) (string, error) {
	s, err := r.Load(ctx, token)
	return s.RefreshToken, err
}

func (r *RedisStore) loadVersion(ctx context.Context, token string) (Session, string, string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, "", "", ErrNoSession
	}
	blob, err := within(ctx, r.calls, func() ([]byte, error) { return r.rdb.Get(ctx, ref.session).Bytes() })
	if errors.Is(err, redis.Nil) {
		return Session{}, "", "", ErrNoSession
	}
	if err != nil {
		return Session{}, "", "", fmt.Errorf("logout: redis load: %w", err)
	}
	s, err := r.open(ref, blob)
	if err != nil {
		return Session{}, "", "", r.dropLapsed(ctx, ref, err)
	}
	sum := sha1.Sum(blob)
	return s, token, hex.EncodeToString(sum[:]), nil
}

func (r *RedisStore) updateIfVersion(ctx context.Context, token, version string, s Session) (string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return "", ErrNoSession
	}
	return r.update(ctx, ref, token, version, s)
}

func (r *RedisStore) isCurrent(ctx context.Context, token, refreshToken string) (bool, error) {
	s, err := r.Load(ctx, token)
	if err != nil {
		return false, err
	}
	return s.RefreshToken == refreshToken, nil
}

// How RevocableCookieStore takes part, through keys of its RevocationList
// under the session's handle. A cookie holds its session's tokens, so a
// refresh leaves every cookie sealed before it holding a spent refresh
// token; the list records which refresh token is current, and the newest
// cookie value, so that such a cookie is known and replaced, never redeemed.

func (c *RevocableCookieStore) lease(ctx context.Context, token string, ttl time.Duration) (func(), error) {
	_, handle, err := c.open(token)
	if err != nil {
		return nil, err
	}
	return c.list.lease(ctx, handle, ttl)
}

func (c *RevocableCookieStore) leaseHeld(ctx context.Context, token string) (bool, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return false, err
	}
	return c.list.leaseHeld(ctx, handle)
}

// carriedRefresh is the refresh token sealed in the cookie; no I/O.
func (c *RevocableCookieStore) carriedRefresh(_ context.Context, token string) (string, error) {
	s, _, err := c.open(token)
	return s.RefreshToken, err
}

// loadVersion names the refresh by the hash of the session's current
// refresh token.
func (c *RevocableCookieStore) loadVersion(ctx context.Context, token string) (Session, string, string, error) {
	n, err := c.newest(ctx, token, 0)
	switch {
	case err != nil:
		return Session{}, "", "", err
	case n.stale:
		return Session{}, "", "", errSpentCookie
	}
	return n.s, n.token, cmp.Or(n.current, refreshHash(n.s.RefreshToken)), nil
}

func (c *RevocableCookieStore) updateIfVersion(ctx context.Context, token, version string, s Session) (string, error) {
	return c.update(ctx, token, s, version)
}

func (c *RevocableCookieStore) isCurrent(ctx context.Context, token, refreshToken string) (bool, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return false, err
	}
	cur, err := c.list.currentRefresh(ctx, handle)
	return cur == "" || cur == refreshHash(refreshToken), err
}

// newestCookie is what newest found.
type newestCookie struct {
	s       Session
	handle  []byte
	token   string // the cookie to keep: the one given, or the newest one
	current string // the hash of the current refresh token, "" before the first refresh
	stale   bool   // the cookie holds a spent refresh token and nothing replaces it
}

// newest opens the cookie, checks that the session was not ended, and reads
// which refresh token is current, in one round trip (the records are read
// together). When a refresh replaced the cookie's session, it reads the
// newest cookie value (a second round trip, only then) and seals that
// session anew as used now, under the same handle.
func (c *RevocableCookieStore) newest(ctx context.Context, token string, idle time.Duration) (newestCookie, error) {
	s, handle, err := c.openIdle(token, idle)
	if err != nil {
		return newestCookie{}, c.lapseOf(ctx, handle, err)
	}
	if err := c.checkLifetimeOf(s); err != nil {
		return newestCookie{}, err
	}
	revoked, current, err := c.list.records(ctx, handle, s)
	if err != nil {
		return newestCookie{}, err
	}
	if revoked {
		return newestCookie{}, ErrNoSession
	}
	n := newestCookie{s: s, handle: handle, token: token, current: current}
	if current == "" || current == refreshHash(s.RefreshToken) {
		return n, nil
	}
	latest, err := c.list.latest(ctx, handle)
	if err != nil {
		return newestCookie{}, err
	}
	ls, lhandle, err := c.openAt(latest, 0)
	if latest == "" || err != nil || !bytes.Equal(lhandle, handle) || refreshHash(ls.RefreshToken) != current {
		n.stale = true
		return n, nil
	}
	ls.LastSeen = c.clock().Truncate(time.Millisecond)
	if n.token, err = c.seal(handle, ls); err != nil {
		return newestCookie{}, err
	}
	n.s = ls
	return n, nil
}

// The refresh of a cookie session is single-flight across instances through
// keys of the list, all under the session handle's hash tag (one slot on
// Cluster): a lease; the hash of the session's current refresh token (absent
// until its first refresh); and the newest cookie value, encrypted with a
// key derived from the session's handle, which only the session's cookies
// hold, so a Redis dump shows nothing usable. Both live as long as the
// session.

func (l *RevocationList) refreshKey(handle []byte, kind string) string {
	// PREFIX{hashKey(handle)}:kind, in one allocation: a signed-in page
	// reads one.
	sum := sha256.Sum256(handle)
	var h [32]byte
	hex.Encode(h[:], sum[:16])
	var b strings.Builder
	b.Grow(len(l.KeyPrefix) + len(h) + 3 + len(kind))
	b.WriteString(l.KeyPrefix)
	b.WriteByte('{')
	b.Write(h[:])
	b.WriteString("}:")
	b.WriteString(kind)
	return b.String()
}

func (l *RevocationList) lease(ctx context.Context, handle []byte, ttl time.Duration) (func(), error) {
	key, owner := l.refreshKey(handle, "lease"), newLeaseOwner()
	got, err := within(ctx, l.calls, func() (bool, error) { return l.rdb.SetNX(ctx, key, owner, ttl).Result() })
	if err != nil {
		return nil, fmt.Errorf("logout: redis refresh lease: %w", err)
	}
	if !got {
		return nil, errLeaseHeld
	}
	return func() { releaseLease(l.rdb, l.calls, key, owner) }, nil
}

func (l *RevocationList) leaseHeld(ctx context.Context, handle []byte) (bool, error) {
	return seenKey(ctx, l.rdb, l.calls, l.refreshKey(handle, "lease"))
}

// currentRefresh returns the hash of the session's current refresh token, or
// "" before its first refresh.
func (l *RevocationList) currentRefresh(ctx context.Context, handle []byte) (string, error) {
	v, err := within(ctx, l.calls, func() (string, error) { return l.rdb.Get(ctx, l.refreshKey(handle, "rt")).Result() })
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("logout: redis refresh state: %w", err)
	}
	return v, nil
}

// refreshed records a refresh, if the session's refresh token is still the
// one hashed as was (or none was recorded yet), with the newest cookie value
// for the holders of older ones.
func (l *RevocationList) refreshed(ctx context.Context, handle []byte, was, now string, newToken string, ttl time.Duration) error {
	latestKey := l.refreshKey(handle, "latest")
	sealed, err := latestSeal(handle, latestKey, newToken)
	if err != nil {
		return err
	}
	n, err := within(ctx, l.calls, func() (int, error) {
		return l.rdb.Eval(ctx, refreshedScript, []string{l.refreshKey(handle, "rt"), latestKey}, was, now, max(ttl, 0).Milliseconds()+60_000, sealed).Int()
	})
	if err != nil {
		return fmt.Errorf("logout: redis refresh state: %w", err)
	}
	if n == 0 {
		return errStaleVersion
	}
	return nil
}

// latest returns the newest cookie value of the session, or "" when none
// was recorded.
func (l *RevocationList) latest(ctx context.Context, handle []byte) (string, error) {
	key := l.refreshKey(handle, "latest")
	sealed, err := within(ctx, l.calls, func() ([]byte, error) { return l.rdb.Get(ctx, key).Bytes() })
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("logout: redis refresh state: %w", err)
	}
	a, err := latestAEAD(handle)
	if err != nil {
		return "", err
	}
	plain, err := a.Open(nil, nil, sealed, []byte(key))
	if err != nil {
		return "", nil // not ours to read: as if none were recorded
	}
	return string(plain), nil
}

func latestAEAD(handle []byte) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("logout refresh latest\x00" + string(handle)))
	return newAEAD(key[:])
}

func latestSeal(handle []byte, aad, newToken string) ([]byte, error) {
	a, err := latestAEAD(handle)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nil, []byte(newToken), []byte(aad)), nil
}
