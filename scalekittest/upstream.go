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

// UpstreamSessionCookie is the name of the upstream provider's session
// cookie.
const UpstreamSessionCookie = "idp_session"

// UpstreamConfig describes the upstream identity provider a [Server] runs
// beside itself: an organization's own single sign-on provider (Okta or
// Entra ID, say) behind an enterprise SSO connection. It is off unless it
// names an email domain, an organization or a connection.
type UpstreamConfig struct {
	// Domains are the email domains registered to the upstream's
	// organization, such as sso.example: a sign-in whose login_hint,
	// domain_hint or typed email address is in one of them goes upstream.
	// Users of these domains belong to the upstream's organization.
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

	// PropagateLogout makes the end of a session (at /oidc/logout, by
	// revocation or by a timeout) also end the upstream session that
	// signed it in, as a provider that propagates logout would. By default
	// the upstream session lives on: nothing in Scalekit's documentation
	// says it is ended, and users stay signed in at their provider.
	PropagateLogout bool
}

func (c UpstreamConfig) enabled() bool {
	return len(c.Domains) > 0 || c.OrganizationID != "" || c.ConnectionID != ""
}

// Upstream is the upstream identity provider of a [Server], on its own
// origin: it keeps its own session in its own HttpOnly cookie
// ([UpstreamSessionCookie]) and has its own sign-in form, which asks for an
// email address and a password (any password signs in). With its session
// alive it sends the browser back at once, without the form, unless the
// request carries prompt=login. Its methods are safe for concurrent use.
//
// Its fields describe it; changing them changes nothing.
type Upstream struct {
	URL            string   // its origin, such as http://localhost:8089
	OrganizationID string   // the organization whose SSO connection it is
	ConnectionID   string   // that connection
	Domains        []string // the email domains registered to it, lower-case

	s        *Server
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

// Upstream returns the environment's upstream identity provider, or nil
// when [Config.Upstream] names none.
func (s *Server) Upstream() *Upstream { return s.up }

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
		if c.Name != UpstreamSessionCookie {
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

// checkUpstream validates the upstream's configuration and fills in the
// IDs it leaves out.
func (s *Server) checkUpstream() error {
	c := &s.cfg.Upstream
	if !c.enabled() {
		if c.Addr != "" || c.ForwardPrompt || c.PropagateLogout {
			return errors.New("scalekittest: the upstream's options need a domain, an organization or a connection to route to it")
		}
		return nil
	}
	domains := make([]string, 0, len(c.Domains))
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "@/:? \t") || !strings.Contains(d, ".") {
			return fmt.Errorf("scalekittest: upstream domain %q is not an email domain such as sso.example", d)
		}
		domains = append(domains, strings.ToLower(d))
	}
	c.Domains = domains
	switch {
	case c.OrganizationID == "":
		c.OrganizationID = newID("org_")
	case !validID(c.OrganizationID, "org_"):
		return fmt.Errorf("scalekittest: upstream organization %q must be org_ followed by digits", c.OrganizationID)
	}
	switch {
	case c.ConnectionID == "":
		c.ConnectionID = newID("conn_")
	case !validID(c.ConnectionID, "conn_"):
		return fmt.Errorf("scalekittest: upstream connection %q must be conn_ followed by digits", c.ConnectionID)
	}
	return nil
}

// startUpstream listens for the upstream, when one is configured; serving
// starts with the environment.
func (s *Server) startUpstream() error {
	c := s.cfg.Upstream
	if !c.enabled() {
		return nil
	}
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("scalekittest: upstream: %w", err)
	}
	u := &Upstream{
		URL: "http://" + hostOf(l.Addr()), OrganizationID: c.OrganizationID, ConnectionID: c.ConnectionID,
		Domains: slices.Clone(c.Domains), domains: slices.Clone(c.Domains),
		s: s, listener: l, sessions: map[string]*upstreamSession{}, codes: map[string]*upstreamCode{},
	}
	u.srv = &http.Server{Handler: u.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.up = u
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

// clientID and redirectURI are the environment's registration at the
// upstream, as an enterprise connection holds them.
func (u *Upstream) clientID() string    { return u.s.envID }
func (u *Upstream) redirectURI() string { return u.s.URL + "/sso/callback" }

// routesDomain reports whether email's domain is registered to the
// upstream.
func (u *Upstream) routesDomain(email string) bool {
	_, domain, ok := strings.Cut(email, "@")
	return ok && u.routesDomainName(domain)
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
	if c, err := r.Cookie(UpstreamSessionCookie); err == nil {
		if old := u.live(c.Value); old != nil {
			u.end(old, now)
		}
	}
	u.sessions[ses.id] = ses
	u.s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: UpstreamSessionCookie, Value: ses.id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	u.redirectBack(w, r, ses, q)
}

// logout ends the upstream session its cookie names, by GET or POST, as
// the provider's own "Sign out" does, and says so on a page.
func (u *Upstream) logout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if c, err := r.Cookie(UpstreamSessionCookie); err == nil {
		u.s.mu.Lock()
		if ses := u.live(c.Value); ses != nil {
			u.end(ses, u.s.now())
		}
		u.s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: UpstreamSessionCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	w.Header().Set("Cache-Control", "no-store")
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
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), status)
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
	c, err := r.Cookie(UpstreamSessionCookie)
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
