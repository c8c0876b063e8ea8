// Package scalekittest runs a Scalekit environment inside a test process, the
// way net/http/httptest runs a web server: discovery, the authorization-code
// flow with PKCE, RS256-signed ID tokens and their keys, the end-session
// endpoint, Scalekit's session-revoke API and back-channel logout.
//
// It keeps its own session in its own HttpOnly cookie, as Scalekit does, so a
// test can see the three-layer logout for real: a second authorization while
// the cookie lives returns at once without the sign-in form, and only a
// browser navigation to /oidc/logout, carrying that cookie, ends it.
//
// It follows Scalekit's paths and rules closely enough for apps and their
// tests; it is not a security boundary and must never face the internet.
package scalekittest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// SessionCookie is the name of the server's own session cookie.
const SessionCookie = "skit_session"

// BackChannelLogoutEvent is the event a back-channel logout token carries.
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// Client is an application registered with the environment.
type Client struct {
	ID     string
	Secret string
	// RedirectURIs are the exact callback URLs the client may use.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact URLs /oidc/logout may send the
	// browser back to.
	PostLogoutRedirectURIs []string
	// BackChannelLogoutURI, if set, receives a logout token whenever one of
	// the client's users is signed out.
	BackChannelLogoutURI string
}

// User is a user of the environment.
type User struct {
	ID    string // usr_…
	Email string
}

// LogoutRequest records one request to /oidc/logout, for tests to check how
// it arrived.
type LogoutRequest struct {
	HadCookie      bool   // the request carried the server's session cookie
	SecFetchMode   string // "navigate" for a top-level navigation
	SecFetchDest   string // "document" for a top-level navigation
	EndedSession   string // the ses_… it ended, or ""
	Status         int
	RedirectedTo   string
	IDTokenSubject string
}

// Server is a fake Scalekit environment. Its methods are safe for concurrent
// use.
type Server struct {
	*httptest.Server

	// HTTPClient delivers back-channel logout tokens. Nil means a client
	// with a 5-second timeout.
	HTTPClient *http.Client

	mu       sync.Mutex
	keys     []*signingKey // keys[0] signs; all are published
	clients  map[string]*Client
	users    map[string]*User // by email
	sessions map[string]*session
	codes    map[string]*authCode
	tokens   map[string]string // client_credentials access tokens -> client ID
	logouts  []LogoutRequest
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

type session struct {
	id      string
	user    *User
	clients []string // client IDs signed in through this session
	ended   bool
}

type authCode struct {
	client, redirectURI, nonce, challenge string
	session                               *session
	expires                               time.Time
}

// NewServer starts a server on a free loopback port.
func NewServer() *Server {
	s, err := NewServerAt("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	return s
}

// NewServerAt starts a server listening on addr, such as 127.0.0.1:8081.
func NewServerAt(addr string) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("scalekittest: %w", err)
	}
	s := &Server{
		clients:  map[string]*Client{},
		users:    map[string]*User{},
		sessions: map[string]*session{},
		codes:    map[string]*authCode{},
		tokens:   map[string]string{},
	}
	s.RotateKey()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /keys", s.jwks)
	mux.HandleFunc("GET /oauth/authorize", s.authorize)
	mux.HandleFunc("POST /oauth/authorize", s.signInForm)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("/oidc/logout", s.endSession)
	mux.HandleFunc("POST /api/v1/users/{user}/sessions/revoke", s.revokeUser)
	mux.HandleFunc("POST /api/v1/sessions/{session}/revoke", s.revokeSession)
	s.Server = httptest.NewUnstartedServer(mux)
	s.Server.Listener.Close()
	s.Server.Listener = l
	s.Server.Start()
	return s, nil
}

// Issuer is the environment URL: the OpenID issuer.
func (s *Server) Issuer() string { return s.URL }

// AddClient registers an application.
func (s *Server) AddClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
}

// User returns the user with that email, creating it on first use.
func (s *Server) User(email string) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.user(email)
}

func (s *Server) user(email string) *User {
	u := s.users[email]
	if u == nil {
		u = &User{ID: "usr_" + randomID(), Email: email}
		s.users[email] = u
	}
	return u
}

// ActiveSessions lists the user's sessions that have not ended.
func (s *Server) ActiveSessions(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ses := range s.sessions {
		if ses.user.ID == userID && !ses.ended {
			out = append(out, ses.id)
		}
	}
	slices.Sort(out)
	return out
}

