// Keeping the refreshes of one session single-flight: among the requests of
// one instance, and across instances through a lease in Redis.

package logout

import (
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
	"time"

	"github.com/redis/go-redis/v9"
)

// refreshSync is what a store that instances share offers to keep refreshes
// of one session single-flight across them.
type refreshSync interface {
	// lease takes the session's refresh lease, or returns errLeaseHeld.
	lease(ctx context.Context, token string) (release func(), err error)
	leaseHeld(ctx context.Context, token string) (bool, error)
	// loadVersion loads the session and names its current refresh.
	loadVersion(ctx context.Context, token string) (Session, string, error)
	// updateIfVersion stores s only if the refresh is still version, or
	// returns errStaleVersion.
	updateIfVersion(ctx context.Context, token, version string, s Session) (string, error)
	// isCurrent reports whether refreshToken is the session's current one.
	isCurrent(ctx context.Context, token, refreshToken string) (bool, error)
	// latest returns the session, and its token, as the last refresh left
	// it, for a request that carries the token from before.
	latest(ctx context.Context, token string) (Session, string, error)
	// settled reports whether a refresh replaced the session this very
	// token holds, when the token itself carries the tokens (a cookie), and
	// returns what it stored.
	settled(ctx context.Context, token string) (Session, string, bool, error)
}

var (
	errLeaseHeld    = errors.New("logout: another instance is refreshing the session")
	errStaleVersion = errors.New("logout: the session was refreshed meanwhile")
)

// refreshLeaseTTL bounds how long one instance may hold a session's refresh
// before another may try: longer than a refresh takes, short enough that a
// crashed instance does not block refreshes for long.
const refreshLeaseTTL = 15 * time.Second

// refreshFlights shares one refresh among the requests of this instance
// that carry the same session token.
type refreshFlights struct {
	mu      sync.Mutex
	flights map[string]*refreshFlight
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

// refreshHash names a refresh token in Redis without writing it there.
func refreshHash(refreshToken string) string {
	sum := sha256.Sum256([]byte("logout refresh\x00" + refreshToken))
	return hex.EncodeToString(sum[:16])
}

// newLeaseOwner names one holder of a lease, so that only it releases it.
func newLeaseOwner() string { return rand.Text() }

// releaseLease deletes key if owner still holds it. It runs after the
// request's own deadline may have passed, so it has a short one of its own.
func releaseLease(rdb redis.UniversalClient, key, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	within(ctx, func() (any, error) { return rdb.Eval(ctx, releaseScript, []string{key}, owner).Result() })
}

// How RedisStore takes part: a lease key beside the session, and updates that
// check the stored record is still the one the refresh loaded. Its token names
// the record, which always holds the latest tokens.

func (r *RedisStore) leaseKey(ref redisRef) string {
	return strings.TrimSuffix(ref.session, ref.field) + "lease:" + ref.field
}

func (r *RedisStore) lease(ctx context.Context, token string) (func(), error) {
	ref, ok := r.parse(token)
	if !ok {
		return nil, ErrNoSession
	}
	key, owner := r.leaseKey(ref), newLeaseOwner()
	got, err := within(ctx, func() (bool, error) { return r.rdb.SetNX(ctx, key, owner, refreshLeaseTTL).Result() })
	if err != nil {
		return nil, fmt.Errorf("logout: redis refresh lease: %w", err)
	}
	if !got {
		return nil, errLeaseHeld
	}
	return func() { releaseLease(r.rdb, key, owner) }, nil
}

func (r *RedisStore) leaseHeld(ctx context.Context, token string) (bool, error) {
	ref, ok := r.parse(token)
	if !ok {
		return false, ErrNoSession
	}
	return seenKey(ctx, r.rdb, r.leaseKey(ref))
}

func (r *RedisStore) loadVersion(ctx context.Context, token string) (Session, string, error) {
	ref, ok := r.parse(token)
	if !ok {
		return Session{}, "", ErrNoSession
	}
	blob, err := within(ctx, func() ([]byte, error) { return r.rdb.Get(ctx, ref.session).Bytes() })
	if errors.Is(err, redis.Nil) {
		return Session{}, "", ErrNoSession
	}
	if err != nil {
		return Session{}, "", fmt.Errorf("logout: redis load: %w", err)
	}
	s, err := r.open(ref, blob)
	if err != nil {
		return Session{}, "", r.dropLapsed(ctx, ref, err)
	}
	sum := sha1.Sum(blob)
	return s, hex.EncodeToString(sum[:]), nil
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

func (r *RedisStore) latest(ctx context.Context, token string) (Session, string, error) {
	s, err := r.Load(ctx, token)
	return s, token, err
}

// settled is never true for a Redis session: its token names the record,
// which always holds the latest tokens.
func (r *RedisStore) settled(context.Context, string) (Session, string, bool, error) {
	return Session{}, "", false, nil
}

// How RevocableCookieStore takes part, through keys of its RevocationList
// under the session's handle.

func (c *RevocableCookieStore) lease(ctx context.Context, token string) (func(), error) {
	_, handle, err := c.open(token)
	if err != nil {
		return nil, err
	}
	return c.list.lease(ctx, handle)
}

func (c *RevocableCookieStore) leaseHeld(ctx context.Context, token string) (bool, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return false, err
	}
	return c.list.leaseHeld(ctx, handle)
}

// loadVersion names the refresh by the hash of the refresh token the cookie
// holds.
func (c *RevocableCookieStore) loadVersion(ctx context.Context, token string) (Session, string, error) {
	s, err := c.Load(ctx, token)
	return s, refreshHash(s.RefreshToken), err
}

func (c *RevocableCookieStore) updateIfVersion(ctx context.Context, token, version string, s Session) (string, error) {
	newToken, err := c.Update(ctx, token, s)
	if err != nil {
		return "", err
	}
	_, handle, err := c.open(token)
	if err != nil {
		return "", err
	}
	// A first refresh finds no hash recorded: the version then stands for
	// the refresh token sealed at sign-in, which no other refresh has
	// redeemed yet, or it would have recorded its own.
	if err := c.list.refreshed(ctx, handle, version, refreshHash(s.RefreshToken), token, newToken, s.Expiry.Sub(c.clock())); err != nil {
		return "", err
	}
	return newToken, nil
}

func (c *RevocableCookieStore) isCurrent(ctx context.Context, token, refreshToken string) (bool, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return false, err
	}
	cur, err := c.list.currentRefresh(ctx, handle)
	return cur == "" || cur == refreshHash(refreshToken), err
}

