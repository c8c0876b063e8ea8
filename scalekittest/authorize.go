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
	// passed straight through on a live session: the environment's, or,
	// with Upstream set, the upstream's.
	Forms []Form
	// Upstream is set when the sign-in went to the upstream provider, and
	// RoutedBy says what sent it there: "connection_id",
	// "organization_id", "domain_hint", "domain", "login_hint", or
	// "email" (the address typed into the environment's form).
	Upstream bool
	RoutedBy string
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
}

// PassedThrough reports whether the sign-in finished without showing any
// form.
func (a Authorization) PassedThrough() bool { return a.SessionID != "" && len(a.Forms) == 0 }

// Showed reports whether the sign-in showed form f.
func (a Authorization) Showed(f Form) bool { return slices.Contains(a.Forms, f) }

// Authorizations returns every authorization request that passed the
// checks at /oauth/authorize, oldest first.
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

type authCode struct {
	client, redirectURI, nonce, challenge string
	scopes                                []string
	session                               *session
	expires                               time.Time
}

// authorize starts the code flow. With a live session cookie it returns at
// once (single sign-on), unless prompt=login asks for a fresh sign-in. A
// request routed to the upstream provider goes there and comes back through
// ssoCallback; with prompt=login that is not forwarded, the environment's
// own form comes first. Otherwise a login_hint signs that user in without
// the form, a shortcut of this fake for tests, unless prompt=login; and
// without a hint the form shows.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := s.checkAuthorize(q)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	a := s.newAuthorization(client.ID, q)
	fresh := q.Get("prompt") == "login"
	if !fresh {
		if ses := s.sessionFromCookie(r); ses != nil {
			s.finishAuthorize(w, r, client, ses, q, a)
			return
		}
	}
	if by, ok := s.upstreamRoute(q, ""); ok {
		if fresh && !s.cfg.Upstream.ForwardPrompt {
			// Without forwarding, the fresh sign-in prompt=login asks for
			// is the environment's own; the upstream is not asked again.
			s.showSignInForm(w, q, a)
			return
		}
		s.federate(w, r, q, a, by, q.Get("login_hint"))
		return
	}
	if hint := q.Get("login_hint"); hint != "" && strings.Contains(hint, "@") && !fresh {
		s.finishAuthorize(w, r, client, s.signIn(w, r, hint, nil), q, a)
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
// request or the address's domain routes it to the upstream provider.
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.PostFormValue("request"))
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err != nil || email == "" || !strings.Contains(email, "@") {
		errorPage(w, "invalid_request: an email address is required")
		return
	}
	client, err := s.checkAuthorize(q)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	a := s.formAuthorization(r.PostFormValue("authorization"), client.ID, q)
	if by, ok := s.upstreamRoute(q, email); ok {
		s.federate(w, r, q, a, by, email)
		return
	}
	s.finishAuthorize(w, r, client, s.signIn(w, r, email, nil), q, a)
}

func (s *Server) checkAuthorize(q url.Values) (*Client, error) {
	s.mu.Lock()
	client := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	method := q.Get("code_challenge_method")
	switch {
	case client == nil:
		return nil, errors.New("invalid_client: unknown client_id")
	case !slices.Contains(client.RedirectURIs, q.Get("redirect_uri")):
		return nil, errors.New("invalid_request: redirect_uri is not registered")
	case q.Get("response_type") != "code":
		return nil, errors.New("unsupported_response_type: only code")
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		return nil, errors.New("invalid_scope: openid is required")
	case q.Get("code_challenge") != "" && method != "S256":
		return nil, errors.New("invalid_request: only S256 code challenges")
	case q.Get("code_challenge") == "" && method != "":
		return nil, errors.New("invalid_request: code_challenge_method without code_challenge")
	}
	return client, nil
}

// signIn starts a new session for email and sets the server's cookie. With
// via, the upstream session that authenticated the user, the session
// remembers it, and a user seen for the first time joins the upstream's
// organization, as a sign-in through an SSO connection provisions them.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, email string, via *upstreamSession) *session {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	org := ""
	if via != nil {
		org = s.up.OrganizationID
	}
	ses := s.newSession(s.userIn(email, org), r.UserAgent(), ip)
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
		expires: s.now().Add(time.Minute)}
	s.mu.Unlock()
	back := url.Values{"code": {code}}
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	target := q.Get("redirect_uri")
	if strings.Contains(target, "?") {
		target += "&" + back.Encode()
	} else {
		target += "?" + back.Encode()
	}
	http.Redirect(w, r, target, http.StatusFound)
}
