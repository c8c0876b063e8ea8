// SPDX-License-Identifier: Apache-2.0

// Active sessions: listing where a user is signed in, and signing out one of
// those places, or all but this one (for "sign out other devices" and for
// the first half of "sign out everywhere").

package logout

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
)

// Active sessions: where a user is signed in, and signing out one of those
// places, or all but this one. The list needs a store that can list
// (a [Lister]: [RedisStore]); "sign out other devices" needs a [Revoker] that
// can spare one session ([RedisStore], [RevocableCookieStore]).

// A Lister is a store that can list a user's sessions and end one of them by
// the handle it listed, without opening any: [RedisStore] is one. A cookie
// store cannot list sessions it does not hold.
type Lister interface {
	ListSessions(ctx context.Context, issuer, subject, cursor string) ([]SessionInfo, string, error)
	EndHandle(ctx context.Context, issuer, subject, handle string) (bool, error)
}

// otherEnder is a store that can end every session of a user but one.
type otherEnder interface {
	// endOthers ends the sessions of token's user begun at or before
	// before, all but token's own, and returns the handles of those it
	// ended when the store can name them.
	endOthers(ctx context.Context, token string, before time.Time) (ended []string, err error)
	// identify returns token's session, or its lapsed error when it is
	// over by itself, without recording anything ("sign out everywhere"
	// learns from it whose sessions to end); a session that was ended is
	// ErrNoSession, lapsed or not.
	identify(ctx context.Context, token string) (Session, error)
}

var errCannotList = errors.New("logout: the store cannot list sessions (a cookie store holds none); use a RedisStore")

// ListSessions returns the app sessions of the request's user, at most
// MaxListPage of them from cursor on (start with ""), and the cursor of the
// next page ("" after the last), with the request's own session marked
// Current. It costs one round trip beside loading the request's session
// (none below [Handler.Middleware]).
func (h *Handler) ListSessions(r *http.Request, cursor string) ([]SessionInfo, string, error) {
	l, ok := h.store.(Lister)
	if !ok {
		return nil, "", errCannotList
	}
	s, token, err := h.requestSession(r)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	sctx, call := h.tel.store(ctx, storeList)
	list, next, err := l.ListSessions(sctx, s.Issuer, s.Subject, cursor)
	call.end(err)
	if err != nil {
		return nil, "", err
	}
	if n, ok := h.store.(handleNamer); ok {
		own := n.handleOf(token)
		for i := range list {
			list[i].Current = list[i].Handle == own
		}
	}
	return list, next, nil
}