func (c *RevocableCookieStore) settled(ctx context.Context, token string) (Session, string, bool, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return Session{}, "", false, err
	}
	newToken, err := c.list.stashed(ctx, handle, token)
	if err != nil || newToken == "" {
		return Session{}, "", false, err
	}
	s, err := c.Load(ctx, newToken)
	return s, newToken, true, err
}

func (c *RevocableCookieStore) latest(ctx context.Context, token string) (Session, string, error) {
	_, handle, err := c.open(token)
	if err != nil {
		return Session{}, "", err
	}
	newToken, err := c.list.stashed(ctx, handle, token)
	if err != nil {
		return Session{}, "", err
	}
	if newToken == "" {
		newToken = token
	}
	s, err := c.Load(ctx, newToken)
	return s, newToken, err
}

// The refresh of a cookie session is single-flight across instances through
// keys of the list, all under the session handle's hash tag (one slot on
// Cluster): a lease; the hash of the session's current refresh token (absent
// until its first refresh); and, for the requests that lost the race, the
// winner's new cookie value, encrypted with a key derived from the old one,
// so only a holder of the old cookie can read it and a Redis dump shows
// nothing usable.

func (l *RevocationList) refreshKey(handle []byte, kind string) string {
	return l.KeyPrefix + "{" + hashKey(string(handle)) + "}:" + kind
}

func (l *RevocationList) lease(ctx context.Context, handle []byte) (func(), error) {
	key, owner := l.refreshKey(handle, "lease"), newLeaseOwner()
	got, err := within(ctx, func() (bool, error) { return l.rdb.SetNX(ctx, key, owner, refreshLeaseTTL).Result() })
	if err != nil {
		return nil, fmt.Errorf("logout: redis refresh lease: %w", err)
	}
	if !got {
		return nil, errLeaseHeld
	}
	return func() { releaseLease(l.rdb, key, owner) }, nil
}

func (l *RevocationList) leaseHeld(ctx context.Context, handle []byte) (bool, error) {
	return seenKey(ctx, l.rdb, l.refreshKey(handle, "lease"))
}

// currentRefresh returns the hash of the session's current refresh token, or
// "" before its first refresh.
func (l *RevocationList) currentRefresh(ctx context.Context, handle []byte) (string, error) {
	v, err := within(ctx, func() (string, error) { return l.rdb.Get(ctx, l.refreshKey(handle, "rt")).Result() })
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("logout: redis refresh state: %w", err)
	}
	return v, nil
}

// refreshed records a refresh, if the session's refresh token is still the
// one hashed as was (or none was recorded yet), and stashes the new cookie
// value for the old one's holders.
func (l *RevocationList) refreshed(ctx context.Context, handle []byte, was, now string, oldToken, newToken string, ttl time.Duration) error {
	stashKey := l.refreshKey(handle, "stash:"+hashKey(oldToken))
	sealed, err := stashSeal(oldToken, stashKey, newToken)
	if err != nil {
		return err
	}
	n, err := within(ctx, func() (int, error) {
		return l.rdb.Eval(ctx, refreshedScript, []string{l.refreshKey(handle, "rt"), stashKey}, was, now, max(ttl, 0).Milliseconds()+60_000, sealed).Int()
	})
	if err != nil {
		return fmt.Errorf("logout: redis refresh state: %w", err)
	}
	if n == 0 {
		return errStaleVersion
	}
	return nil
}

// stashed returns the cookie value a refresh left for the holders of
// oldToken, or "" when there is none.
func (l *RevocationList) stashed(ctx context.Context, handle []byte, oldToken string) (string, error) {
	stashKey := l.refreshKey(handle, "stash:"+hashKey(oldToken))
	sealed, err := within(ctx, func() ([]byte, error) { return l.rdb.Get(ctx, stashKey).Bytes() })
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("logout: redis refresh state: %w", err)
	}
	return stashOpen(oldToken, stashKey, sealed)
}

func stashAEAD(oldToken string) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("logout refresh stash\x00" + oldToken))
	return newAEAD(key[:])
}

func stashSeal(oldToken, aad, newToken string) ([]byte, error) {
	a, err := stashAEAD(oldToken)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nil, []byte(newToken), []byte(aad)), nil
}

func stashOpen(oldToken, aad string, sealed []byte) (string, error) {
	a, err := stashAEAD(oldToken)
	if err != nil {
		return "", err
	}
	plain, err := a.Open(nil, nil, sealed, []byte(aad))
	if err != nil {
		return "", ErrNoSession
	}
	return string(plain), nil
}
