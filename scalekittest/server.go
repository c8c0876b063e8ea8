// SPDX-License-Identifier: Apache-2.0

package scalekittest

// The server itself: starting and stopping it, its routes, and the discovery
// document that describes them.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// SessionCookie is the name of the server's own session cookie.
const SessionCookie = "skit_session"

// ErrNotFound is returned (wrapped) for an unknown session or user.
var ErrNotFound = errors.New("scalekittest: not found")

// Server is a fake Scalekit environment. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the environment URL, such as http://127.0.0.1:8081: the
	// OpenID issuer.
	URL string

	cfg      Config
	now      func() time.Time
	srv      *http.Server
	ups      []*Upstream          // in the order of Config.Upstreams
	upByConn map[string]*Upstream // by connection ID
	listener net.Listener
	http     *http.Client
	secret   []byte // the webhook key
	envID    string
	orgID    string // the default organization
	// connID is the connection of the environment's own sign-in form. An
	// ID token's amr always names the connection that signed the user in
	// (developer-docs src/content/docs/authenticate/fsa/complete-login.mdx);
	// which one a sign-in without enterprise SSO names is undocumented, so
	// the environment has one of its own.
	connID string
	stop   chan struct{}
	bg     sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	keys       []*signingKey // keys[0] signs; all are published
	clients    map[string]*Client
	users      map[string]*User // by email
	userByID   map[string]*User
	orgs       map[string]*Organization
	sessions   map[string]*session
	codes      map[string]*authCode
	refresh    map[string]*refreshGrant
	apiTokens  map[string]time.Time // jti of client_credentials tokens -> expiry
	logouts    []*LogoutRequest
	authzs     []*authorization
	authzByID  map[string]*authorization
	pending    map[string]*federation // sign-ins gone upstream, by state
	idpLogouts map[string]*idpLogout  // logouts gone upstream, by state
	deliveries []*Delivery
	inflight   int
	settled    chan struct{} // closed when inflight drops to zero
}

// The session policy a [Config] gets when it sets none; see
// [Config.IdleTimeout].
const (
	DefaultIdleTimeout     = 7 * 24 * time.Hour
	DefaultAbsoluteTimeout = 30 * 24 * time.Hour
)

// defaultRetryDelays is the webhook guide's schedule; see
// [Config.DeliveryRetryDelays].
var defaultRetryDelays = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute}

// New starts an environment as cfg describes. Close it when done.
func New(cfg Config) (_ *Server, err error) {
	s := &Server{
		cfg:        cfg,
		now:        cfg.Now,
		http:       cfg.HTTPClient,
		envID:      newID("env_"),
		orgID:      newID("org_"),
		connID:     newID("conn_"),
		stop:       make(chan struct{}),
		upByConn:   map[string]*Upstream{},
		clients:    map[string]*Client{},
		users:      map[string]*User{},
		userByID:   map[string]*User{},
		orgs:       map[string]*Organization{},
		sessions:   map[string]*session{},
		codes:      map[string]*authCode{},
		refresh:    map[string]*refreshGrant{},
		apiTokens:  map[string]time.Time{},
		authzByID:  map[string]*authorization{},
		pending:    map[string]*federation{},
		idpLogouts: map[string]*idpLogout{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.http == nil {
		s.http = &http.Client{}
	}
	if s.cfg.IdleTimeout == 0 {
		s.cfg.IdleTimeout = DefaultIdleTimeout
	}
	if s.cfg.AbsoluteTimeout == 0 {
		s.cfg.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if s.cfg.AccessTokenLifetime == 0 {
		s.cfg.AccessTokenLifetime = 5 * time.Minute
	}
	if s.cfg.ClientCredentialsLifetime == 0 {
		s.cfg.ClientCredentialsLifetime = 86399 * time.Second
	}
	if s.cfg.DeliveryRetryDelays == nil {
		s.cfg.DeliveryRetryDelays = defaultRetryDelays
	}
	s.cfg.DeliveryRetryDelays = slices.Clone(s.cfg.DeliveryRetryDelays)
	if s.cfg.DeliveryTimeout == 0 {
		s.cfg.DeliveryTimeout = 10 * time.Second
	}
	if err := s.checkConfig(); err != nil {
		return nil, err
	}
	s.orgs[s.orgID] = &Organization{ID: s.orgID, DisplayName: "Default organization"}
	for _, o := range cfg.Organizations {
		if _, err := s.AddOrganization(o); err != nil {
			return nil, err
		}
	}

	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("scalekittest: %w", err)
	}
	s.listener = l
	s.URL = "http://" + l.Addr().String()
	defer func() {
		if err != nil {
			l.Close()
			for _, up := range s.ups {
				up.listener.Close()
			}
		}
	}()
	if err := s.startUpstreams(); err != nil {
		return nil, err
	}
	for _, c := range cfg.Clients {
		if err := s.AddClient(c); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.Users {
		if _, err := s.AddUser(u); err != nil {
			return nil, err
		}
	}
	s.RotateKey()

	// One port serves browsers over HTTP/1.1 and the SDKs' gRPC over
	// unencrypted HTTP/2, as Scalekit serves both on the environment URL.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{Handler: s.routes(), Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.srv.Serve(l)
	}()
	for _, up := range s.ups {
		s.bg.Add(1)
		go up.serve()
	}
	s.bg.Add(1)
	go s.sweepEvery(s.sweepInterval())
	return s, nil
}

// NewServer starts a strict environment on a free loopback port, and panics
// if it cannot, as httptest.NewServer does.
func NewServer() *Server {
	s, err := New(Config{})
	if err != nil {
		panic(err)
	}
	return s
}

func (s *Server) checkConfig() error {
	c := s.cfg
	switch {
	case c.IdleTimeout < 0 || c.AbsoluteTimeout < 0 || c.AccessTokenLifetime < 0 || c.ClientCredentialsLifetime < 0:
		return errors.New("scalekittest: timeouts and lifetimes cannot be negative")
	case c.DeliveryTimeout < 0 || slices.ContainsFunc(c.DeliveryRetryDelays, func(d time.Duration) bool { return d < 0 }):
		return errors.New("scalekittest: delivery timeout and retry delays cannot be negative")
	case c.HintlessLogout < RefuseHintlessLogout || c.HintlessLogout > RedirectHintlessLogout:
		return fmt.Errorf("scalekittest: unknown HintlessLogout %d", c.HintlessLogout)
	}
	if err := s.checkUpstreams(); err != nil {
		return err
	}
	for _, u := range c.WebhookURLs {
		if !absoluteURL(u) {
			return fmt.Errorf("scalekittest: webhook URL %q is not an absolute http(s) URL", u)
		}
	}
	if c.WebhookSecret == "" {
		s.secret = make([]byte, 24)
		rand.Read(s.secret)
		return nil
	}
	key, ok := strings.CutPrefix(c.WebhookSecret, "whsec_")
	b, err := base64.StdEncoding.DecodeString(key)
	if !ok || err != nil || len(b) == 0 {
		return errors.New(`scalekittest: the webhook secret must be "whsec_" followed by a base64 key`)
	}
	s.secret = b
	return nil
}

// Issuer is the environment URL: the OpenID issuer.
func (s *Server) Issuer() string { return s.URL }

// WebhookSecret returns the secret webhooks are signed with, in the
// dashboard's "whsec_…" form.
func (s *Server) WebhookSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString(s.secret)
}

// Close stops the server, and its upstream providers, at once: open
// connections are closed and pending deliveries abandoned.
func (s *Server) Close() {
	s.shutdown(func() {
		s.srv.Close()
		for _, up := range s.ups {
			up.srv.Close()
		}
	})
}

// Shutdown stops the server, and its upstream providers, gracefully: it
// stops accepting requests, waits for those in progress, then abandons
// pending delivery retries.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdown(func() {
		err = s.srv.Shutdown(ctx)
		for _, up := range s.ups {
			err = errors.Join(err, up.srv.Shutdown(ctx))
		}
	})
	return err
}