// EndSessionByHandle ends the request's user's session that handle names,
// as ListSessions gave it: only that user's sessions are searched, so a
// handle of someone else's ends nothing (ErrNoSession). It ends the app
// session; that device's provider session, if the user wants it gone too,
// is ended through [Handler.EndProviderSession]. Ending the request's own
// session this way expires its cookie as a logout would, without the
// provider's end-session page.
func (h *Handler) EndSessionByHandle(w http.ResponseWriter, r *http.Request, handle string) error {
	l, ok := h.store.(Lister)
	if !ok {
		return errCannotList
	}
	s, token, err := h.requestSession(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	defer cancel()
	sctx, call := h.tel.store(ctx, storeEndHandle)
	ended, err := l.EndHandle(sctx, s.Issuer, s.Subject, handle)
	call.end(err)
	if err != nil {
		return err
	}
	if !ended {
		return ErrNoSession
	}
	reportEnd(ctx, h.onEnd, SessionEnd{Reason: EndByUser, Issuer: s.Issuer, Subject: s.Subject, Handle: handle})
	if n, ok := h.store.(handleNamer); ok && n.handleOf(token) == handle {
		h.jar.expire(w, h.jar.read(r))
	}
	return nil
}

// EndOtherSessions signs the request's user out of every other device: it
// ends every app session of the user but the request's own and, with a
// [Provider], at once every provider session of the user but this one's. It
// returns how many app sessions it ended, where the store can tell (a
// [RevocableCookieStore] cannot: it records that all the user's sessions
// begun until now are ended but this one).
func (h *Handler) EndOtherSessions(w http.ResponseWriter, r *http.Request) (int, error) {
	oe, ok := h.store.(otherEnder)
	if !ok {
		return 0, errors.New("logout: the store cannot end a user's other sessions; use a RedisStore or a RevocableCookieStore")
	}
	clicked := time.Now()
	s, token, err := h.requestSession(r)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	defer cancel()
	ended, err := h.endOthers(ctx, oe, token, s, clicked, EndOtherDevices)
	afterMilli(clicked)
	if err != nil {
		return 0, err
	}
	if h.backstop != nil && s.Subject != "" {
		h.backstop.schedule(ctx, false, h.backstop.othersJob(s.Subject, s.SessionID, clicked))
	}
	return len(ended), nil
}

// endElsewhere is the first half of "sign out everywhere" with one of the
// package's stores (Handler.logout ends this session after it): it ends the
// sessions of token's user begun before clicked, all but token's own, and
// returns the session that names the user (the zero Session when token
// names none). It records nothing before those endings, so that when they
// fail, a second try finds the user again; a session that lapsed still
// names its user, one that was ended names nobody.
func (h *Handler) endElsewhere(ctx context.Context, oe otherEnder, token string, clicked time.Time) (Session, error) {
	sctx, call := h.tel.store(ctx, storeLoad)
	user, err := oe.identify(sctx, token)
	call.end(err)
	if lapsed := asLapsed(err); lapsed != nil {
		user, err = lapsed.s, nil // the logout's own ending reports the lapse
	}
	if errors.Is(err, ErrNoSession) || (err == nil && user.Subject == "") {
		return Session{}, nil
	}
	if err != nil {
		return Session{}, err
	}
	defer afterMilli(clicked)
	if _, err := h.endOthers(ctx, oe, token, user, clicked, EndEverywhere); err != nil {
		return Session{}, err
	}
	return user, nil
}

// ownOtherEnder is the store as an otherEnder when it is one of the
// package's own; a store that embeds one is a store of the app's own, whose
// EndSubject is the one to call.
func (h *Handler) ownOtherEnder() otherEnder {
	switch st := h.store.(type) {
	case *RedisStore:
		return st
	case *RevocableCookieStore:
		return st
	}
	return nil
}

// endOthers ends the sessions of s's user begun before clicked, all but
// token's, and reports them for reason. It returns the handles of those it
// ended, where the store can name them.
func (h *Handler) endOthers(ctx context.Context, oe otherEnder, token string, s Session, clicked time.Time, reason EndReason) ([]string, error) {
	sctx, call := h.tel.store(ctx, storeEndOthers)
	ended, err := oe.endOthers(sctx, token, clicked)
	call.end(err)
	if err != nil {
		return nil, err
	}
	if _, enumerates := oe.(*RedisStore); !enumerates {
		reportEnd(ctx, h.onEnd, SessionEnd{Reason: reason, Issuer: s.Issuer, Subject: s.Subject})
	}
	for _, handle := range ended {
		reportEnd(ctx, h.onEnd, SessionEnd{Reason: reason, Issuer: s.Issuer, Subject: s.Subject, Handle: handle})
	}
	return ended, nil
}

// ProviderSessions returns the request's user's active sessions at the
// provider (one per device or browser signed in there), through the
// [Provider]'s session API.
func (h *Handler) ProviderSessions(r *http.Request) ([]ProviderSession, error) {
	if h.provider == nil {
		return nil, errors.New("logout: ProviderSessions needs Config.Provider")
	}
	s, _, err := h.requestSession(r)
	if err != nil {
		return nil, err
	}
	return h.provider.UserSessions(r.Context(), s.Subject)
}

// EndProviderSession ends the request's user's provider session sid at
// once, through the [Provider]: only one of the user's own (ErrNoSession
// otherwise). The browser on that device meets the provider's sign-in form
// next time.
func (h *Handler) EndProviderSession(r *http.Request, sid string) error {
	list, err := h.ProviderSessions(r)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list, func(p ProviderSession) bool { return p.ID == sid }) {
		return ErrNoSession
	}
	return h.provider.EndSession(context.WithoutCancel(r.Context()), sid)
}

