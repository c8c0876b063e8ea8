// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The authorization endpoint: the sign-in form, single sign-on on a live
// session, and the record of what each sign-in showed.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Form names a sign-in form a user can be shown.
type Form string

const (
	// ScalekitForm is the environment's own form, which asks for an email
	// address.
	ScalekitForm Form = "scalekit"
	// UpstreamForm is the upstream provider's form, which asks for an email
	// address and a password.
	UpstreamForm Form = "upstream"
)

// Authorization records one sign-in: an authorization request at
// /oauth/authorize, the forms it showed and how it ended, for tests to
// check what the user went through.
type Authorization struct {
	ClientID string
	Params   url.Values // the request's parameters, as the app sent them
	// Forms are the sign-in forms shown for it, in order. None means it
	// passed straight through on a live session: the environment's, or an
	// upstream's.
	Forms []Form
	// Upstream is set when the sign-in went to an upstream provider, the
	// one of connection ConnectionID, and RoutedBy says what sent it
	// there: "connection_id", "organization_id", "domain_hint", "domain",
	// "login_hint", or "email" (the address typed into the environment's
	// form).
	Upstream     bool
	ConnectionID string
	RoutedBy     string
	// PromptForwarded is set when prompt=login went upstream with it (see
	// [UpstreamConfig.ForwardPrompt]).
	PromptForwarded bool
	// Email and SessionID are who signed in and the session it signed in
	// with; both are empty until it finishes, and stay so if the user
	// never did.
	Email     string
	SessionID string
	// UpstreamSessionID is the upstream session behind SessionID, or "".
	UpstreamSessionID string
	// Error is the error the request was sent back to the app with, such
	// as login_required for prompt=none without a session, or "".
	Error string
}

// PassedThrough reports whether the sign-in finished without showing any
// form.
func (a Authorization) PassedThrough() bool { return a.SessionID != "" && len(a.Forms) == 0 }

// Showed reports whether the sign-in showed form f.
func (a Authorization) Showed(f Form) bool { return slices.Contains(a.Forms, f) }

// Authorizations returns every authorization request from a known client
// to one of its registered redirect URIs, oldest first: those the
// environment answered with an error too.
func (s *Server) Authorizations() []Authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Authorization, len(s.authzs))
	for i, a := range s.authzs {
		out[i] = a.Authorization
		out[i].Params = cloneValues(a.Params)
		out[i].Forms = slices.Clone(a.Forms)
	}
	return out
}

// codeLifetime is how long an authorization code can be redeemed: "approx
// ~10 minutes" (developer-docs src/content/docs/authenticate/fsa/
// complete-login.mdx).
const codeLifetime = 10 * time.Minute

type authCode struct {
	client, redirectURI, nonce, challenge string
	scopes                                []string
	session                               *session
	expires                               time.Time
}

// authorizeError is an error an authorization request goes back to the app
// with.
type authorizeError struct{ code, description string }

// authorize starts the code flow. A request from an unknown client, or for
// a redirect URI the client did not register, gets an error page; any other
// error goes back to the app's redirect URI. With a live session cookie it
// returns at once (single sign-on), unless prompt=login asks for a fresh
// sign-in; prompt=none never shows a page. A request routed to an upstream
// provider goes there and comes back through ssoCallback; with prompt=login
// that is not forwarded, the environment's own form comes first. Otherwise
// a login_hint signs that user in without the form, a shortcut of this fake
// for tests, unless prompt=login; and without a hint the form shows.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := s.checkClient(q)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	a := s.newAuthorization(client.ID, q)
	if e := s.checkRequest(client, q); e != nil {
		s.sendBackError(w, r, q, a, e)
		return
	}
	prompts := strings.Fields(q.Get("prompt"))
	if slices.Contains(prompts, "none") {
		// prompt=none checks silently for a session, "without showing the
		// login or sign-up page" (developer-docs src/content/docs/
		// authenticate/fsa/implement-login.mdx); without one the answer is
		// login_required (OpenID Connect Core 1.0, section 3.1.2.6).
		if ses := s.sessionFromCookie(r); ses != nil {
			s.finishAuthorize(w, r, client, ses, q, a)
			return
		}
		s.sendBackError(w, r, q, a, &authorizeError{"login_required", "no session, and prompt=none shows no sign-in page"})
		return
	}
	fresh := slices.Contains(prompts, "login")
	if !fresh {
		if ses := s.sessionFromCookie(r); ses != nil {
			s.finishAuthorize(w, r, client, ses, q, a)
			return
		}
	}
	if up, by := s.upstreamRoute(q, ""); up != nil {
		if fresh && !up.cfg.ForwardPrompt {
			// Without forwarding, the fresh sign-in prompt=login asks for
			// is the environment's own; the upstream is not asked again.
			s.showSignInForm(w, q, a)
			return
		}
		s.federate(w, r, q, a, up, by, q.Get("login_hint"))
		return
	}
	if hint := q.Get("login_hint"); hint != "" && strings.Contains(hint, "@") && !fresh {
		s.finishAuthorize(w, r, client, s.signIn(w, r, hint, nil, nil), q, a)
		return
	}
	s.showSignInForm(w, q, a)
}

func (s *Server) showSignInForm(w http.ResponseWriter, q url.Values, a *authorization) {
	s.mu.Lock()
	a.Forms = append(a.Forms, ScalekitForm)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, signInPage, htmlEscape(q.Encode()), htmlEscape(a.id), htmlEscape(q.Get("login_hint")))
}

