package logout

import (
	"context"
	"crypto/cipher"
	"encoding/base64"
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
// What it cannot do alone: End cannot destroy anything. Logout removes the
// cookie from this browser, but a copy of the cookie taken before logout (by
// malware, a shared computer, a leaked log) stays valid until the session
// expires. Keep sessions short with this store, or use [RedisStore], whose
// logout ends the session for every copy.
//
// Sealed sessions that pass one cookie's 4 KB are split across numbered
// cookies by the [Handler]; past maxCookieTokenLen bytes Save refuses the
// session with a clear error rather than let the browser drop it silently.
type CookieStore struct {
	aeads []cipher.AEAD // aeads[0] seals; all of them open
	aad   []byte

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

// Save seals the session.
func (c *CookieStore) Save(_ context.Context, s Session) (string, error) {
	if !s.Expiry.After(c.clock()) {
		return "", fmt.Errorf("logout: session expiry %v is not in the future", s.Expiry)
	}
	sealed := c.aeads[0].Seal(nil, nil, encodeSession(s), c.aad)
	if n := base64.RawURLEncoding.EncodedLen(len(sealed)); n > maxCookieTokenLen {
		return "", fmt.Errorf("logout: sealed session is %d bytes, over the cookie store's limit of %d; keep fewer or smaller tokens in it, or use RedisStore", n, maxCookieTokenLen)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Load opens the sealed session.
func (c *CookieStore) Load(_ context.Context, token string) (Session, error) {
	return c.open(token)
}

// Update seals s in place of the session the token holds, if that one is
// still valid.
func (c *CookieStore) Update(ctx context.Context, token string, s Session) (string, error) {
	if _, err := c.open(token); err != nil {
		return "", err
	}
	return c.Save(ctx, s)
}

// End returns what the sealed session held. It cannot stop a copy of the
// cookie from working: see the type's documentation.
func (c *CookieStore) End(_ context.Context, token string) (Session, error) {
	return c.open(token)
}

func (c *CookieStore) open(token string) (Session, error) {
	if len(token) > maxCookieTokenLen {
		return Session{}, ErrNoSession
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Session{}, ErrNoSession
	}
	for _, a := range c.aeads {
		plain, err := a.Open(nil, nil, sealed, c.aad)
		if err != nil {
			continue
		}
		s, err := decodeSession(plain)
		if err != nil || !s.Expiry.After(c.clock()) {
			return Session{}, ErrNoSession
		}
		return s, nil
	}
	return Session{}, ErrNoSession
}

func (c *CookieStore) clock() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
