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
	// Expiry is when the app session ends, whatever the cookie says.
	Expiry time.Time
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
	// there returns ErrNoSession, which callers treat as success.
	End(ctx context.Context, token string) (Session, error)
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
