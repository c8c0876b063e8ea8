// SPDX-License-Identifier: Apache-2.0

package scalekittest

// IdP logout, the third layer: a logout that ends a session an upstream
// provider signed in also takes the browser through that provider's own
// logout, for connections with IdP logout on.

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// idpLogout is a logout gone through an upstream's end-session endpoint and
// not yet back, under the state sent with it.
type idpLogout struct {
	up       *Upstream
	rec      *LogoutRequest
	returnTo string // the app's post-logout redirect URI with its state, or "" for the signed-out page
	expires  time.Time
}

// startIDPLogout sends the browser to the upstream's end-session endpoint,
// as an RP of it would (OpenID Connect RP-Initiated Logout 1.0), with the
// connection's logout callback as the post_logout_redirect_uri (developer-docs
// openapi/scalekit.yaml, connectionsOIDCConnectionConfig:
// post_logout_redirect_uri, …/logout/callback; idp_logout_required, "Enable
// IDP logout"). Scalekit's own cookie is cleared already; the app's redirect
// waits for the browser's return.
func (s *Server) startIDPLogout(w http.ResponseWriter, r *http.Request, up *Upstream, rec *LogoutRequest, returnTo string) {
	state := "skl_" + randomText()
	target := up.URL + "/logout?" + url.Values{
		"client_id": {up.clientID()}, "post_logout_redirect_uri": {up.logoutCallback()}, "state": {state},
	}.Encode()
	now := s.now()
	s.mu.Lock()
	for st, l := range s.idpLogouts {
		if !now.Before(l.expires) {
			delete(s.idpLogouts, st)
		}
	}
	s.idpLogouts[state] = &idpLogout{up: up, rec: rec, returnTo: returnTo, expires: now.Add(federationLifetime)}
	rec.IDPLogout, rec.IDPLogoutURL = up.ConnectionID, target
	s.mu.Unlock()
	http.Redirect(w, r, target, http.StatusFound)
}

// idpLogoutCallback is the connection's logout callback, where the upstream
// sends the browser back after its logout: the state names the logout it
// went for (once), which then ends as it would have without the detour: on
// the app's post-logout redirect URI, or on the signed-out page.
func (s *Server) idpLogoutCallback(w http.ResponseWriter, r *http.Request) {
	up := s.upByConn[r.PathValue("connection_id")]
	if up == nil {
		http.NotFound(w, r)
		return
	}
	state := r.URL.Query().Get("state")
	s.mu.Lock()
	l := s.idpLogouts[state]
	delete(s.idpLogouts, state)
	if l != nil && l.up == up {
		l.rec.IDPLogoutReturned = true
	}
	s.mu.Unlock()
	if l == nil || l.up != up || !s.now().Before(l.expires) {
		errorPage(w, "invalid_request: unknown or expired logout state")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if l.returnTo == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, signedOutPage)
		return
	}
	http.Redirect(w, r, l.returnTo, http.StatusFound)
}
