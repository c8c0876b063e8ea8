package scalekittest

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

type authCode struct {
	client, redirectURI, nonce, challenge string
	scopes                                []string
	session                               *session
	expires                               time.Time
}

// authorize starts the code flow. With a live session cookie it returns at
// once (single sign-on), unless prompt=login; with a login_hint it signs that
// user in without the form, a shortcut of this fake for tests; otherwise it
// shows the sign-in form.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := s.checkAuthorize(q)
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	if q.Get("prompt") != "login" {
		if ses := s.sessionFromCookie(r); ses != nil {
			s.finishAuthorize(w, r, client, ses, q)
			return
		}
	}
	if hint := q.Get("login_hint"); hint != "" && strings.Contains(hint, "@") {
		s.finishAuthorize(w, r, client, s.signIn(w, r, hint), q)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, signInPage, htmlEscape(q.Encode()))
}

// signInForm receives the sign-in form: the authorization request it was
// shown for, and an email address. Any address signs in.
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
	s.finishAuthorize(w, r, client, s.signIn(w, r, email), q)
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

// signIn starts a new session for email and sets the server's cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, email string) *session {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	ses := s.newSession(s.user(email), r.UserAgent(), ip)
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

func (s *Server) finishAuthorize(w http.ResponseWriter, r *http.Request, client *Client, ses *session, q url.Values) {
	code := "skc_code_" + randomText()
	s.mu.Lock()
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
