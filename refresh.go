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
// old one is used again, so refreshes of one session never run side by side:
// requests of this instance share one refresh, and instances sharing a
// RedisStore or a RevocableCookieStore take turns through a short lease in
// Redis; each stores its tokens only if the stored refresh token is still
// the one it redeemed. A request that lost the race gets the session the
// winner stored.
//
// When the provider refuses the session's current refresh token (its
// session was revoked, expired or logged out), the app session is ended too
// and Refresh returns ErrNoSession: a failed refresh is how an app learns
// that the provider's session is gone. A bare [CookieStore] cannot tell a
// current token from one another instance already rotated, so it counts
// every refusal as current: run it on one instance, or use a store that
// shares state.
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
	res := h.refreshes.do(carried.token, func() refreshResult {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout+2*h.provider.timeout)
		defer cancel()
		ctx, span := h.tel.span(ctx, spanRefresh, internalSpan)
		defer span.End()
		res := h.refresh(ctx, carried.token, seen)
		h.tel.refresh(ctx, span, res)
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

type refreshResult struct {
	s       Session
	token   string
	err     error
	outcome refreshOutcome // rotated or refused when this refresh did either; see refreshOutcomeOf
}

func (h *Handler) refresh(ctx context.Context, token, seen string) refreshResult {
	rs, shared := h.store.(refreshSync)
	if shared {
		release, err := rs.lease(ctx, token)
		if errors.Is(err, errLeaseHeld) {
			// Another instance is refreshing this session: wait for it to
			// finish and take what it stored.
			return h.awaitRefresh(ctx, rs, token)
		}
		if err != nil {
			return refreshResult{err: err}
		}
		defer release()
		// A refresh that finished a moment ago from this very cookie
		// (another tab's, which this request raced) stands: the cookie
		// holds a spent token.
		if s, newToken, ok, err := rs.settled(ctx, token); err != nil || ok {
			return refreshResult{s: s, token: newToken, err: err}
		}
	}
	s, version, err := h.loadVersion(ctx, token)
	if err != nil {
		return refreshResult{err: err}
	}
	if seen != "" && s.RefreshToken != seen {
		return refreshResult{s: s, token: token}
	}
	if s.RefreshToken == "" {
		return refreshResult{err: errors.New("logout: the session holds no refresh token (ask for offline_access at sign-in)")}
	}
	tok, err := h.provider.Refresh(ctx, s.RefreshToken)
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
	var newToken string
	if shared {
		newToken, err = rs.updateIfVersion(ctx, token, version, next)
		if errors.Is(err, errStaleVersion) {
			// Another instance stored a refresh after this one loaded (its
			// lease had lapsed): its tokens stand, this call's are dropped.
			s, newToken, err := rs.latest(ctx, token)
			return refreshResult{s: s, token: newToken, err: err}
		}
	} else {
		newToken, err = h.store.Update(ctx, token, next)
	}
	if err != nil {
		return refreshResult{err: err}
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "logout: session refreshed", slog.String("sub", s.Subject), slog.String("session", fingerprint(token)))
	return refreshResult{s: next, token: newToken, outcome: refreshRotated}
}

// refused handles the provider's refusal of the refresh token: if it is
// still the session's current one, the provider session is gone, and so is
// the app's; otherwise another refresh won, and its session is the answer.
func (h *Handler) refused(ctx context.Context, token string, s Session) refreshResult {
	if rs, ok := h.store.(refreshSync); ok {
		current, err := rs.isCurrent(ctx, token, s.RefreshToken)
		if err != nil {
			return refreshResult{err: err}
		}
		if !current {
			// This call holds the lease: whoever refreshed has finished.
			s, newToken, err := rs.latest(ctx, token)
			return refreshResult{s: s, token: newToken, err: err}
		}
	}
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
// returns the session as the winning refresh left it.
func (h *Handler) awaitRefresh(ctx context.Context, rs refreshSync, token string) refreshResult {
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
	s, newToken, err := rs.latest(ctx, token)
	return refreshResult{s: s, token: newToken, err: err}
}

func (h *Handler) loadVersion(ctx context.Context, token string) (Session, string, error) {
	if rs, ok := h.store.(refreshSync); ok {
		return rs.loadVersion(ctx, token)
	}
	s, err := h.store.Load(ctx, token)
	return s, "", err
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
