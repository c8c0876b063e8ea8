// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The upstream identity provider, on an origin of its own: its sessions, its
// sign-in form, its logout, and the codes it hands the environment.

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

// UpstreamConfig describes an upstream identity provider a [Server] runs
// beside itself: an organization's own single sign-on provider (Okta or
// Entra ID, say) behind an enterprise SSO connection. It must name an email
// domain, an organization or a connection, to route sign-ins to it.
type UpstreamConfig struct {
	// Domains are the email domains registered to the upstream's
	// organization, such as sso.example: a sign-in whose login_hint,
	// domain_hint or typed email address is in one of them goes upstream.
	// Users of these domains belong to the upstream's organization. No two
	// upstreams share a domain.
	Domains []string

	// OrganizationID and ConnectionID name the organization and its SSO
	// connection: an authorization request with organization_id or
	// connection_id equal to one of them goes upstream. Empty means a new
	// ID (org_ or conn_ and digits), which [Upstream] reports.
	OrganizationID string
	ConnectionID   string

	// Addr is the address the upstream listens on. Empty means a free port
	// on 127.0.0.1, which it serves as http://localhost:PORT: browsers key
	// cookies by host and not by port, so a host of its own is what keeps
	// its cookie apart from the environment's (on 127.0.0.1) and from those
	// of apps served by httptest (on 127.0.0.1 too). An app served from
	// localhost shares its host: that app's Clear-Site-Data "cookies" would
	// clear the upstream's cookie, which a real provider's would survive.
	// Upstreams sharing a host keep their sessions apart by the name of
	// their cookies ([Upstream.SessionCookie]).
	Addr string

	// ForwardPrompt makes the environment pass prompt=login on to the
	// upstream, which then asks for its password even while its own
	// session lives. Whether Scalekit does so is documented nowhere. The
	// default, off, is the reading under which an app is least protected:
	// prompt=login gets the environment's own form, and the upstream
	// session then signs the user in without a password. A test that
	// passes under the default does not depend on a forwarding Scalekit
	// never promised.
	ForwardPrompt bool

	// IDPLogoutRequired is the connection's "Enable IDP logout" switch,
	// idp_logout_required (developer-docs openapi/scalekit.yaml,
	// connectionsOIDCConnectionConfig, which also gives the connection its
	// post_logout_redirect_uri, …/logout/callback). With it on, a logout at
	// /oidc/logout that ends a session this upstream signed in sends the
	// browser on through the upstream's own end-session endpoint, which
	// ends the upstream's session, and back to the connection's logout
	// callback, before the app's post-logout redirect URI. With it off, as
	// by default, the upstream session lives on (single sign-on), and the
	// next sign-in through it passes without a password.
	//
	// A session ended without a browser (revoked through the session API,
	// or by a timeout) leaves the upstream session alive either way: the
	// end-session round trip needs the browser's cookie at the upstream.
	// Whether Scalekit ends it some other way is not documented.
	IDPLogoutRequired bool
}

func (c UpstreamConfig) enabled() bool {
	return len(c.Domains) > 0 || c.OrganizationID != "" || c.ConnectionID != ""
}

// Upstream is an upstream identity provider of a [Server], on its own
// origin: it keeps its own session in its own HttpOnly cookie
// ([Upstream.SessionCookie]) and has its own sign-in form, which asks for
// an email address and a password (any password signs in). With its
// session alive it sends the browser back at once, without the form,
// unless the request carries prompt=login. Its methods are safe for
// concurrent use.
//
// Its fields describe it; changing them changes nothing.
type Upstream struct {
	URL               string   // its origin, such as http://localhost:8089
	OrganizationID    string   // the organization whose SSO connection it is
	ConnectionID      string   // that connection
	Domains           []string // the email domains registered to it, lower-case
	IDPLogoutRequired bool     // the connection's "Enable IDP logout"
	ForwardPrompt     bool     // prompt=login goes on to it
	// SessionCookie is the name of its session cookie:
	// idp_session_ and the connection ID.
	SessionCookie string

	s        *Server
	cfg      UpstreamConfig
	srv      *http.Server
	listener net.Listener
	domains  []string // what routing uses, whatever becomes of Domains

	// Guarded by s.mu.
	sessions map[string]*upstreamSession
	codes    map[string]*upstreamCode
}

