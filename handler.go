// SPDX-License-Identifier: Apache-2.0

// The logout endpoint: Handler, its flow from refusal to redirect, and the
// provider's end-session URL.

package logout

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Handler ends sessions. It is immutable after [New] and safe for concurrent
// use.
type Handler struct {
	store          SessionStore
	endSession     string // end-session endpoint without its query
	endSessionBase string // its own query, already encoded, or ""
	clientID       string // sent only without an ID token; "" when not allowed
	postLogout     string
	allowed        []string
	escaped        map[string]string // each allowed URI, query-escaped
	jar            cookieJar
	clear          []*http.Cookie
	idTokenCookie  string
	timeout        time.Duration
	allowGET       bool
	clearSiteData  bool
	reauth         bool
	failClosed     bool
	lifetime       time.Duration
	idle           time.Duration
	provider       *Provider
	backstop       *backstop // nil without a Provider
	refreshes      refreshFlights
	onLogout       func(*http.Request, Session)
	onEnd          endHook
	sessionsPage   string
	onError        func(*http.Request, error)
	log            *slog.Logger
	csrf           *http.CrossOriginProtection
	tel            *telemetry // nil: both providers no-ops
}

// ServeHTTP logs the user out. See the package documentation for the flow.
//
// It answers 405 to methods other than POST (and GET when allowed), 403 to a
// cross-origin request, 400 to a return_to that is not allowed, all before it
// touches anything. Otherwise it ends the session, expires the cookies and
// redirects the browser to the end-session endpoint: 303 after POST, 302 after
// GET. A fetch or XHR caller, which cannot end the provider's session itself,
// gets 200 and JSON naming the URL the page must navigate to. Every answer
// carries Cache-Control: no-store.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.logout(w, r, false)
}

// Everywhere returns a handler that logs out like ServeHTTP and also ends
// every other session of the same user, on every device and instance, in the
// same request: "sign out everywhere". The store must be a [Revoker]: a
// [RedisStore] or a [RevocableCookieStore]. With any other store Everywhere
// panics, as [http.Handle] does for a bad pattern, so that the mistake shows
// at start-up rather than as a sign-out that leaves other devices signed in.
func (h *Handler) Everywhere() http.Handler {
	if _, ok := h.store.(Revoker); !ok {
		panic(fmt.Sprintf("logout: Everywhere needs a store that can end a user's other sessions (a RedisStore or a RevocableCookieStore), not a %T", h.store))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.logout(w, r, true) })
}

