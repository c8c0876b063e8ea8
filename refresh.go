// SPDX-License-Identifier: Apache-2.0

// Refresh: redeeming a session's refresh token and storing what the provider
// gives back.

package logout

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Refresh redeems the request's session's refresh token at the provider and
// stores the tokens it gets back in the session, through the same path as
// [Handler.UpdateSession] (never bringing back a session ended meanwhile),
// so that a later logout sends the freshest ID token as id_token_hint. It
// writes the cookie when the store gives the session a new token, and
// returns the refreshed session. It needs Config.Provider.
//
// Providers rotate refresh tokens, and some refuse the whole session when an
// old one is used again, so a spent refresh token is never redeemed twice:
//
//   - Refreshes of one session never run side by side: requests of this
//     instance share one refresh, and instances sharing a RedisStore or a
//     RevocableCookieStore take turns through a lease in Redis that
//     outlasts the longest a refresh may run (StoreTimeout plus twice the
//     Provider's timeout, and 5 seconds more). Each stores its tokens only
//     if the stored refresh token is still the one it redeemed.
//   - A request that saw the session before another refresh replaced it
//     gets that refresh's session, without a call to the provider, while
//     its access token is still valid.
//   - A cookie that still holds a spent refresh token (another tab's, or
//     one a page request renewed while the refresh ran) is recognised: a
//     RevocableCookieStore records the current refresh token, and a bare
//     CookieStore's refreshes are remembered by this instance for five
//     minutes. The session that replaced it answers instead, and its cookie
//     takes the old one's place.
//   - A request that waited for another instance's refresh which then
//     failed gets an error, never the old session as if it were refreshed.
//
// When the provider refuses the session's current refresh token (its
// session was revoked, expired or logged out), the app session is ended too
// and Refresh returns ErrNoSession: a failed refresh is how an app learns
// that the provider's session is gone. A bare [CookieStore] cannot tell,
// across instances, a current token from one another instance rotated, so
// two tabs refreshing are safe with it on one instance only: with several,
// use a store that shares state.
func (h *Handler) Refresh(w http.ResponseWriter, r *http.Request) (Session, error) {
	if h.provider == nil {
		return Session{}, errors.New("logout: Refresh needs Config.Provider")
	}
	carried := h.jar.read(r)
	if carried.token == "" {
		return Session{}, ErrNoSession
	}
	// The refresh token this request saw, below the middleware: if the
	// store holds another by the time this refresh gets its turn, another
	// request refreshed meanwhile, and its result answers this one too.
	var seen string
	if l, ok := r.Context().Value(loadedKey{}).(*loaded); ok && l.h == h && l.err == nil {
		seen = l.s.RefreshToken
	}
	// Requests for one session share a flight, whichever of its cookies
	// they carry.
	key := "t:" + carried.token
	if n, ok := h.store.(handleNamer); ok {
		if handle := n.handleOf(carried.token); handle != "" {
			key = "h:" + handle
		}
	}
	res := h.refreshes.do(key, func() refreshResult {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.refreshBound())
		defer cancel()
		ctx, span := h.tel.span(ctx, spanRefresh, internalSpan)
		defer span.End()
		var res refreshResult
		if rs, ok := h.store.(refreshSync); ok {
			res = h.refreshShared(ctx, rs, carried.token, seen)
		} else {
			res = h.refreshLocal(ctx, carried.token, seen)
		}
		h.tel.refresh(ctx, span, res)
		h.reportIfLapsed(ctx, res.err)
		return res
	})
	if res.err != nil {
		if errors.Is(res.err, ErrNoSession) {
			h.jar.expire(w, carried)
		}
		return Session{}, res.err
	}
	if res.token != carried.token {
		if err := h.jar.write(w, carried, res.token, res.s.Expiry); err != nil {
			return Session{}, err
		}
	}
	return res.s, nil
}

// refreshBound is the longest a refresh may take: its store calls and two
// calls to the provider. The lease across instances lasts
// refreshLeaseMargin longer.
func (h *Handler) refreshBound() time.Duration {
	return h.timeout + 2*h.provider.timeout
}

const refreshLeaseMargin = 5 * time.Second

