// SPDX-License-Identifier: Apache-2.0

// The sign-in side: starting a session, reading it on each request, and
// replacing it after a refresh.

package logout

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// StartSession stores s as the session of this browser and sets its cookie;
// call it from the sign-in callback once the ID token is verified. A session
// the request already carried is ended first, so sign-in always starts a new
// one (no session fixation). A zero IssuedAt becomes now and a zero Expiry
// now plus Config.SessionLifetime. A signed-out signal the browser still
// holds from a logout is expired (see [Handler.BroadcastScript]), so that
// the other tabs do not hear of a logout the user has just undone.
func (h *Handler) StartSession(w http.ResponseWriter, r *http.Request, s Session) error {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	carried := h.jar.read(r)
	if carried.token != "" {
		handle := h.handleOf(carried.token)
		sctx, call := h.tel.store(ctx, storeEnd)
		old, err := h.store.End(sctx, carried.token)
		call.end(err)
		if err != nil && !errors.Is(err, ErrNoSession) {
			return err
		}
		if err == nil {
			reportEnd(ctx, h.onEnd, SessionEnd{Reason: EndReplaced, Issuer: old.Issuer, Subject: old.Subject, SessionID: old.SessionID, Handle: handle})
		}
	}
	now := time.Now()
	if s.IssuedAt.IsZero() {
		s.IssuedAt = now
	}
	if s.Expiry.IsZero() {
		s.Expiry = now.Add(h.lifetime)
	}
	if s.LastSeen.IsZero() {
		s.LastSeen = now
	}
	sctx, call := h.tel.store(ctx, storeSave)
	token, err := h.store.Save(sctx, s)
	call.end(err)
	if err != nil {
		return err
	}
	if h.jar.reauthMarked(r) {
		h.jar.clearReauth(w)
	}
	if err := h.jar.write(w, carried, token, s.Expiry); err != nil {
		return err
	}
	h.jar.clearSignedOut(w, r)
	return nil
}

// PromptLogin reports whether the browser signed out with re-authentication
// asked (Config.ReauthenticateAfterLogout, or "sign out everywhere") and has
// not signed in since: the sign-in route then sends prompt=login, so the
// provider asks for credentials again instead of passing the user through.
// [Handler.StartSession] clears the mark.
//
//	if h.PromptLogin(r) { opts = append(opts, oauth2.SetAuthURLParam("prompt", "login")) }
//
// Whether the provider passes prompt=login on to an upstream identity
// provider (enterprise SSO) is the provider's affair: Scalekit does not
// document it.
func (h *Handler) PromptLogin(r *http.Request) bool {
	return h.jar.reauthMarked(r)
}