// UpstreamSession is a snapshot of one of the upstream provider's sessions.
type UpstreamSession struct {
	ID        string // ups_ and digits
	Email     string
	Active    bool
	CreatedAt time.Time
	// EndedAt is when it ended; zero while it is active.
	EndedAt time.Time
}

type upstreamSession struct {
	id, email      string
	created, ended time.Time
}

// upstreamCode is an authorization code of the upstream, redeemed by the
// environment that asked for it.
type upstreamCode struct {
	session     *upstreamSession
	redirectURI string
	expires     time.Time
}

// Upstreams returns the environment's upstream identity providers, in the
// order of [Config.Upstreams].
func (s *Server) Upstreams() []*Upstream { return slices.Clone(s.ups) }

// UpstreamOf returns the upstream provider of a connection, or nil.
func (s *Server) UpstreamOf(connectionID string) *Upstream { return s.upByConn[connectionID] }

// Sessions returns a snapshot of every session of the upstream, newest
// first.
func (u *Upstream) Sessions() []UpstreamSession {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	var out []UpstreamSession
	for _, ses := range u.sessions {
		out = append(out, ses.snapshot())
	}
	slices.SortFunc(out, func(a, b UpstreamSession) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out
}

// ActiveSession returns the newest active upstream session of the user with
// that email, and whether there is one.
func (u *Upstream) ActiveSession(email string) (UpstreamSession, bool) {
	for _, ses := range u.Sessions() {
		if ses.Active && strings.EqualFold(ses.Email, email) {
			return ses, true
		}
	}
	return UpstreamSession{}, false
}

// SessionOf returns the active upstream session whose cookie browser holds,
// and whether there is one: whether the next sign-in through the upstream
// in that browser would pass straight through.
func (u *Upstream) SessionOf(browser *http.Client) (UpstreamSession, bool) {
	if browser.Jar == nil {
		return UpstreamSession{}, false
	}
	origin, err := url.Parse(u.URL)
	if err != nil {
		return UpstreamSession{}, false
	}
	for _, c := range browser.Jar.Cookies(origin) {
		if c.Name != u.SessionCookie {
			continue
		}
		u.s.mu.Lock()
		ses := u.live(c.Value)
		u.s.mu.Unlock()
		if ses != nil {
			return ses.snapshot(), true
		}
	}
	return UpstreamSession{}, false
}

// EndSession ends an upstream session, as the user signing out at the
// provider (or its administrator) would. The environment hears nothing of
// it: its own sessions live on. Ending an ended session does nothing.
func (u *Upstream) EndSession(id string) error {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	ses := u.sessions[id]
	if ses == nil {
		return fmt.Errorf("%w: upstream session %s", ErrNotFound, id)
	}
	u.end(ses, u.s.now())
	return nil
}

// checkUpstreams validates the upstreams' configuration and fills in the
// IDs they leave out.
func (s *Server) checkUpstreams() error {
	domains, orgs, conns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	ups := make([]UpstreamConfig, len(s.cfg.Upstreams))
	for i, c := range s.cfg.Upstreams {
		if len(c.Domains) == 0 && c.OrganizationID == "" && c.ConnectionID == "" {
			return fmt.Errorf("scalekittest: upstream %d needs a domain, an organization or a connection to route to it", i+1)
		}
		c.Domains = slices.Clone(c.Domains)
		for j, d := range c.Domains {
			if d == "" || strings.ContainsAny(d, "@/:? \t") || !strings.Contains(d, ".") {
				return fmt.Errorf("scalekittest: upstream domain %q is not an email domain such as sso.example", d)
			}
			d = strings.ToLower(d)
			if domains[d] {
				return fmt.Errorf("scalekittest: two upstreams serve the domain %s", d)
			}
			domains[d], c.Domains[j] = true, d
		}
		switch {
		case c.OrganizationID == "":
			c.OrganizationID = newID("org_")
		case !validID(c.OrganizationID, "org_"):
			return fmt.Errorf("scalekittest: upstream organization %q must be org_ followed by digits", c.OrganizationID)
		case orgs[c.OrganizationID]:
			return fmt.Errorf("scalekittest: two upstreams serve the organization %s", c.OrganizationID)
		}
		switch {
		case c.ConnectionID == "":
			c.ConnectionID = newID("conn_")
		case !validID(c.ConnectionID, "conn_"):
			return fmt.Errorf("scalekittest: upstream connection %q must be conn_ followed by digits", c.ConnectionID)
		case conns[c.ConnectionID]:
			return fmt.Errorf("scalekittest: two upstreams have the connection %s", c.ConnectionID)
		}
		orgs[c.OrganizationID], conns[c.ConnectionID] = true, true
		ups[i] = c
	}
	s.cfg.Upstreams = ups
	return nil
}

// startUpstreams listens for each upstream, and records its organization;
// serving starts with the environment.
func (s *Server) startUpstreams() error {
	for _, c := range s.cfg.Upstreams {
		addr := c.Addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("scalekittest: upstream %s: %w", c.ConnectionID, err)
		}
		u := &Upstream{
			URL: "http://" + hostOf(l.Addr()), OrganizationID: c.OrganizationID, ConnectionID: c.ConnectionID,
			Domains: slices.Clone(c.Domains), IDPLogoutRequired: c.IDPLogoutRequired, ForwardPrompt: c.ForwardPrompt,
			SessionCookie: "idp_session_" + c.ConnectionID, cfg: c, domains: slices.Clone(c.Domains),
			s: s, listener: l, sessions: map[string]*upstreamSession{}, codes: map[string]*upstreamCode{},
		}
		u.srv = &http.Server{Handler: u.routes(), ReadHeaderTimeout: 10 * time.Second}
		s.ups = append(s.ups, u)
		s.upByConn[u.ConnectionID] = u
		s.mu.Lock()
		if s.orgs[u.OrganizationID] == nil {
			s.orgs[u.OrganizationID] = &Organization{ID: u.OrganizationID, DisplayName: "Organization of " + u.ConnectionID}
		}
		s.mu.Unlock()
	}
	return nil
}