type refreshResult struct {
	s       Session
	token   string
	err     error
	outcome refreshOutcome // rotated or refused when this refresh did either; see refreshOutcomeOf
}

// answers reports whether s, which a refresh stored after the request saw
// the refresh token seen, answers the request: its access token is still
// valid (or of unknown life).
func answers(s Session, seen string, now time.Time) bool {
	return s.RefreshToken != seen && (s.AccessTokenExpiry.IsZero() || now.Before(s.AccessTokenExpiry))
}

// refreshShared refreshes a session of a store that instances share, under
// its lease.
func (h *Handler) refreshShared(ctx context.Context, rs refreshSync, token, seen string) refreshResult {
	if seen == "" {
		var err error
		if seen, err = rs.carriedRefresh(ctx, token); err != nil {
			return refreshResult{err: err}
		}
	}
	// The lease outlives the refresh by a margin: whatever this refresh
	// still does, no other instance redeems the same token meanwhile.
	release, err := rs.lease(ctx, token, h.refreshBound()+refreshLeaseMargin)
	if errors.Is(err, errLeaseHeld) {
		return h.awaitRefresh(ctx, rs, token, seen)
	}
	if err != nil {
		return refreshResult{err: err}
	}
	defer release()
	// The newest state, under the lease: for a cookie that a refresh
	// replaced, the session that refresh stored.
	s, cur, version, err := rs.loadVersion(ctx, token)
	if err != nil {
		return refreshResult{err: err}
	}
	if answers(s, seen, time.Now()) {
		return refreshResult{s: s, token: cur}
	}
	tok, err := h.redeem(ctx, s)
	if errors.Is(err, ErrRefreshRefused) {
		current, err := rs.isCurrent(ctx, cur, s.RefreshToken)
		if err != nil {
			return refreshResult{err: err}
		}
		if !current {
			// Redeemed by a refresh whose lease had lapsed: its tokens
			// stand.
			s, newToken, _, err := rs.loadVersion(ctx, cur)
			return refreshResult{s: s, token: newToken, err: err}
		}
		return h.refused(ctx, cur, s)
	}
	if err != nil {
		return refreshResult{err: err}
	}
	next, err := refreshedSession(s, tok)
	if err != nil {
		return refreshResult{err: err}
	}
	newToken, err := rs.updateIfVersion(ctx, cur, version, next)
	if errors.Is(err, errStaleVersion) {
		// Another instance stored a refresh after this one loaded (its
		// lease had lapsed): its tokens stand, this call's are dropped.
		s, newToken, _, err := rs.loadVersion(ctx, cur)
		return refreshResult{s: s, token: newToken, err: err}
	}
	if err != nil {
		return refreshResult{err: err}
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "logout: session refreshed", slog.String("sub", s.Subject), slog.String("session", fingerprint(token)))
	return refreshResult{s: next, token: newToken, outcome: refreshRotated}
}

// refreshLocal refreshes a session of a store that keeps no shared state
// (a bare CookieStore, or a store of the app's own): this instance's
// flights keep its refreshes single-flight, and its memory of the recent
// ones tells a spent refresh token from a revoked session.
func (h *Handler) refreshLocal(ctx context.Context, token, seen string) refreshResult {
	s, err := h.store.Load(ctx, token)
	if err != nil {
		return refreshResult{err: err}
	}
	if seen == "" {
		seen = s.RefreshToken
	}
	now := time.Now()
	for range 8 { // a chain of refreshes this instance made from the cookie's tokens
		next, ok := h.refreshes.settled.replacedBy(s.RefreshToken)
		if !ok {
			break
		}
		if s, err = h.store.Load(ctx, next); err != nil {
			return refreshResult{err: err}
		}
		token = next
	}
	if answers(s, seen, now) {
		return refreshResult{s: s, token: token}
	}
	tok, err := h.redeem(ctx, s)
	if errors.Is(err, ErrRefreshRefused) {
		return h.refused(ctx, token, s)
	}
	if err != nil {
		return refreshResult{err: err}
	}
	next, err := refreshedSession(s, tok)
	if err != nil {
		return refreshResult{err: err}
	}
	newToken, err := h.store.Update(ctx, token, next)
	if err != nil {
		return refreshResult{err: err}
	}
	if next.RefreshToken != s.RefreshToken {
		h.refreshes.settled.remember(s.RefreshToken, newToken, time.Now())
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "logout: session refreshed", slog.String("sub", s.Subject), slog.String("session", fingerprint(token)))
	return refreshResult{s: next, token: newToken, outcome: refreshRotated}
}

