package logout

import (
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
// What it cannot do alone: on its own, End cannot destroy anything. Logout
// removes the cookie from this browser, but a copy of the cookie taken before
// logout (by malware, a shared computer, a leaked log) stays valid until the
// session expires. Give it a [RevocationList] (set Revocations) and logout
// becomes server-side: End records the session as ended in Redis, every Load
// checks that record (one round trip), and back-channel logout and
// [CookieStore.EndSubject] work too.
//
// Sealed sessions that pass one cookie's 4 KB are split across numbered
// cookies by the [Handler]; past maxCookieTokenLen bytes Save refuses the
// session with a clear error rather than let the browser drop it silently.
type CookieStore struct {
	aeads []cipher.AEAD // aeads[0] seals; all of them open
	aad   []byte

	// Revocations, when set before first use, records ended sessions so
	// that no copy of their cookie opens again. Nil keeps the store
	// stateless.
	Revocations *RevocationList
	// Now, when set before first use, replaces time.Now for expiry checks
	// (tests move the clock with it).
	Now func() time.Time
}

// NewCookieStore returns a store that seals with the first key and opens with
// any of them, so keys can be rotated: put the new key first, keep the old one
// until every session sealed with it has expired, then drop it. Each key is 32
// random bytes; keep them secret and the same on every instance.
func NewCookieStore(keys ...[]byte) (*CookieStore, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("logout: NewCookieStore needs at least one key")
	}
	s := &CookieStore{}
	for i, k := range keys {
		a, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("logout: cookie store key %d: %w", i, err)
		}
		s.aeads = append(s.aeads, a)
	}
	s.aad = cookieAAD("")
	return s, nil
}

// forCookie returns a copy of the store whose seals are bound to the named
// cookie. The Handler calls it with its session cookie's name.
func (c *CookieStore) forCookie(name string) SessionStore {
	cp := *c
	cp.aad = cookieAAD(name)
	return &cp
}

func cookieAAD(name string) []byte {
	return []byte("logout cookie store v1\x00" + name)
}

// A sealed cookie holds a random 128-bit handle before the session. The
// handle names the session in the revocation list and survives Update, so
// ending a session kills every cookie it ever had, refreshed or not.
const handleLen = 16

// Save seals the session under a new handle.
func (c *CookieStore) Save(_ context.Context, s Session) (string, error) {
	handle := make([]byte, handleLen)
	rand.Read(handle)
	return c.seal(handle, s)
}

// Load opens the sealed session and, with a revocation list, checks that it
// was not ended.
func (c *CookieStore) Load(ctx context.Context, token string) (Session, error) {
	s, handle, err := c.open(token)
	if err != nil {
		return Session{}, err
	}
	if err := c.checkRevoked(ctx, handle, s); err != nil {
		return Session{}, err
	}
	return s, nil
}

// Update seals s in place of the session the token holds, if that one is
// still valid. The handle stays, so a logout ends the new cookie as well.
func (c *CookieStore) Update(ctx context.Context, token string, s Session) (string, error) {
	old, handle, err := c.open(token)
	if err != nil {
		return "", err
	}
	if err := c.checkRevoked(ctx, handle, old); err != nil {
		return "", err
	}
	return c.seal(handle, s)
}

// End returns what the sealed session held. With a revocation list it also
// records the session as ended, in one command that only one caller can
// win; without one it cannot stop a copy of the cookie (see the type's
// documentation).
func (c *CookieStore) End(ctx context.Context, token string) (Session, error) {
	s, handle, err := c.open(token)
	if err != nil || c.Revocations == nil {
		return s, err
	}
	first, err := c.Revocations.endHandle(ctx, handle, s.Expiry.Sub(c.clock()))
	switch {
	case err != nil:
		return Session{}, err
	case !first:
		return Session{}, ErrNoSession
	}
	return s, nil
}

// EndSID ends, on every instance, the sessions opened under the provider
// session sid before now. It needs a revocation list. The cookie store cannot
// count sessions it does not hold, so it reports 0.
func (c *CookieStore) EndSID(ctx context.Context, issuer, sid, _ string) (int, error) {
	if c.Revocations == nil {
		return 0, errNoRevocations
	}
	return 0, c.Revocations.revoke(ctx, "sid", issuer, sid, c.clock())
}

// EndSubject ends, on every instance, the user's sessions issued before now.
// It needs a revocation list and reports 0, like EndSID.
func (c *CookieStore) EndSubject(ctx context.Context, issuer, subject string) (int, error) {
	if c.Revocations == nil {
		return 0, errNoRevocations
	}
	return 0, c.Revocations.revoke(ctx, "sub", issuer, subject, c.clock())
}

var errNoRevocations = errors.New("logout: a CookieStore needs a RevocationList to end sessions it does not hold")

func (c *CookieStore) rememberOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if c.Revocations == nil {
		return false, errNoRevocations
	}
	return c.Revocations.rememberOnce(ctx, key, ttl)
}

func (c *CookieStore) forget(ctx context.Context, key string) error {
	if c.Revocations == nil {
		return errNoRevocations
	}
	return c.Revocations.forget(ctx, key)
}

func (c *CookieStore) checkRevoked(ctx context.Context, handle []byte, s Session) error {
	if c.Revocations == nil {
		return nil
	}
	revoked, err := c.Revocations.revoked(ctx, handle, s)
	if err != nil {
		return err
	}
	if revoked {
		return ErrNoSession
	}
	return nil
}

func (c *CookieStore) seal(handle []byte, s Session) (string, error) {
	if !s.Expiry.After(c.clock()) {
		return "", fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	plain := append(handle[:handleLen:handleLen], encodeSession(s)...)
	sealed := c.aeads[0].Seal(nil, nil, plain, c.aad)
	if n := base64.RawURLEncoding.EncodedLen(len(sealed)); n > maxCookieTokenLen {
		return "", fmt.Errorf("logout: sealed session is %d bytes, over the cookie store's limit of %d; keep fewer or smaller tokens in it, or use RedisStore", n, maxCookieTokenLen)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (c *CookieStore) open(token string) (Session, []byte, error) {
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
		if err != nil || !s.Expiry.After(c.clock()) {
			return Session{}, nil, ErrNoSession
		}
		return s, plain[:handleLen], nil
	}
	return Session{}, nil, ErrNoSession
}

func (c *CookieStore) clock() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