// LogoutRequests returns every request /oidc/logout has received.
func (s *Server) LogoutRequests() []LogoutRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logouts)
}

// RotateKey starts signing with a new key. The old keys stay published, so
// tokens signed before stay valid; apps see a kid they do not know yet.
func (s *Server) RotateKey() {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append([]*signingKey{{id: "key_" + randomID(), key: k}}, s.keys...)
}

// Sign signs claims as a JWT with the current key (RS256), adding the typ
// header when typ is not empty. Tests use it to build tokens of their own.
func (s *Server) Sign(claims map[string]any, typ string) (string, error) {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.id)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, opts)
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// PublicKey returns the current signing key's public half, for tests that
// forge tokens with it (an HS256 token keyed with the public key, say).
func (s *Server) PublicKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.keys[0].key.PublicKey
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.URL,
		"authorization_endpoint":                s.URL + "/oauth/authorize",
		"token_endpoint":                        s.URL + "/oauth/token",
		"jwks_uri":                              s.URL + "/keys",
		"end_session_endpoint":                  s.URL + "/oidc/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "client_credentials"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.id, Algorithm: "RS256", Use: "sig"})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

// authorize starts the code flow. With a live session cookie it returns at
// once; with a login_hint it signs that user in; otherwise it shows a form.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := s.checkAuthorize(q.Get("client_id"), q.Get("redirect_uri"), q.Get("response_type"), q.Get("scope"), q.Get("code_challenge_method"))
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	if ses := s.sessionFromCookie(r); ses != nil {
		s.finishAuthorize(w, r, client, ses, q)
		return
	}
	if hint := q.Get("login_hint"); hint != "" {
		s.finishAuthorize(w, r, client, s.newSession(w, hint), q)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, signInPage, htmlEscape(q.Encode()))
}

// signInForm receives the sign-in form.
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) {
	q, err := urlValues(r.PostFormValue("request"))
	email := strings.TrimSpace(r.PostFormValue("email"))
	if err != nil || email == "" || !strings.Contains(email, "@") {
		errorPage(w, "invalid_request: an email address is required")
		return
	}
	client, err := s.checkAuthorize(q.Get("client_id"), q.Get("redirect_uri"), q.Get("response_type"), q.Get("scope"), q.Get("code_challenge_method"))
	if err != nil {
		errorPage(w, err.Error())
		return
	}
	s.finishAuthorize(w, r, client, s.newSession(w, email), q)
}

func (s *Server) checkAuthorize(clientID, redirectURI, responseType, scope, method string) (*Client, error) {
	s.mu.Lock()
	client := s.clients[clientID]
	s.mu.Unlock()
	switch {
	case client == nil:
		return nil, errors.New("invalid_client: unknown client_id")
	case !slices.Contains(client.RedirectURIs, redirectURI):
		return nil, errors.New("invalid_request: redirect_uri is not registered")
	case responseType != "code":
		return nil, errors.New("unsupported_response_type")
	case !slices.Contains(strings.Fields(scope), "openid"):
		return nil, errors.New("invalid_scope: openid is required")
	case method != "" && method != "S256":
		return nil, errors.New("invalid_request: only S256 code challenges")
	}
	return client, nil
}

func (s *Server) newSession(w http.ResponseWriter, email string) *session {
	s.mu.Lock()
	ses := &session{id: "ses_" + randomID(), user: s.user(email)}
	s.sessions[ses.id] = ses
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
	if ses := s.sessions[c.Value]; ses != nil && !ses.ended {
		return ses
	}
	return nil
}