// signInForm receives the sign-in form: the authorization request it was
// shown for, and an email address. Any address signs in, unless the
// request or the address's domain routes it to an upstream provider.
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.PostFormValue("request"))
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err != nil || email == "" || !strings.Contains(email, "@") {
		errorPage(w, "invalid_request: an email address is required")
		return
	}
	client, err := s.checkClient(q)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	a := s.formAuthorization(r.PostFormValue("authorization"), client.ID, q)
	if e := s.checkRequest(client, q); e != nil {
		s.sendBackError(w, r, q, a, e)
		return
	}
	if up, by := s.upstreamRoute(q, email); up != nil {
		s.federate(w, r, q, a, up, by, email)
		return
	}
	s.finishAuthorize(w, r, client, s.signIn(w, r, email, nil, nil), q, a)
}

// checkClient finds the client of an authorization request and checks its
// redirect URI: the two errors that cannot go back to the app, since there
// is no redirect URI to trust.
func (s *Server) checkClient(q url.Values) (*Client, error) {
	s.mu.Lock()
	client := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	switch {
	case client == nil:
		return nil, errors.New("invalid_client: unknown client_id")
	case !redirectURIRegistered(client.RedirectURIs, q.Get("redirect_uri")):
		return nil, errors.New("invalid_request: redirect_uri is not registered")
	}
	return client, nil
}

// checkRequest checks the rest of an authorization request; its errors go
// back to the app's redirect URI ("When authentication fails, Scalekit
// redirects to your callback URL with error parameters": developer-docs
// src/content/docs/authenticate/fsa/multiapp/single-page-app.mdx, "Handle
// errors").
func (s *Server) checkRequest(client *Client, q url.Values) *authorizeError {
	if e := checkParams(client, q); e != nil {
		return e
	}
	return s.checkSelectors(q)
}

// checkSelectors refuses an organization_id or a connection_id the
// environment does not have, with the errors Scalekit's SSO error reference
// lists for them, sent to the redirect URI with error and error_description
// (developer-docs src/content/docs/sso/reference/sso-integration-errors.mdx:
// invalid_organization_id, invalid_connection_id). An organization the
// environment has, with or without an upstream provider, and the
// connection of the environment's own form are fine.
func (s *Server) checkSelectors(q url.Values) *authorizeError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := q.Get("organization_id"); id != "" && s.orgs[id] == nil {
		return &authorizeError{"invalid_organization_id", "no organization " + id + " in this environment"}
	}
	if id := q.Get("connection_id"); id != "" && id != s.connID && s.upByConn[id] == nil {
		return &authorizeError{"invalid_connection_id", "no connection " + id + " in this environment"}
	}
	return nil
}

// checkParams checks the OAuth parameters of an authorization request.
func checkParams(client *Client, q url.Values) *authorizeError {
	method := q.Get("code_challenge_method")
	prompts := strings.Fields(q.Get("prompt"))
	switch {
	case q.Get("response_type") == "":
		return &authorizeError{"invalid_request", "response_type is required"}
	case q.Get("response_type") != "code":
		return &authorizeError{"unsupported_response_type", "only code"}
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		return &authorizeError{"invalid_scope", "openid is required"}
	case q.Get("code_challenge") != "" && method != "S256":
		return &authorizeError{"invalid_request", "only S256 code challenges"}
	case q.Get("code_challenge") == "" && method != "":
		return &authorizeError{"invalid_request", "code_challenge_method without code_challenge"}
	case q.Get("code_challenge") == "" && client.public():
		// A public client has no secret: PKCE is what protects its code
		// ("Why PKCE is required for SPAs": single-page-app.mdx).
		return &authorizeError{"invalid_request", "a public client must send a code_challenge"}
	case slices.Contains(prompts, "none") && len(prompts) > 1:
		// OpenID Connect Core 1.0, section 3.1.2.1.
		return &authorizeError{"invalid_request", "prompt=none cannot go with another prompt"}
	}
	return nil
}

// sendBackError sends the browser back to the app's registered redirect URI
// with error, error_description and the request's state.
func (s *Server) sendBackError(w http.ResponseWriter, r *http.Request, q url.Values, a *authorization, e *authorizeError) {
	s.mu.Lock()
	a.Error = e.code
	s.mu.Unlock()
	back := url.Values{"error": {e.code}, "error_description": {e.description}}
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	redirect(w, r, appendQuery(q.Get("redirect_uri"), back))
}

// redirect answers with 302, or 303 after a form so that the browser comes
// back with a GET.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, target, status)
}

// signIn starts a new session for email and sets the server's cookie. With
// via, the session of upstream up that authenticated the user, the session
// remembers it, and a user seen for the first time joins the upstream's
// organization, as a sign-in through an SSO connection provisions them.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, email string, up *Upstream, via *upstreamSession) *session {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	org, conn := "", s.connID
	if via != nil {
		org, conn = up.OrganizationID, up.ConnectionID
	}
	ses := s.newSession(s.userIn(email, org), conn, r.UserAgent(), ip)
	if via != nil {
		ses.upstream = via.id
	}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: ses.id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return ses
}

func (s *Server) sessionFromCookie(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live(c.Value)
}

func (s *Server) finishAuthorize(w http.ResponseWriter, r *http.Request, client *Client, ses *session, q url.Values, a *authorization) {
	code := "skc_code_" + randomText()
	s.mu.Lock()
	a.Email, a.SessionID, a.UpstreamSessionID = ses.user.Email, ses.id, ses.upstream
	if !slices.Contains(ses.clients, client.ID) {
		ses.clients = append(ses.clients, client.ID)
	}
	s.touch(ses)
	s.codes[code] = &authCode{client: client.ID, redirectURI: q.Get("redirect_uri"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), scopes: strings.Fields(q.Get("scope")), session: ses,
		expires: s.now().Add(codeLifetime)}
	s.mu.Unlock()
	back := url.Values{"code": {code}}
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	redirect(w, r, appendQuery(q.Get("redirect_uri"), back))
}