// logout is the flow of ServeHTTP and Everywhere, in six steps.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, everywhere bool) {
	r, span := h.tel.request(r, spanLogout)
	defer span.End()

	// No answer of a logout endpoint, refusals included, may be cached.
	hdr := w.Header()
	hdr.Set("Cache-Control", "private, no-cache, no-store, must-revalidate")
	hdr.Add("Vary", "Cookie")

	// The moment the user asked: "everywhere" ends the sessions begun
	// before it, here and at the provider.
	clicked := time.Now()

	// 1. Refuse anything that is not a same-origin logout, touching nothing.
	if err := h.checkRequest(w, r); err != nil {
		h.tel.logout(r.Context(), span, everywhere, refusedLogout(err))
		return
	}
	postLogout, ok := h.returnTo(w, r)
	if !ok {
		h.tel.logout(r.Context(), span, everywhere, logoutRefusedBadRequest)
		return
	}

	// 2. End the session with one atomic store call. The context survives a
	// client that disconnects halfway, so a revocation is never cut short.
	// "Everywhere" first ends the user's other sessions, while this one
	// still names the user: should that fail, a second try can do it all.
	// ended is what the logout knows of the session: ended here, or found
	// lapsed, or ended but not confirmed (storeErr says which).
	var ended, user Session
	var storeErr error
	acknowledged := false
	carried := h.jar.read(r)
	token := carried.token
	if token != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
		oe := h.ownOtherEnder()
		if everywhere && oe != nil {
			user, storeErr = h.endElsewhere(ctx, oe, token, clicked)
		}
		if storeErr == nil || !h.failClosed {
			var err error
			ended, acknowledged, err = h.endThis(ctx, token)
			storeErr = cmp.Or(storeErr, err)
			if everywhere && oe == nil && err == nil && ended.Subject != "" {
				// A Revoker of the app's own ends the others after this one.
				user = ended
				sctx, call := h.tel.store(ctx, storeEndSubject)
				_, storeErr = revokeAndReport(sctx, h.store.(Revoker), h.onEnd, EndEverywhere, ended.Issuer, ended.Subject, "", clicked)
				call.end(storeErr)
				afterMilli(clicked)
			}
		}
		cancel()
	}
	if everywhere && storeErr == nil && user.Subject == "" {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "logout: sign out everywhere without a session; the user's other devices were not signed out",
			slog.String("session", fingerprint(token)))
	}

	// 3. Expire every app cookie, whatever happened above, and mark the
	// browser for a fresh authentication if asked. Only a store failure
	// under FailOnStoreError keeps them: its 503 says nothing changed, and
	// trying again must find the session to end.
	if storeErr == nil || !h.failClosed {
		h.jar.expire(w, carried)
		for _, c := range h.clear {
			http.SetCookie(w, c)
		}
		if h.reauth || everywhere {
			h.jar.markReauth(w, h.lifetime)
		}
		h.jar.markSignedOut(w)
		if h.clearSiteData {
			hdr.Set("Clear-Site-Data", `"cookies", "storage"`)
		}
	}

	// 4. Have the backstop end the provider's session from the server too,
	// whatever the store did, in case the browser never gets there.
	// With its store in Redis, the jobs are recorded there before this
	// answers (one round trip more), so that any instance finishes them
	// should this one die.
	if h.backstop != nil {
		var jobs []backstopJob
		if everywhere && user.Subject != "" {
			jobs = append(jobs, h.backstop.othersJob(user.Subject, user.SessionID, clicked))
		}
		if ended.SessionID != "" {
			jobs = append(jobs, h.backstop.sessionJob(ended.SessionID))
		}
		if len(jobs) > 0 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
			h.backstop.schedule(ctx, storeErr != nil && !errors.Is(storeErr, ErrNotConfirmed), jobs...)
			cancel()
		}
	}

	// 5. Tell the app what happened: a store failure to OnError (and, with
	// FailOnStoreError, a 503 instead of the redirect), a logout that ended
	// a session to OnLogout.
	h.tel.logout(r.Context(), span, everywhere, logoutOutcomeOf(storeErr, acknowledged))
	if storeErr != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "logout: session store failed; the session may outlive this logout",
			slog.String("session", fingerprint(token)), slog.Any("error", storeErr))
		if h.onError != nil {
			h.onError(r, storeErr)
		}
		if h.failClosed {
			h.reply(w, r, http.StatusServiceUnavailable, "", "session_store_unavailable")
			return
		}
	} else if acknowledged {
		if h.log.Enabled(r.Context(), slog.LevelInfo) { // the fingerprint costs a hash
			h.log.LogAttrs(r.Context(), slog.LevelInfo, "logout",
				slog.String("sub", ended.Subject), slog.String("session", fingerprint(token)))
		}
		if h.onLogout != nil {
			h.onLogout(r, ended)
		}
	}

	// 6. Send the browser through the provider's logout, always: the
	// provider finds its session by its own cookie, which the browser
	// carries whatever this app's store knew, so even with no session here
	// (a second click, a store failure) the provider's may be alive. How
	// the browser comes back depends on what the provider can trust; see
	// EndSessionURL.
	if ended.IDToken == "" {
		ended.IDToken = h.plainIDToken(r)
	}
	h.reply(w, r, 0, h.EndSessionURL(ended.IDToken, postLogout, rand.Text()), "")
}