// hostOf is the host and port a browser reaches a listener at: localhost
// for 127.0.0.1, so that the upstream is a site of its own.
func hostOf(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil || host != "127.0.0.1" {
		return a.String()
	}
	return net.JoinHostPort("localhost", port)
}

func (u *Upstream) serve() {
	defer u.s.bg.Done()
	u.srv.Serve(u.listener)
}

// clientID, redirectURI and logoutCallback are the environment's
// registration at the upstream, as an OIDC connection holds them: the
// connection's redirect_uri and post_logout_redirect_uri (developer-docs
// openapi/scalekit.yaml, connectionsOIDCConnectionConfig:
// …/sso/v1/oidc/conn_…/callback and …/logout/callback).
func (u *Upstream) clientID() string { return u.s.envID }
func (u *Upstream) redirectURI() string {
	return u.s.URL + "/sso/v1/oidc/" + u.ConnectionID + "/callback"
}
func (u *Upstream) logoutCallback() string {
	return u.s.URL + "/sso/v1/oidc/" + u.ConnectionID + "/logout/callback"
}

func (u *Upstream) routesDomainName(domain string) bool {
	return slices.Contains(u.domains, strings.ToLower(domain))
}

func (u *Upstream) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", u.authorize)
	mux.HandleFunc("POST /authorize", u.signInForm)
	mux.HandleFunc("/logout", u.logout)
	return mux
}

// authorize is the upstream's authorization endpoint. With its session
// alive it returns at once, unless prompt=login asks for the password
// again; otherwise it shows its form. Unlike the environment it has no
// login_hint shortcut: the hint only fills in the form.
func (u *Upstream) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := u.checkAuthorize(q); err != nil {
		errorPage(w, err.Error())
		return
	}
	if q.Get("prompt") != "login" {
		if ses := u.sessionFromCookie(r); ses != nil {
			u.redirectBack(w, r, ses, q)
			return
		}
	}
	u.s.noteUpstreamForm(q.Get("state"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, upstreamSignInPage, htmlEscape(q.Encode()), htmlEscape(q.Get("login_hint")))
}