func (s *Server) shutdown(stopHTTP func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	stopHTTP()
	close(s.stop)
	s.bg.Wait()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /keys", s.jwks)
	mux.HandleFunc("GET /oauth/authorize", s.authorize)
	mux.HandleFunc("POST /oauth/authorize", s.signInForm)
	// Each connection's URLs, as the API reference shows them for an OIDC
	// connection (developer-docs openapi/scalekit.yaml,
	// connectionsOIDCConnectionConfig: redirect_uri and
	// post_logout_redirect_uri).
	mux.HandleFunc("GET /sso/v1/oidc/{connection_id}/callback", s.ssoCallback)
	mux.HandleFunc("GET /sso/v1/oidc/{connection_id}/logout/callback", s.idpLogoutCallback)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("/oidc/logout", s.endSession)
	mux.HandleFunc("GET /api/v1/sessions/{session_id}", s.restGetSession)
	mux.HandleFunc("POST /api/v1/sessions/{session_id}/revoke", s.restRevokeSession)
	mux.HandleFunc("GET /api/v1/users/{user_id}/sessions", s.restUserSessions)
	mux.HandleFunc("POST /api/v1/users/{user_id}/sessions/revoke", s.restRevokeUserSessions)
	s.inspectionRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGRPC(r) {
			s.serveGRPC(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.URL,
		"authorization_endpoint":                s.URL + "/oauth/authorize",
		"token_endpoint":                        s.URL + "/oauth/token",
		"jwks_uri":                              s.URL + "/keys",
		"end_session_endpoint":                  s.URL + "/oidc/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		// Every SDK and guide sends the secret in the form
		// (client_secret_post: scalekit-sdk-node src/scalekit.ts,
		// authenticateWithCode; developer-docs src/content/docs/guides/
		// authenticate-scalekit-api.mdx); the MCP guide registers a client
		// with client_secret_basic (developer-docs src/content/docs/
		// authenticate/mcp/additional-reading.mdx). Both are accepted. A
		// public client sends no secret at all, its client_id and PKCE
		// verifier alone (none: developer-docs src/content/docs/
		// authenticate/fsa/multiapp/single-page-app.mdx and
		// native-app.mdx).
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"claims_supported": []string{"iss", "aud", "azp", "sub", "oid", "exp", "iat", "at_hash", "c_hash", "amr",
			"email", "email_verified", "name", "given_name", "family_name", "sid", "client_id", "nonce", "xoid"},
		"backchannel_logout_supported":         true,
		"backchannel_logout_session_supported": true,
	})
}