// Session returns the session of the request's browser, or ErrNoSession.
//
// Below [Handler.Middleware] it returns what the middleware loaded, with no
// store call. Otherwise it loads the session itself and, with an idle
// timeout, renews it where that needs no response: a RedisStore pushes the
// record's TTL in the same command. A cookie store cannot rewrite its cookie
// without the response, so it only checks the idle timeout here: apps on a
// cookie store with IdleTimeout use the middleware, or their users' sessions
// end IdleTimeout after sign-in however busy they are.
func (h *Handler) Session(r *http.Request) (Session, error) {
	if l, ok := r.Context().Value(loadedKey{}).(*loaded); ok && l.h == h {
		return l.s, l.err
	}
	token := h.jar.read(r).token
	if token == "" {
		return Session{}, ErrNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if rn, ok := h.store.(Renewer); ok && h.idle > 0 {
		ctx, call := h.tel.store(ctx, storeRenew)
		s, _, err := rn.Renew(ctx, token, h.idle)
		call.end(err)
		h.reportIfLapsed(ctx, err)
		return s, err
	}
	ctx, call := h.tel.store(ctx, storeLoad)
	s, err := h.store.Load(ctx, token)
	call.end(err)
	h.reportIfLapsed(ctx, err)
	return s, err
}

// Middleware loads the request's session once, renews it for the idle
// timeout (writing the cookie again when the store gave a new token), and
// hands it to next in the request's context, where [Handler.Session] and
// [SessionFromContext] read it without another store call. A request without
// a session, or whose session ended, passes through with ErrNoSession in the
// context; a store failure passes through with its error, so next can tell
// "signed out" from "cannot tell". It never answers the request itself.
//
// Wrap the routes that read the session, not the logout endpoints: a logout
// reads and ends the session in one store call, and a load before it would
// cost a second round trip.
func (h *Handler) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := &loaded{h: h, err: ErrNoSession}
		if carried := h.jar.read(r); carried.token != "" {
			ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
			var token string
			l.s, token, l.err = h.renew(ctx, carried.token)
			if l.err == nil {
				// A cookie whose session a refresh on this instance replaced
				// (a store that shares nothing) gives way to the new one.
				if next, ok := h.refreshes.settled.replacedBy(l.s.RefreshToken); ok {
					if s, t, err := h.renew(ctx, next); err == nil {
						l.s, token = s, t
					}
				}
			}
			if lapsed := asLapsed(l.err); lapsed != nil {
				// Seen ending: report it once, and take the cookie away so
				// the next requests do not bring it again.
				h.reportLapsed(ctx, lapsed)
				h.jar.expire(w, carried)
			}
			cancel()
			if l.err == nil && token != carried.token {
				if err := h.jar.write(w, carried, token, l.s.Expiry); err != nil {
					l.s, l.err = Session{}, err
				}
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), loadedKey{}, l)))
	})
}

// renew loads the token's session and records its use, where the store can.
func (h *Handler) renew(ctx context.Context, token string) (Session, string, error) {
	if rn, ok := h.store.(Renewer); ok {
		ctx, call := h.tel.store(ctx, storeRenew)
		s, newToken, err := rn.Renew(ctx, token, h.idle)
		call.end(err)
		return s, newToken, err
	}
	ctx, call := h.tel.store(ctx, storeLoad)
	s, err := h.store.Load(ctx, token)
	call.end(err)
	return s, token, err
}

// SessionFromContext returns the session [Handler.Middleware] loaded for the
// request ctx belongs to: ErrNoSession when there is none (or the middleware
// did not run), the store's error when it failed.
func SessionFromContext(ctx context.Context) (Session, error) {
	if l, ok := ctx.Value(loadedKey{}).(*loaded); ok {
		return l.s, l.err
	}
	return Session{}, ErrNoSession
}

type loadedKey struct{}

// loaded is what the middleware found; h tells which Handler's session it is,
// for apps that mount several.
type loaded struct {
	h   *Handler
	s   Session
	err error
}

// UpdateSession replaces the request's session with s, for example after a
// token refresh, and rewrites the cookie. If the session was ended meanwhile
// (by a logout in another tab, say) it returns ErrNoSession and brings
// nothing back.
//
// s is the session as [Handler.Session] returned it, with new tokens: its
// issuer, subject, sid and IssuedAt cannot change (revocations find sessions
// by them). A zero IssuedAt is read from the store first, at the cost of a
// round trip.
func (h *Handler) UpdateSession(w http.ResponseWriter, r *http.Request, s Session) error {
	carried := h.jar.read(r)
	if carried.token == "" {
		return ErrNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if s.IssuedAt.IsZero() {
		sctx, call := h.tel.store(ctx, storeLoad)
		cur, err := h.store.Load(sctx, carried.token)
		call.end(err)
		h.reportIfLapsed(ctx, err)
		if err != nil {
			return err
		}
		s.IssuedAt = cur.IssuedAt
	}
	sctx, call := h.tel.store(ctx, storeUpdate)
	newToken, err := h.store.Update(sctx, carried.token, s)
	call.end(err)
	h.reportIfLapsed(ctx, err)
	if err != nil {
		return err
	}
	return h.jar.write(w, carried, newToken, s.Expiry)
}