// signInForm receives the upstream's form: any password signs the email
// in, with a new session that replaces the one the browser had.
func (u *Upstream) signInForm(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.PostFormValue("request"))
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err != nil || !strings.Contains(email, "@") {
		errorPage(w, "invalid_request: an email address is required")
		return
	}
	if err := u.checkAuthorize(q); err != nil {
		errorPage(w, err.Error())
		return
	}
	now := u.s.now()
	ses := &upstreamSession{id: newID("ups_"), email: email, created: now}
	u.s.mu.Lock()
	if c, err := r.Cookie(u.SessionCookie); err == nil {
		if old := u.live(c.Value); old != nil {
			u.end(old, now)
		}
	}
	u.sessions[ses.id] = ses
	u.s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: u.SessionCookie, Value: ses.id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	u.redirectBack(w, r, ses, q)
}

// logout is the upstream's end-session endpoint, by GET or POST, as the
// provider's own "Sign out" uses it and as an RP-initiated logout reaches
// it (OpenID Connect RP-Initiated Logout 1.0): it ends the session its
// cookie names. With a post_logout_redirect_uri, which must be the
// environment's logout callback for this connection, and the environment's
// client_id, it sends the browser back there with the state; without one it
// says so on a page of its own.
func (u *Upstream) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		errorPage(w, "invalid_request: malformed request")
		return
	}
	back := r.Form.Get("post_logout_redirect_uri")
	if back != "" && (back != u.logoutCallback() || r.Form.Get("client_id") != u.clientID()) {
		errorPage(w, "invalid_request: post_logout_redirect_uri is not registered for this client")
		return
	}
	if c, err := r.Cookie(u.SessionCookie); err == nil {
		u.s.mu.Lock()
		if ses := u.live(c.Value); ses != nil {
			u.end(ses, u.s.now())
		}
		u.s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: u.SessionCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	w.Header().Set("Cache-Control", "no-store")
	if back != "" {
		redirect(w, r, appendQuery(back, url.Values{"state": {r.Form.Get("state")}}))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, upstreamSignedOutPage)
}

func (u *Upstream) checkAuthorize(q url.Values) error {
	switch {
	case q.Get("client_id") != u.clientID():
		return errors.New("invalid_client: unknown client_id")
	case q.Get("redirect_uri") != u.redirectURI():
		return errors.New("invalid_request: redirect_uri is not registered")
	case q.Get("response_type") != "code":
		return errors.New("unsupported_response_type: only code")
	case q.Get("state") == "":
		return errors.New("invalid_request: state is required")
	}
	return nil
}

// redirectBack sends the browser back to the environment with a code for
// the session; after a form it answers 303, so the browser comes back with
// a GET.
func (u *Upstream) redirectBack(w http.ResponseWriter, r *http.Request, ses *upstreamSession, q url.Values) {
	code := "upc_" + randomText()
	u.s.mu.Lock()
	u.codes[code] = &upstreamCode{session: ses, redirectURI: q.Get("redirect_uri"), expires: u.s.now().Add(time.Minute)}
	u.s.mu.Unlock()
	redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode())
}

// redeem exchanges a code once for the session it was issued for. The
// environment calls it in-process, where a real connection would call the
// provider's token endpoint; the browser's round trip is the real part.
func (u *Upstream) redeem(code string) (*upstreamSession, bool) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	c := u.codes[code]
	delete(u.codes, code)
	if c == nil || c.redirectURI != u.redirectURI() || !u.s.now().Before(c.expires) {
		return nil, false
	}
	ses := u.live(c.session.id)
	return ses, ses != nil
}

func (u *Upstream) sessionFromCookie(r *http.Request) *upstreamSession {
	c, err := r.Cookie(u.SessionCookie)
	if err != nil {
		return nil
	}
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	return u.live(c.Value)
}

// live returns the session if it is active, or nil. The caller holds s.mu.
func (u *Upstream) live(id string) *upstreamSession {
	ses := u.sessions[id]
	if ses == nil || !ses.ended.IsZero() {
		return nil
	}
	return ses
}

// end ends an active session. The caller holds s.mu.
func (u *Upstream) end(ses *upstreamSession, at time.Time) {
	if ses.ended.IsZero() {
		ses.ended = at
	}
}

func (ses *upstreamSession) snapshot() UpstreamSession {
	return UpstreamSession{ID: ses.id, Email: ses.email, Active: ses.ended.IsZero(), CreatedAt: ses.created, EndedAt: ses.ended}
}