// endThis ends token's session in one store call and reports the ending.
func (h *Handler) endThis(ctx context.Context, token string) (ended Session, acknowledged bool, err error) {
	sctx, call := h.tel.store(ctx, storeEnd)
	ended, err = h.store.End(sctx, token)
	call.end(err)
	lapsed := asLapsed(err)
	if lapsed != nil {
		// Over for the app, but its ID token still helps the provider.
		h.reportLapsed(ctx, lapsed)
		ended = lapsed.s
	}
	if errors.Is(err, ErrNoSession) {
		err = nil
	}
	acknowledged = err == nil && lapsed == nil && (ended.Subject != "" || ended.IDToken != "")
	if acknowledged {
		reportEnd(ctx, h.onEnd, SessionEnd{Reason: EndLogout, Issuer: ended.Issuer, Subject: ended.Subject, SessionID: ended.SessionID, Handle: h.handleOf(token)})
	}
	return ended, acknowledged, err
}

// checkRequest enforces the method and the origin, replying itself on error.
func (h *Handler) checkRequest(w http.ResponseWriter, r *http.Request) error {
	var err error
	switch {
	case r.Method == http.MethodPost:
		err = h.csrf.Check(r)
	case r.Method == http.MethodGet && h.allowGET:
		err = checkGETOrigin(r)
	default:
		allow := "POST"
		if h.allowGET {
			allow = "GET, POST"
		}
		w.Header().Set("Allow", allow)
		http.Error(w, "logout: method not allowed", http.StatusMethodNotAllowed)
		return errMethodNotAllowed
	}
	if err != nil {
		http.Error(w, "logout: cross-origin logout refused", http.StatusForbidden)
	}
	return err
}

// checkGETOrigin applies CrossOriginProtection's rule to a GET, which it never
// blocks itself: only a same-origin or user-typed navigation may log out. A
// browser without Fetch Metadata is judged by Origin, then by Referer, each
// compared with Host. A GET with none of the three (a very old browser on a
// page that suppresses its Referer) cannot be told apart and is accepted:
// AllowGET trades that for links that work.
func checkGETOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site != "same-origin" && site != "none" {
			return errCrossOrigin
		}
		return nil
	}
	for _, h := range [...]string{"Origin", "Referer"} {
		if v := r.Header.Get(h); v != "" {
			if u, err := url.Parse(v); err != nil || u.Host != r.Host {
				return errCrossOrigin
			}
			return nil
		}
	}
	return nil
}

var (
	errCrossOrigin      = errors.New("cross-origin request")
	errMethodNotAllowed = errors.New("method not allowed")
)

// returnTo picks the post-logout redirect URI: the configured one, or the
// request's return_to when it exactly matches an allowed one.
func (h *Handler) returnTo(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.URL.RawQuery == "" && (r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0) {
		return h.postLogout, true // nothing to parse: the usual case
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "logout: malformed request", http.StatusBadRequest)
		return "", false
	}
	values := r.Form["return_to"]
	switch {
	case len(values) == 0:
		return h.postLogout, true
	case len(values) == 1 && slices.Contains(h.allowed, values[0]):
		return values[0], true
	default:
		http.Error(w, "logout: return_to is not an allowed post-logout redirect URI", http.StatusBadRequest)
		return "", false
	}
}

// plainIDToken is the ID token of Config.IDTokenCookie, when it is set and
// its value has the shape of a JWT.
func (h *Handler) plainIDToken(r *http.Request) string {
	if h.idTokenCookie == "" {
		return ""
	}
	c, err := r.Cookie(h.idTokenCookie)
	if err != nil || len(c.Value) > maxEndSessionURL || strings.Count(c.Value, ".") != 2 {
		return ""
	}
	for _, part := range strings.Split(c.Value, ".") {
		if part == "" || strings.Trim(part, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return ""
		}
	}
	return c.Value
}

