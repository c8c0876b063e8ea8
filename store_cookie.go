// SPDX-License-Identifier: Apache-2.0

// CookieStore and RevocableCookieStore: sessions sealed into the browser's
// cookie.

package logout

import (
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// CookieStore keeps the whole session in the browser, sealed with AES-256-GCM.
// No server holds any state, so it needs no database and scales to any number
// of instances that share its keys.
//
// The seal carries the session's expiry, checked on every Load whatever the
// browser does with the cookie, and the cookie's name, so a value sealed for
// one cookie opens in no other. Tampered, truncated or garbled values read as
// [ErrNoSession].
//
// What it cannot do: End cannot destroy anything. Logout removes the cookie
// from this browser, but a copy of the cookie taken before logout (by malware,
// a shared computer, a leaked log) stays valid until the session expires, and
// nothing can end a user's sessions from the server: it is not a [Revoker].
// [NewRevocableCookieStore] adds a [RevocationList] in Redis and closes both
// gaps.
//
// Sealed sessions that pass one cookie's 4 KB are split across numbered
// cookies by the [Handler]; past about 15 KB Save refuses the session with a
// clear error rather than let the browser drop it silently.
type CookieStore struct {
	sealer
}

// NewCookieStore returns a store that seals with the first key and opens with
// any of them, so keys can be rotated: put the new key first, keep the old one
// until every session sealed with it has expired, then drop it. Each key is 32
// random bytes; keep them secret and the same on every instance. It does no
// I/O.
func NewCookieStore(keys ...[]byte) (*CookieStore, error) {
	s, err := newSealer(keys)
	if err != nil {
		return nil, err
	}
	return &CookieStore{s}, nil
}

// Save seals the session under a new handle.
func (c *CookieStore) Save(_ context.Context, s Session) (string, error) {
	return c.seal(newHandle(), s)
}

// Load opens the sealed session.
func (c *CookieStore) Load(_ context.Context, token string) (Session, error) {
	s, _, err := c.open(token)
	return s, err
}

// Update seals s in place of the session the token holds, if that one is
// still valid. The issuer, subject, sid and IssuedAt cannot change.
func (c *CookieStore) Update(_ context.Context, token string, s Session) (string, error) {
	old, handle, err := c.open(token)
	if err != nil {
		return "", err
	}
	if err := sameSession(old, s); err != nil {
		return "", err
	}
	return c.seal(handle, s)
}

// End returns what the sealed session held. It cannot stop a copy of the
// cookie, so every caller gets the session (see the type's documentation).
func (c *CookieStore) End(_ context.Context, token string) (Session, error) {
	s, _, err := c.open(token)
	return s, err
}

// Renew opens the session and, with an idle timeout, records its use in a
// new seal when the last record is more than a tenth of idle old; otherwise
// it returns the same token and the response needs no cookie.
func (c *CookieStore) Renew(_ context.Context, token string, idle time.Duration) (Session, string, error) {
	s, handle, err := c.openIdle(token, idle)
	if err != nil {
		return Session{}, "", err
	}
	return c.renew(s, handle, token, idle)
}

func (c *CookieStore) bind(b binding) SessionStore {
	cp := *c
	cp.sealer = cp.sealer.bound(b)
	return &cp
}

// RevocableCookieStore is a [CookieStore] whose ended sessions are recorded in
// a [RevocationList], so that ending a session is server-side: no copy of its
// cookie opens again on any instance. It is a [Revoker], so back-channel
// logout, webhooks and "sign out everywhere" work with sealed cookies too.
//
// Every Load and Update reads the list (one Redis round trip); End writes one
// record. Sessions may last at most the list's Lifetime, so that a record
// always outlives the sessions it ends: Save refuses a longer one.
type RevocableCookieStore struct {
	sealer
	list *RevocationList
}

// NewRevocableCookieStore returns a cookie store, with keys as for
// [NewCookieStore], whose ended sessions are recorded in list. Give every
// instance the same keys and a list on the same Redis. It does no I/O.
func NewRevocableCookieStore(list *RevocationList, keys ...[]byte) (*RevocableCookieStore, error) {
	if list == nil {
		return nil, errors.New("logout: NewRevocableCookieStore needs a RevocationList")
	}
	s, err := newSealer(keys)
	if err != nil {
		return nil, err
	}
	return &RevocableCookieStore{sealer: s, list: list}, nil
}

// Save seals the session under a new handle. Its expiry may be at most the
// list's Lifetime after its IssuedAt (or now, when IssuedAt is zero).
func (c *RevocableCookieStore) Save(_ context.Context, s Session) (string, error) {
	if err := c.checkLifetime(s); err != nil {
		return "", err
	}
	return c.seal(newHandle(), s)
}

// Load opens the sealed session and checks that it was not ended.
func (c *RevocableCookieStore) Load(ctx context.Context, token string) (Session, error) {
	s, handle, err := c.open(token)
	if err != nil {
		return Session{}, c.lapseOf(ctx, handle, err)
	}
	if err := c.checkRevoked(ctx, handle, s); err != nil {
		return Session{}, err
	}
	return s, nil
}

// Update seals s in place of the session the token holds, if that one was
// not ended. The handle stays, so a logout ends the new cookie as well. The
// issuer, subject, sid and IssuedAt cannot change.
//
// When s holds another refresh token than the cookie, Update also records
// it as the session's current one, with the new cookie value (a second
// round trip), so that every older cookie of the session is known to hold
// a spent token: a renewal then writes the new cookie in its place, and
// [Handler.Refresh] never redeems the old token. If the cookie's own
// refresh token was already replaced by another refresh, Update stores
// nothing and returns an error.
func (c *RevocableCookieStore) Update(ctx context.Context, token string, s Session) (string, error) {
	return c.update(ctx, token, s, "")
}

// update is Update; with was set, it records the refresh only if the
// session's current refresh token is the one hashed as was.
func (c *RevocableCookieStore) update(ctx context.Context, token string, s Session, was string) (string, error) {
	old, handle, err := c.open(token)
	if err != nil {
		return "", c.lapseOf(ctx, handle, err)
	}
	if err := sameSession(old, s); err != nil {
		return "", err
	}
	if err := c.checkLifetime(s); err != nil {
		return "", err
	}
	if err := c.checkRevoked(ctx, handle, old); err != nil {
		return "", err
	}
	newToken, err := c.seal(handle, s)
	if err != nil || (was == "" && s.RefreshToken == old.RefreshToken) {
		return newToken, err
	}
	if was == "" {
		was = refreshHash(old.RefreshToken)
	}
	if err := c.list.refreshed(ctx, handle, was, refreshHash(s.RefreshToken), newToken, s.Expiry.Sub(c.clock())); err != nil {
		return "", err
	}
	return newToken, nil
}

// End records the session as ended, in one command that only one caller can
// win, and returns what it held to that caller. A session that a revocation
// already ended (by its sid, its user or "sign out other devices") is not
// there to end: ErrNoSession, as [RedisStore] answers. The same command
// reads those records: one EVAL (on Cluster or a Ring, a SET and one GET
// per record, sent together). A cookie that expired or idled out is checked
// too, and its lapse reported only when no revocation came first.
func (c *RevocableCookieStore) End(ctx context.Context, token string) (Session, error) {
	s, handle, err := c.open(token)
	var lapsed *lapsedError
	switch {
	case errors.As(err, &lapsed):
		s = lapsed.s
	case err != nil:
		return Session{}, err
	}
	if err := c.checkLifetimeOf(s); err != nil {
		return Session{}, err
	}
	first, err := c.list.endHandle(ctx, handle, s, s.Expiry.Sub(c.clock()))
	switch {
	case err != nil && !(first && errors.Is(err, ErrNotConfirmed)):
		return Session{}, err
	case !first:
		return Session{}, ErrNoSession
	case lapsed != nil:
		return Session{}, lapsed // over by itself; the record only keeps copies out
	case err != nil:
		return s, err // recorded on the primary, not confirmed: see RedisStore.End
	}
	return s, nil
}

// EndSID ends, on every instance, the sessions opened under the provider
// session sid. The cookie store cannot count sessions it does not hold, so it
// reports 0.
func (c *RevocableCookieStore) EndSID(ctx context.Context, issuer, sid string) (int, error) {
	if sid == "" {
		return 0, errors.New("logout: EndSID needs a sid")
	}
	// A provider session that ended never comes back, so every app session
	// under it is over, whenever it began.
	return 0, c.list.revoke(ctx, "sid", issuer, sid, time.UnixMilli(allTime))
}

// EndSubject ends, on every instance, the user's sessions that began before
// the given time. It reports 0, like EndSID.
func (c *RevocableCookieStore) EndSubject(ctx context.Context, issuer, subject string, before time.Time) (int, error) {
	if subject == "" {
		return 0, errors.New("logout: EndSubject needs a subject")
	}
	return 0, c.list.revoke(ctx, "sub", issuer, subject, minTime(before, c.clock()))
}

// Renew opens the session, checks that it was not ended, and records its use
// as [CookieStore.Renew] does. The new seal keeps the handle, so ending the
// session ends every cookie it ever had.
//
// A cookie whose session a refresh replaced (it holds the refresh token the
// refresh spent) is never sealed again: Renew returns the session the
// refresh stored, in a new cookie that takes the old one's place (one more
// round trip, only then).
func (c *RevocableCookieStore) Renew(ctx context.Context, token string, idle time.Duration) (Session, string, error) {
	n, err := c.newest(ctx, token, idle)
	switch {
	case err != nil:
		return Session{}, "", err
	case n.token != token, n.stale:
		return n.s, n.token, nil
	}
	return c.renew(n.s, n.handle, token, idle)
}

func (c *RevocableCookieStore) bind(b binding) SessionStore {
	cp := *c
	cp.sealer = cp.sealer.bound(b)
	return &cp
}

func (c *RevocableCookieStore) seen(ctx context.Context, key string) (bool, error) {
	return c.list.seen(ctx, key)
}

func (c *RevocableCookieStore) remember(ctx context.Context, key string, ttl time.Duration) error {
	return c.list.remember(ctx, key, ttl)
}

func (c *RevocableCookieStore) maxLifetime() time.Duration { return c.list.Lifetime }

// endOthers ends every session of the token's user but the token's own: it
// records that the user's sessions begun until now are ended, all but this
// one's handle. The token stays as it is. The store holds no list of
// sessions, so it cannot say which it ended.
func (c *RevocableCookieStore) endOthers(ctx context.Context, token string, before time.Time) ([]string, error) {
	// The callers have just loaded the session: a logout that ended it
	// since changes nothing the user asked for, and one that lapsed still
	// names its user.
	s, handle, err := c.open(token)
	if lapsed := asLapsed(err); lapsed != nil {
		s, err = lapsed.s, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, c.list.revokeOthers(ctx, s.Issuer, s.Subject, minTime(before, c.clock()), handle)
}

// identify returns the token's session, or its lapsed error when it is
// over by itself, without recording anything: "sign out everywhere" learns
// from it whose sessions to end. A session that was ended (logged out,
// revoked) is ErrNoSession, lapsed or not, so that a stale copy of its
// cookie can end nobody's sessions.
func (c *RevocableCookieStore) identify(ctx context.Context, token string) (Session, error) {
	return c.Load(ctx, token)
}

// lapseOf is err as a read of the session returns it: a lapsed session
// that was ended before it lapsed (logged out, revoked) is no session at
// all, so that its stale cookie is never told of as a lapse, nor names a
// user. The records of those endings live until a minute past the
// session's expiry, and so does a lapse: a browser drops the cookie at
// its expiry, and one brought later is a copy. It costs a round trip only
// when the session lapsed; when that fails, the lapse is not told of.
func (c *RevocableCookieStore) lapseOf(ctx context.Context, handle []byte, err error) error {
	lapsed := asLapsed(err)
	if lapsed == nil {
		return err
	}
	if c.clock().After(lapsed.s.Expiry.Add(time.Minute)) {
		return ErrNoSession
	}
	if err := c.checkRevoked(ctx, handle, lapsed.s); err != nil {
		return ErrNoSession
	}
	return lapsed
}

// checkLifetime refuses a session that could outlive the records that end it.
func (c *RevocableCookieStore) checkLifetime(s Session) error {
	start := s.IssuedAt
	if start.IsZero() {
		start = c.clock()
	}
	if life := s.Expiry.Sub(start); life > c.list.Lifetime {
		return fmt.Errorf("logout: a session of %v is longer than the RevocationList's Lifetime of %v; raise the Lifetime or shorten the session", life.Round(time.Second), c.list.Lifetime)
	}
	return nil
}

// checkLifetimeOf refuses a session longer than the list's Lifetime (which
// was lowered since it was sealed): it might outlive its revocation records.
func (c *RevocableCookieStore) checkLifetimeOf(s Session) error {
	if !s.IssuedAt.IsZero() && s.Expiry.Sub(s.IssuedAt) > c.list.Lifetime {
		return ErrNoSession
	}
	return nil
}

func (c *RevocableCookieStore) checkRevoked(ctx context.Context, handle []byte, s Session) error {
	if err := c.checkLifetimeOf(s); err != nil {
		return err
	}
	revoked, err := c.list.revoked(ctx, handle, s)
	if err != nil {
		return err
	}
	if revoked {
		return ErrNoSession
	}
	return nil
}

// sameSession refuses an Update that would turn one session into another:
// revocations name sessions by issuer, subject, sid and start time.
func sameSession(old, s Session) error {
	if old.Issuer != s.Issuer || old.Subject != s.Subject || old.SessionID != s.SessionID || !old.IssuedAt.Equal(s.IssuedAt) {
		return errors.New("logout: Update cannot change a session's issuer, subject, sid or IssuedAt; start a new session")
	}
	return nil
}

// sealer seals sessions into cookie values and opens them.
type sealer struct {
	aeads  []cipher.AEAD // aeads[0] seals; all of them open
	aad    []byte
	idle   time.Duration    // the Handler's idle timeout, once bound
	format byte             // the format to write; 0 means the latest
	now    func() time.Time // nil means time.Now
}

func (c sealer) bound(b binding) sealer {
	c.aad = cookieAAD(b.cookie)
	c.idle = b.idle
	c.format = b.format
	return c
}

// renewEvery is the fraction of the idle timeout after which a use is
// recorded in a new seal. Between records no cookie is written, so a session
// ends at most a tenth of the idle timeout early, never late.
const renewEvery = 10

// openIdle opens the token and refuses a session idle for idle or longer.
func (c *sealer) openIdle(token string, idle time.Duration) (Session, []byte, error) {
	s, handle, err := c.open(token)
	if err == nil && idleSince(s, idle, c.clock()) {
		return Session{}, handle, &lapsedError{reason: EndIdle, s: s, handle: cookieHandle(handle)}
	}
	return s, handle, err
}

// renew records a use of s at now in a new seal, if the last record is old
// enough to be worth a cookie.
func (c *sealer) renew(s Session, handle []byte, token string, idle time.Duration) (Session, string, error) {
	now := c.clock()
	last := s.LastSeen
	if last.IsZero() {
		last = s.IssuedAt
	}
	if idle <= 0 || now.Sub(last) < idle/renewEvery {
		return s, token, nil
	}
	s.LastSeen = now.Truncate(time.Millisecond)
	newToken, err := c.seal(handle, s)
	if err != nil {
		return Session{}, "", err
	}
	return s, newToken, nil
}

func newSealer(keys [][]byte) (sealer, error) {
	if len(keys) == 0 {
		return sealer{}, errors.New("logout: a cookie store needs at least one key")
	}
	s := sealer{aad: cookieAAD("")}
	for i, k := range keys {
		a, err := newAEAD(k)
		if err != nil {
			return sealer{}, fmt.Errorf("logout: cookie store key %d: %w", i, err)
		}
		s.aeads = append(s.aeads, a)
	}
	return s, nil
}

// cookieAAD binds a seal to the cookie it is written to; the Handler binds
// its store to its session cookie's name in New.
func cookieAAD(name string) []byte {
	return []byte("logout cookie store v1\x00" + name)
}

// A sealed cookie holds a random 128-bit handle before the session. The
// handle names the session in the revocation list and survives Update, so
// ending a session kills every cookie it ever had, refreshed or not.
const handleLen = 16

func newHandle() []byte {
	h := make([]byte, handleLen)
	rand.Read(h)
	return h
}

func (c *sealer) seal(handle []byte, s Session) (string, error) {
	if !s.Expiry.After(c.clock()) {
		return "", fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	plain := append(handle[:handleLen:handleLen], encodeSession(s, cmp.Or(c.format, latestSessionFormat))...)
	sealed := c.aeads[0].Seal(nil, nil, plain, c.aad)
	if n := base64.RawURLEncoding.EncodedLen(len(sealed)); n > maxCookieTokenLen {
		return "", fmt.Errorf("logout: sealed session is %d bytes, over the cookie store's limit of %d; keep fewer or smaller tokens in it, or use RedisStore", n, maxCookieTokenLen)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (c *sealer) open(token string) (Session, []byte, error) {
	return c.openAt(token, c.idle)
}

// openAt opens the token, refusing it when idle for idle (zero: never).
func (c *sealer) openAt(token string, idle time.Duration) (Session, []byte, error) {
	if len(token) > maxCookieTokenLen {
		return Session{}, nil, ErrNoSession
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Session{}, nil, ErrNoSession
	}
	for _, a := range c.aeads {
		plain, err := a.Open(nil, nil, sealed, c.aad)
		if err != nil {
			continue
		}
		if len(plain) < handleLen {
			return Session{}, nil, ErrNoSession
		}
		s, err := decodeSession(plain[handleLen:])
		if err != nil {
			return Session{}, nil, ErrNoSession
		}
		// A lapsed session's handle comes back with its error, for End to
		// check what the server side knows of it. Capped: the strings of s
		// live in the rest.
		handle := plain[:handleLen:handleLen]
		now := c.clock()
		if !s.Expiry.After(now) {
			return Session{}, handle, &lapsedError{reason: EndExpired, s: s, handle: cookieHandle(handle)}
		}
		if idleSince(s, idle, now) {
			return Session{}, handle, &lapsedError{reason: EndIdle, s: s, handle: cookieHandle(handle)}
		}
		return s, handle, nil
	}
	return Session{}, nil, ErrNoSession
}

func (c *sealer) handleOf(token string) string {
	if _, handle, err := c.open(token); err == nil {
		return cookieHandle(handle)
	}
	return ""
}

func (c *sealer) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
