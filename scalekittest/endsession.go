// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The end-session endpoint, /oidc/logout, and the record of every request it
// received.

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
)

// LogoutRequest records one request to /oidc/logout, for tests to check how
// it arrived and what the server made of it.
type LogoutRequest struct {
	Method         string
	Params         url.Values // the query or form parameters
	HadCookie      bool       // the request carried the server's session cookie
	SecFetchMode   string     // "navigate" for a top-level navigation
	SecFetchDest   string     // "document" for a top-level navigation
	IDTokenSubject string     // sub of a valid id_token_hint
	ClientID       string     // the client named by the hint or by client_id
	EndedSession   string     // the ses_… it ended, or ""
	Status         int
	// RedirectedTo is the post-logout redirect URI, with the state, that
	// the browser is sent back to: at once, or after the upstream's
	// logout (IDPLogout). Empty when it ends on the signed-out page.
	RedirectedTo string
	Error        string // the error page's message, or ""
	// IDPLogout is the connection whose upstream provider the browser was
	// sent through first, because it has IdP logout on
	// ([UpstreamConfig.IDPLogoutRequired]), or "". IDPLogoutURL is the
	// upstream end-session URL it was sent to, and IDPLogoutReturned tells
	// whether the browser came back from it to the connection's logout
	// callback.
	IDPLogout         string
	IDPLogoutURL      string
	IDPLogoutReturned bool
}

// LogoutRequests returns every request /oidc/logout has received.
func (s *Server) LogoutRequests() []LogoutRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LogoutRequest, len(s.logouts))
	for i, rec := range s.logouts {
		out[i] = *rec
		out[i].Params = cloneValues(rec.Params)
	}
	return out
}

// endSession is /oidc/logout, by GET or POST. It checks the request first and
// on any error shows a 400 page, ends nothing and redirects nowhere. Then it
// ends the session its cookie names (a request without the cookie, such as a
// server-side call or a fetch(), ends nothing), clears the cookie, and either
// redirects to post_logout_redirect_uri with state or shows its own
// signed-out page.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	rec := &LogoutRequest{Method: r.Method, SecFetchMode: r.Header.Get("Sec-Fetch-Mode"), SecFetchDest: r.Header.Get("Sec-Fetch-Dest")}
	defer func() {
		s.mu.Lock()
		s.logouts = append(s.logouts, rec)
		s.mu.Unlock()
	}()
	fail := func(msg string) {
		rec.Status, rec.Error = http.StatusBadRequest, msg
		errorPage(w, msg)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		rec.Status = http.StatusMethodNotAllowed
		http.Error(w, "method not allowed", rec.Status)
		return
	}
	if err := r.ParseForm(); err != nil {
		fail("invalid_request: malformed request")
		return
	}
	rec.Params = r.Form
	hint, clientID, target := r.Form.Get("id_token_hint"), r.Form.Get("client_id"), r.Form.Get("post_logout_redirect_uri")

	switch {
	case hint != "":
		claims, err := s.verifyOwnToken(hint)
		if err != nil {
			fail("invalid_request: id_token_hint: " + err.Error())
			return
		}
		rec.IDTokenSubject, _ = claims["sub"].(string)
		aud := audience(claims)
		if clientID != "" && !slices.Contains(aud, clientID) {
			fail("invalid_request: client_id does not match id_token_hint")
			return
		}
		if clientID == "" {
			clientID, _ = claims["azp"].(string)
			if clientID == "" && len(aud) > 0 {
				clientID = aud[0]
			}
		}
		if sid, _ := claims["sid"].(string); !s.cfg.AcceptEndedSessionHint && !s.sessionActive(sid) {
			fail("invalid_request: the session of id_token_hint has already ended")
			return
		}
	case clientID != "" || target != "":
		switch s.cfg.HintlessLogout {
		case RefuseHintlessLogout:
			fail("invalid_request: id_token_hint is required")
			return
		case EndHintlessLogout:
			target = ""
		}
	}
	rec.ClientID = clientID

	if target != "" {
		if err := checkRedirectURI("post_logout_redirect_uri", target); err != nil {
			fail("invalid_request: " + err.Error())
			return
		}
		if !s.postLogoutURIRegistered(clientID, target) {
			fail("invalid_request: post_logout_redirect_uri is not registered for this client")
			return
		}
	}

	var idp *Upstream
	if c, err := r.Cookie(SessionCookie); err == nil {
		rec.HadCookie = true
		s.mu.Lock()
		if ses := s.live(c.Value); ses != nil {
			s.end(ses, StatusLogout, s.now())
			rec.EndedSession = ses.id
			if up := s.upByConn[ses.conn]; up != nil && up.IDPLogoutRequired {
				idp = up
			}
		}
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	w.Header().Set("Cache-Control", "no-store")
	if target != "" {
		if st := r.Form.Get("state"); st != "" {
			target = appendQuery(target, url.Values{"state": {st}})
		}
		rec.RedirectedTo = target
	}
	if idp != nil {
		rec.Status = http.StatusFound
		s.startIDPLogout(w, r, idp, rec, target)
		return
	}
	if target == "" {
		rec.Status = http.StatusOK
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, signedOutPage)
		return
	}
	rec.Status = http.StatusFound
	http.Redirect(w, r, target, http.StatusFound)
}

// sessionActive reports whether the session exists and is active. An ID
// token without a sid names no session, and counts as ended.
func (s *Server) sessionActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live(id) != nil
}

// postLogoutURIRegistered checks target against the client's registered
// URIs; with no client named, against every client's.
func (s *Server) postLogoutURIRegistered(clientID, target string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clientID != "" {
		c := s.clients[clientID]
		return c != nil && redirectURIRegistered(c.PostLogoutRedirectURIs, target)
	}
	for _, c := range s.clients {
		if redirectURIRegistered(c.PostLogoutRedirectURIs, target) {
			return true
		}
	}
	return false
}