// SignOutSession returns a handler for a form that ends one listed session:
// a POST with the session's handle in the form field "handle". It applies
// the logout endpoint's rules (POST only, same origin, no-store), then sends
// the browser back to Config.SessionsPage (303), or answers a script with
// JSON {"ended": 1}. A handle that is not one of the user's sessions gets
// 404.
func (h *Handler) SignOutSession() http.Handler {
	if _, ok := h.store.(Lister); !ok {
		panic("logout: SignOutSession needs a store that can list sessions (a RedisStore): " + errCannotList.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.checkSessionsRequest(w, r) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		err := h.EndSessionByHandle(w, r, r.PostFormValue("handle"))
		h.sessionsReply(w, r, 1, err)
	})
}

// SignOutOtherDevices returns a handler for a form that signs the user out
// of every other device (see [Handler.EndOtherSessions]), with the rules and
// answers of [Handler.SignOutSession].
func (h *Handler) SignOutOtherDevices() http.Handler {
	if _, ok := h.store.(otherEnder); !ok {
		panic("logout: SignOutOtherDevices needs a store that can end a user's other sessions (a RedisStore or a RevocableCookieStore)")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.checkSessionsRequest(w, r) {
			return
		}
		n, err := h.EndOtherSessions(w, r)
		h.sessionsReply(w, r, n, err)
	})
}

func (h *Handler) checkSessionsRequest(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Cache-Control", "private, no-cache, no-store, must-revalidate")
	w.Header().Add("Vary", "Cookie")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "logout: method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	if err := h.csrf.Check(r); err != nil {
		http.Error(w, "logout: cross-origin request refused", http.StatusForbidden)
		return false
	}
	return true
}

func (h *Handler) sessionsReply(w http.ResponseWriter, r *http.Request, n int, err error) {
	switch {
	case errors.Is(err, ErrNoSession):
		http.Error(w, "logout: no such session", http.StatusNotFound)
	case err != nil:
		h.log.ErrorContext(r.Context(), "logout: ending sessions failed", "error", err)
		http.Error(w, "logout: the session store is unavailable; try again", http.StatusServiceUnavailable)
	case isScript(r):
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int{"ended": n})
	default:
		w.Header().Set("Location", h.sessionsPage)
		w.WriteHeader(http.StatusSeeOther)
	}
}

// requestSession is the request's session and its token, from the
// middleware when it ran.
func (h *Handler) requestSession(r *http.Request) (Session, string, error) {
	token := h.jar.read(r).token
	if token == "" {
		return Session{}, "", ErrNoSession
	}
	s, err := h.Session(r)
	return s, token, err
}

// SessionInfo is what a store shows of one session without opening it:
// nothing secret, nothing that signs anyone in.
type SessionInfo struct {
	// Handle names the session for [Handler.EndSessionByHandle]: opaque,
	// and useless without the user's own session.
	Handle    string
	CreatedAt time.Time
	// LastSeen is when the session was last used, as far as the store can
	// tell (Redis's idle time of the record); zero when it cannot.
	LastSeen  time.Time
	ExpiresAt time.Time // the absolute expiry
	Device    string    // what the app recorded in Session.Device at sign-in
	// Current marks the session of the request that asked for the list.
	Current bool
}

// MaxListPage bounds the sessions one ListSessions call returns, in one round
// trip; a user with more gets a cursor for the next page.
const MaxListPage = 100