// EndSessionURL returns the provider's end-session URL for the given ID token
// (may be empty), post-logout redirect URI and state. The base comes from the
// configuration, never from the request, so a spoofed Host header cannot move
// it.
//
// With an ID token it carries id_token_hint, post_logout_redirect_uri and
// state, exactly what Scalekit's own SDKs send. Without one the provider
// cannot trust a return address, so post_logout_redirect_uri and state go
// only with client_id, and only when Config.PostLogoutWithClientID says the
// provider honours that; otherwise the URL is the bare endpoint, and the
// provider ends its session and shows its own page. An ID token that would
// take the URL past 8,000 bytes is left out, as if there were none, rather
// than risk a 414 at the provider.
//
// state is random and not checked when the browser comes back: by then the
// logout is complete on the app's side, and the post-logout page must act on
// nothing in its URL. It only lets logs match a return to its logout.
func (h *Handler) EndSessionURL(idTokenHint, postLogoutRedirectURI, state string) string {
	build := func(hint string) string {
		clientID := ""
		if hint == "" {
			if h.clientID == "" {
				postLogoutRedirectURI, state = "", ""
			}
			clientID = h.clientID
		}
		var b strings.Builder
		b.Grow(len(h.endSession) + len(h.endSessionBase) + len(hint) + len(postLogoutRedirectURI)*3/2 + len(state) + len(clientID) + 80)
		b.WriteString(h.endSession)
		sep := byte('?')
		param := func(k, v string) {
			if v == "" {
				return
			}
			b.WriteByte(sep)
			sep = '&'
			b.WriteString(k)
			b.WriteByte('=')
			if e, ok := h.escaped[v]; ok {
				b.WriteString(e)
			} else {
				b.WriteString(url.QueryEscape(v))
			}
		}
		if h.endSessionBase != "" {
			b.WriteByte('?')
			b.WriteString(h.endSessionBase)
			sep = '&'
		}
		param("id_token_hint", hint)
		param("post_logout_redirect_uri", postLogoutRedirectURI)
		param("state", state)
		param("client_id", clientID)
		return b.String()
	}
	u := build(idTokenHint)
	if len(u) > maxEndSessionURL && idTokenHint != "" {
		u = build("")
	}
	return u
}

// maxEndSessionURL keeps the redirect under the 8 KB request-line limit common
// to web servers and proxies.
const maxEndSessionURL = 8000

// reply redirects a browser navigation, or answers a script with JSON.
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, status int, target, errCode string) {
	if isScript(r) {
		w.Header().Set("Content-Type", "application/json")
		body := map[string]string{"location": target}
		if errCode != "" {
			body = map[string]string{"error": errCode}
		}
		w.WriteHeader(cmp.Or(status, http.StatusOK))
		json.NewEncoder(w).Encode(body)
		return
	}
	if errCode != "" {
		http.Error(w, "logout: the session store is unavailable; try again", status)
		return
	}
	code := http.StatusSeeOther
	if r.Method == http.MethodGet {
		code = http.StatusFound
	}
	// The target is an absolute URL this package built and escaped, so it
	// goes out as it is, without http.Redirect parsing it again.
	w.Header().Set("Location", target)
	w.WriteHeader(code)
}

// isScript tells a fetch or XHR call from a navigation. Browsers say so in
// Sec-Fetch-Mode; older clients are judged by their Accept header.
//
// The JSON names the end-session URL, ID token included, to the page's own
// scripts: only a same-origin request gets here, the same URL then sits in
// the browser's history once the page navigates to it, and a script that can
// read it can already act as the user. Pages that want no token in script
// reach use a form.
func isScript(r *http.Request) bool {
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		return mode != "navigate" && mode != "nested-navigate"
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// Close stops the backstop taking new jobs and waits, until ctx is done, for
// the ones this instance scheduled (their grace periods included), so that a
// deploy does not drop them. When ctx ends first, jobs waiting in this
// process are abandoned and reported to OnBackstopError and the log; jobs
// recorded in Redis stay there, for the other instances or the app's next
// start, and are not reported. Either way it then returns ctx's error. It
// also stops the backstop's poller. Call it on shutdown, after the HTTP
// server stopped serving. Without a Provider it returns at once.
func (h *Handler) Close(ctx context.Context) error {
	if h.backstop == nil {
		return nil
	}
	defer h.tel.stopObserving()
	return h.backstop.close(ctx)
}