// redeem sends the session's refresh token to the provider.
func (h *Handler) redeem(ctx context.Context, s Session) (Tokens, error) {
	if s.RefreshToken == "" {
		return Tokens{}, errors.New("logout: the session holds no refresh token (ask for offline_access at sign-in)")
	}
	return h.provider.Refresh(ctx, s.RefreshToken)
}

// refused handles the provider's refusal of the session's current refresh
// token: the provider session is gone, and so is the app's.
func (h *Handler) refused(ctx context.Context, token string, s Session) refreshResult {
	handle := h.handleOf(token)
	if _, err := h.store.End(ctx, token); err != nil && !errors.Is(err, ErrNoSession) {
		return refreshResult{err: err}
	}
	reportEnd(ctx, h.onEnd, SessionEnd{Reason: EndRefreshRefused, Issuer: s.Issuer, Subject: s.Subject, SessionID: s.SessionID, Handle: handle})
	h.log.LogAttrs(ctx, slog.LevelInfo, "logout: the provider refused the refresh token; session ended",
		slog.String("sub", s.Subject), slog.String("session", fingerprint(token)))
	return refreshResult{err: ErrNoSession, outcome: refreshRefused}
}

// awaitRefresh waits until the lease on the session's refresh is free, then
// returns the session as the refresh that held it left it; if that refresh
// stored nothing (it failed, or its instance died), an error.
func (h *Handler) awaitRefresh(ctx context.Context, rs refreshSync, token, seen string) refreshResult {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		held, err := rs.leaseHeld(ctx, token)
		if err != nil {
			return refreshResult{err: err}
		}
		if !held {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return refreshResult{err: fmt.Errorf("logout: waiting for another instance's refresh: %w", ctx.Err())}
		}
	}
	s, newToken, _, err := rs.loadVersion(ctx, token)
	if err != nil {
		return refreshResult{err: err}
	}
	// The holder stored a refresh, or the tokens found were stored before
	// it began and it failed: then their access token is the one it
	// could not renew, and the session found answers nothing.
	if !answers(s, seen, time.Now()) {
		return refreshResult{err: errRefreshLost}
	}
	return refreshResult{s: s, token: newToken}
}

// refreshedSession is s with the tokens of a refresh. The new ID token must
// be the same user's, in the same provider session: it came straight from
// the token endpoint over TLS, which OpenID Connect accepts in place of a
// signature check, but a token for someone else is never stored.
func refreshedSession(s Session, t Tokens) (Session, error) {
	s.AccessToken = t.AccessToken
	s.AccessTokenExpiry = t.Expiry
	if t.RefreshToken != "" {
		s.RefreshToken = t.RefreshToken
	}
	if t.IDToken != "" {
		var claims struct {
			Iss string `json:"iss"`
			Sub string `json:"sub"`
			Sid string `json:"sid"`
		}
		parts := strings.Split(t.IDToken, ".")
		payload, err := base64.RawURLEncoding.DecodeString(partOf(parts, 1))
		if err != nil || len(parts) != 3 || json.Unmarshal(payload, &claims) != nil {
			return Session{}, errors.New("logout: the refreshed ID token is not a JWT")
		}
		if strings.TrimSuffix(claims.Iss, "/") != strings.TrimSuffix(s.Issuer, "/") || claims.Sub != s.Subject || (s.SessionID != "" && claims.Sid != s.SessionID) {
			return Session{}, errors.New("logout: the refreshed ID token names another issuer, user or session")
		}
		s.IDToken = t.IDToken
	}
	return s, nil
}

func partOf(parts []string, i int) string {
	if i < len(parts) {
		return parts[i]
	}
	return ""
}
