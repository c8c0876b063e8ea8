// SPDX-License-Identifier: Apache-2.0

// Session and the SessionStore interface every store implements, with the
// optional interfaces a store may add.

package logout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrNoSession is returned by a [SessionStore] when a token names no live
// session: it never existed, it expired, it was ended, or the token is
// malformed or was tampered with. Callers treat all of these the same way (the
// user is not signed in), so they share one error. Every other error a store
// returns is a fault of the store itself (Redis unreachable, a timeout) and is
// wrapped under a "logout:" prefix; compare with [errors.Is].
var ErrNoSession = errors.New("logout: no session")

// Session is what one OpenID Connect sign-in produced for one browser.
//
// Its String, GoString and LogValue methods leave the tokens out, so a Session
// passed to fmt or log/slog by mistake does not leak them.
type Session struct {
	// Issuer is the provider's issuer URL (the Scalekit environment URL).
	Issuer string
	// Subject is the ID token's "sub" claim (a Scalekit user ID, usr_…).
	Subject string
	// SessionID is the ID token's "sid" claim: the provider's session
	// (Scalekit's ses_…). Back-channel logout names sessions by it.
	SessionID string
	// Email is the ID token's "email" claim, for display.
	Email string

	IDToken      string
	AccessToken  string
	RefreshToken string

	// IssuedAt is when the app session started. A back-channel logout ends
	// sessions issued before it and leaves later sign-ins alone.
	IssuedAt time.Time
	// Expiry is when the app session ends, whatever the cookie says and
	// however recently it was used: its absolute timeout.
	Expiry time.Time
	// LastSeen is when the session was last recorded as used, for the idle
	// timeout (Config.IdleTimeout). The cookie stores keep it in the seal;
	// RedisStore keeps idleness in the record's TTL and sets LastSeen when
	// it renews. Zero when nothing recorded it.
	LastSeen time.Time
	// AccessTokenExpiry is when AccessToken expires (from the token
	// response's expires_in), so the app can refresh it in time. Zero if
	// unknown.
	AccessTokenExpiry time.Time

	// Device is a short description of the browser the session was started
	// on, for the user's list of active sessions ("Firefox on Linux, Paris",
	// say): the app decides what, if anything, it records. It is not
	// secret: [RedisStore] keeps it readable beside the encrypted session,
	// at most 200 bytes.
	Device string
}

// SessionStore keeps sessions between requests. A store hands out an opaque
// token for each session it saves; the [Handler] keeps that token in the
// session cookie and gives it back to the store on later requests.
//
// Every method is safe for concurrent use, takes a context that bounds any
// network I/O, and returns [ErrNoSession] when the token names no live session.
// Implementations must never log or return a token inside an error.
type SessionStore interface {
	// Save stores a new session and returns the token that names it. The
	// session must have an Expiry in the future.
	Save(ctx context.Context, s Session) (token string, err error)

	// Load returns the session the token names. An expired, ended, unknown,
	// malformed or tampered token gives ErrNoSession.
	Load(ctx context.Context, token string) (Session, error)

	// Update replaces the session the token names with s, for example after
	// a token refresh, and returns the token to use from now on (a store may
	// return the same one). It never brings back a session that was ended in
	// the meantime: then it returns ErrNoSession and stores nothing.
	Update(ctx context.Context, token string, s Session) (newToken string, err error)

	// End ends the session the token names and returns what it held, in one
	// step, so the ID token is in hand before anything is gone. A store that
	// keeps state on a server ([RedisStore], [RevocableCookieStore]) ends it
	// there, atomically: no copy of the token works afterwards, and of two
	// concurrent calls only one gets the session. A store that keeps no state
	// ([CookieStore]) cannot reach copies of its token: it returns what the
	// token holds to every caller, and the Handler's expired cookie is all
	// that ends the session in that browser. Ending a session that is not
	// there returns ErrNoSession, which callers treat as success. A store
	// that ended the session but cannot confirm the ending will last
	// (replicas that did not confirm it: [ErrNotConfirmed]) returns what the
	// session held with the error, so the ID token still reaches the
	// provider while the logout is reported as not done.
	End(ctx context.Context, token string) (Session, error)
}

// Renewer is a [SessionStore] that can end sessions left idle. The [Handler]
// needs one for Config.IdleTimeout; [RedisStore], [CookieStore] and
// [RevocableCookieStore] implement it. It is a separate interface so that a
// store written for an earlier version keeps compiling.
type Renewer interface {
	// Renew loads the session the token names, as Load does, and records
	// that it was used now, so that it lives another idle period. A session
	// unused for idle is gone: ErrNoSession. It returns the token to use from
	// now on: the same one, or a new one the Handler writes to the cookie (a
	// store may rewrite only now and then, to spare most responses a
	// cookie). Renewal never extends a session past its Expiry and never
	// brings back a session that was ended.
	Renew(ctx context.Context, token string, idle time.Duration) (s Session, newToken string, err error)
}

// binding is what a Handler tells the store it was given: the session
// cookie's name (the cookie stores bind their seals to it), the idle timeout,
// and the format to write sessions in. The Handler keeps the bound copy.
type binding struct {
	cookie string
	idle   time.Duration
	format byte
}

// bindable is a store of this package.
type bindable interface {
	bind(binding) SessionStore
}

// idleSince reports whether a session last used at last (or, when that is
// zero, begun at start) has been idle for idle or longer at now.
func idleSince(s Session, idle time.Duration, now time.Time) bool {
	last := s.LastSeen
	if last.IsZero() {
		last = s.IssuedAt
	}
	return idle > 0 && !last.IsZero() && !now.Before(last.Add(idle))
}

// Revoker ends sessions by the provider's identifiers, on every instance at
// once: back-channel logout, webhooks and "sign out everywhere" need it.
// [RedisStore] and [RevocableCookieStore] implement it; a bare [CookieStore]
// keeps no state it could revoke, so it does not.
//
// Both methods are idempotent: ending sessions that are already gone is not an
// error, so a notification delivered twice, or retried after a timeout whose
// command landed anyway, does no harm.
type Revoker interface {
	// EndSID ends every session opened under the provider session sid of
	// issuer, and returns how many it ended where the store can tell.
	EndSID(ctx context.Context, issuer, sid string) (int, error)
	// EndSubject ends every session of the user that began before the
	// given time, and returns how many it ended where the store can tell.
	// A sign-in made after it stays: a notification that arrives late
	// must not sign the user out of a session they started since.
	EndSubject(ctx context.Context, issuer, subject string, before time.Time) (int, error)
}

// String describes the session without its tokens.
func (s Session) String() string {
	return fmt.Sprintf("logout.Session{sub=%q sid=%q expiry=%s}", s.Subject, s.SessionID, s.Expiry.UTC().Format(time.RFC3339))
}

// GoString is String, so %#v does not print the tokens either.
func (s Session) GoString() string { return s.String() }

// LogValue makes log/slog print the subject and provider session only.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("sub", s.Subject), slog.String("sid", s.SessionID))
}

// fingerprint names a token in logs without revealing it: 8 bytes of the
// SHA-256 of its first 16 characters. Both stores' tokens start with 96 random
// bits in those characters (the Redis store's session ID, the seal's nonce), so
// they tell sessions apart, and neither store puts key material there: the
// Redis token's key starts at its 22nd character, and a sealed cookie's
// ciphertext after its nonce.
func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token[:min(len(token), fingerprintLen)]))
	return hex.EncodeToString(sum[:8])
}

const fingerprintLen = 16