func (s *Server) finishAuthorize(w http.ResponseWriter, r *http.Request, client *Client, ses *session, q interface{ Get(string) string }) {
	code := randomID()
	s.mu.Lock()
	if !slices.Contains(ses.clients, client.ID) {
		ses.clients = append(ses.clients, client.ID)
	}
	s.codes[code] = &authCode{client: client.ID, redirectURI: q.Get("redirect_uri"), nonce: q.Get("nonce"),
		challenge: q.Get("code_challenge"), session: ses, expires: time.Now().Add(time.Minute)}
	s.mu.Unlock()
	target := q.Get("redirect_uri") + "?code=" + code
	if st := q.Get("state"); st != "" {
		target += "&state=" + queryEscape(st)
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// token exchanges an authorization code (with its PKCE verifier), or gives a
// client an API token for the client_credentials grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	clientID, secret, ok := r.BasicAuth()
	if !ok {
		clientID, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	s.mu.Lock()
	client := s.clients[clientID]
	s.mu.Unlock()
	if client == nil || client.Secret != secret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	switch r.PostFormValue("grant_type") {
	case "client_credentials":
		tok := "skat_" + randomID()
		s.mu.Lock()
		s.tokens[tok] = client.ID
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
		return
	case "authorization_code":
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	code := r.PostFormValue("code")
	s.mu.Lock()
	c := s.codes[code]
	delete(s.codes, code) // one use only
	s.mu.Unlock()
	if c == nil || c.client != client.ID || c.redirectURI != r.PostFormValue("redirect_uri") || time.Now().After(c.expires) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	if c.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
			return
		}
	}
	now := time.Now()
	claims := map[string]any{
		"iss": s.URL, "sub": c.session.user.ID, "aud": []string{client.ID}, "azp": client.ID, "client_id": client.ID,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "sid": c.session.id, "email": c.session.user.Email,
		"email_verified": true, "oid": "org_test",
	}
	if c.nonce != "" {
		claims["nonce"] = c.nonce
	}
	idToken, err := s.Sign(claims, "JWT")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": "skat_" + randomID(), "token_type": "Bearer", "expires_in": 3600,
		"refresh_token": "skrt_" + randomID(), "id_token": idToken,
	})
}

// endSession is /oidc/logout: it ends the session the cookie names, checks
// id_token_hint and post_logout_redirect_uri, echoes state, and on any error
// shows a 400 page and redirects nowhere.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	rec := LogoutRequest{SecFetchMode: r.Header.Get("Sec-Fetch-Mode"), SecFetchDest: r.Header.Get("Sec-Fetch-Dest")}
	defer func() {
		s.mu.Lock()
		s.logouts = append(s.logouts, rec)
		s.mu.Unlock()
	}()
	w.Header().Set("Cache-Control", "no-store")
	if err := r.ParseForm(); err != nil {
		rec.Status = http.StatusBadRequest
		errorPage(w, "invalid_request: malformed request")
		return
	}
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		claims, err := s.verifyOwnToken(hint)
		if err != nil {
			rec.Status = http.StatusBadRequest
			errorPage(w, "invalid_request: id_token_hint: "+err.Error())
			return
		}
		rec.IDTokenSubject, _ = claims["sub"].(string)
		aud := audience(claims)
		if clientID != "" && !slices.Contains(aud, clientID) {
			rec.Status = http.StatusBadRequest
			errorPage(w, "invalid_request: client_id does not match id_token_hint")
			return
		}
		if clientID == "" && len(aud) > 0 {
			clientID = aud[0]
		}
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if target != "" {
		s.mu.Lock()
		client := s.clients[clientID]
		s.mu.Unlock()
		if client == nil || !slices.Contains(client.PostLogoutRedirectURIs, target) {
			rec.Status = http.StatusBadRequest
			errorPage(w, "invalid_request: post_logout_redirect_uri is not registered for this client")
			return
		}
	}

	if c, err := r.Cookie(SessionCookie); err == nil {
		rec.HadCookie = true
		s.mu.Lock()
		if ses := s.sessions[c.Value]; ses != nil && !ses.ended {
			ses.ended = true
			rec.EndedSession = ses.id
		}
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if target == "" {
		rec.Status = http.StatusOK
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, signedOutPage)
		return
	}
	if st := r.Form.Get("state"); st != "" {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "state=" + queryEscape(st)
	}
	rec.Status, rec.RedirectedTo = http.StatusFound, target
	http.Redirect(w, r, target, http.StatusFound)
}

// verifyOwnToken accepts a JWT this server signed with any published key,
// expired or not, as OpenID Connect RP-Initiated Logout asks of id_token_hint.
func (s *Server) verifyOwnToken(raw string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	keys := slices.Clone(s.keys)
	s.mu.Unlock()
	for _, k := range keys {
		var claims map[string]any
		if err := tok.Claims(&k.key.PublicKey, &claims); err == nil {
			if claims["iss"] != s.URL {
				return nil, errors.New("not issued here")
			}
			return claims, nil
		}
	}
	return nil, errors.New("bad signature")
}

func audience(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return strings.ToLower(strings.TrimRight(base32.StdEncoding.EncodeToString(b), "="))
}
