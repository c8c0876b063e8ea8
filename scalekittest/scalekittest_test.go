// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/endsession/logout/scalekittest"
)

const (
	callback   = "https://app.example.com/callback"
	postLogout = "https://app.example.com/logged-out"
)

// newServer starts an environment with cfg and one client, skc_1.
func newServer(t testing.TB, cfg scalekittest.Config) *scalekittest.Server {
	t.Helper()
	cfg.Clients = append(cfg.Clients, scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}, PostLogoutRedirectURIs: []string{postLogout}})
	s, err := scalekittest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// userAgent keeps cookies and stops at every redirect, so each hop can be
// checked.
func userAgent() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// authorize runs the authorize step for clientID with a login_hint and
// returns the code; c keeps the server's session cookie.
func authorize(t testing.TB, s *scalekittest.Server, c *http.Client, clientID, email string, extra url.Values) string {
	t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid email profile offline_access"}, "login_hint": {email}, "state": {"st"}}
	for k, v := range extra {
		q[k] = v
	}
	resp, err := c.Get(s.URL + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: status %d, Location %v; want 302 back with code and state", resp.StatusCode, loc)
	}
	return loc.Query().Get("code")
}

type tokenReply struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	status       int
}

func postToken(t testing.TB, s *scalekittest.Server, form url.Values) tokenReply {
	t.Helper()
	if !form.Has("client_id") {
		form.Set("client_id", "skc_1")
		form.Set("client_secret", "secret")
	}
	resp, err := http.PostForm(s.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out tokenReply
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	out.status = resp.StatusCode
	return out
}

func exchange(t testing.TB, s *scalekittest.Server, code string) tokenReply {
	t.Helper()
	tok := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}})
	if tok.status != http.StatusOK || tok.IDToken == "" {
		t.Fatalf("code exchange: status %d, error %q", tok.status, tok.Error)
	}
	return tok
}

// signIn signs email in to skc_1 and returns its tokens and the user agent
// holding the server's cookie.
func signIn(t testing.TB, s *scalekittest.Server, email string) (*http.Client, tokenReply) {
	t.Helper()
	c := userAgent()
	return c, exchange(t, s, authorize(t, s, c, "skc_1", email, nil))
}

// claimsOf decodes a JWT's claims without checking them.
func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// clock is a time source tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var scalekitID = regexp.MustCompile(`^(usr|ses|org)_[0-9]+$`)

func halfHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func TestIDTokenVerifiesAndCarriesScalekitClaims(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	c := userAgent()
	code := authorize(t, s, c, "skc_1", "ada.lovelace@example.com", url.Values{"nonce": {"n-1"}})
	tok := exchange(t, s, code)
	p, err := oidc.NewProvider(context.Background(), s.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: "skc_1"}).Verify(context.Background(), tok.IDToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash does not match the access token: %v", err)
	}
	claims := claimsOf(t, tok.IDToken)
	for _, name := range []string{"iss", "aud", "azp", "sub", "oid", "exp", "iat", "at_hash", "c_hash", "amr", "email", "sid", "client_id", "name", "given_name", "family_name", "email_verified"} {
		if _, ok := claims[name]; !ok {
			t.Errorf("ID token lacks %s", name)
		}
	}
	for _, name := range []string{"sub", "sid", "oid"} {
		if v, _ := claims[name].(string); !scalekitID.MatchString(v) {
			t.Errorf("%s = %q, want a Scalekit ID (prefix_digits)", name, v)
		}
	}
	want := map[string]any{"c_hash": halfHash(code), "name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
		"email": "ada.lovelace@example.com", "client_id": "skc_1", "azp": "skc_1", "nonce": "n-1"}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("%s = %v, want %v", k, claims[k], v)
		}
	}
}

// A user's access token carries what the guides show of one (roles,
// permissions, the scope string, a tkn_ jti), not the scopes array of
// machine-to-machine tokens; the ID token's amr names the connection.
func TestAccessTokenClaims(t *testing.T) {
	s := newServer(t, scalekittest.Config{Organizations: []scalekittest.Organization{{ID: "org_42", ExternalID: "acme"}},
		Users: []scalekittest.User{{Email: "grace@example.com", Roles: []string{"admin"}, Permissions: []string{"users:read"}, ExternalID: "ext_7", OrganizationID: "org_42"}}})
	p, err := oidc.NewProvider(context.Background(), s.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email, xuid, xoid string
		roles             []any
		permissions       []any
	}{
		{"ada@example.com", "", "", []any{"member"}, []any{}},
		{"grace@example.com", "ext_7", "acme", []any{"admin"}, []any{"users:read"}},
	}
	for _, tt := range tests {
		_, tok := signIn(t, s, tt.email)
		// The access token verifies against /keys like an ID token does.
		if _, err := p.Verifier(&oidc.Config{ClientID: "skc_1"}).Verify(context.Background(), tok.AccessToken); err != nil {
			t.Fatalf("access token: %v", err)
		}
		claims := claimsOf(t, tok.AccessToken)
		jti, _ := claims["jti"].(string)
		xuid, _ := claims["xuid"].(string)
		switch {
		case claims["scope"] != "openid email profile offline_access" || claims["scopes"] != nil:
			t.Errorf("%s: scope %v, scopes %v; want the scope string alone", tt.email, claims["scope"], claims["scopes"])
		case !slices.Equal(claims["roles"].([]any), tt.roles) || !slices.Equal(claims["permissions"].([]any), tt.permissions):
			t.Errorf("%s: roles %v, permissions %v; want %v, %v", tt.email, claims["roles"], claims["permissions"], tt.roles, tt.permissions)
		case !regexp.MustCompile(`^tkn_[0-9]+$`).MatchString(jti) || xuid != tt.xuid:
			t.Errorf("%s: jti %q, xuid %q; want tkn_ and digits, %q", tt.email, jti, xuid, tt.xuid)
		case claims["client_id"] != "skc_1" || !scalekitID.MatchString(claims["sid"].(string)) || !scalekitID.MatchString(claims["oid"].(string)):
			t.Errorf("%s: access token claims %v, want client_id, sid and oid", tt.email, claims)
		}
		// xoid, the organization's external ID, in both tokens when it
		// has one (complete-login.mdx).
		if xoid, _ := claims["xoid"].(string); xoid != tt.xoid {
			t.Errorf("%s: access token's xoid %q, want %q", tt.email, xoid, tt.xoid)
		}
		if xoid, _ := claimsOf(t, tok.IDToken)["xoid"].(string); xoid != tt.xoid {
			t.Errorf("%s: ID token's xoid %q, want %q", tt.email, xoid, tt.xoid)
		}
		amr, _ := claimsOf(t, tok.IDToken)["amr"].([]any)
		ses, _ := s.Session(claims["sid"].(string))
		if len(amr) != 1 || amr[0] != ses.ConnectionID || !strings.HasPrefix(ses.ConnectionID, "conn_") {
			t.Errorf("%s: amr %v, want [%s], the connection it signed in with", tt.email, amr, ses.ConnectionID)
		}
		if tok.ExpiresIn != 300 {
			t.Errorf("expires_in %d, want 300 (five minutes)", tok.ExpiresIn)
		}
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	code := authorize(t, s, userAgent(), "skc_1", "ada@example.com", nil)
	exchange(t, s, code)
	again := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}})
	if again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("second exchange: %d %q, want 400 invalid_grant", again.status, again.Error)
	}
}

func TestPKCE(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	verifier := "a-verifier-of-forty-three-characters-or-more-xyz"
	sum := sha256.Sum256([]byte(verifier))
	challenge := url.Values{"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	tests := []struct {
		name     string
		verifier string
		status   int
	}{
		{"right verifier", verifier, http.StatusOK},
		{"wrong verifier", verifier + "x", http.StatusBadRequest},
		{"no verifier", "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		code := authorize(t, s, userAgent(), "skc_1", "ada@example.com", challenge)
		got := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {tt.verifier}})
		if got.status != tt.status {
			t.Errorf("%s: got %d, want %d", tt.name, got.status, tt.status)
		}
	}
}

func TestSecondAuthorizeSkipsTheForm(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	c, _ := signIn(t, s, "ada@example.com")
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}}
	tests := []struct {
		name   string
		client *http.Client
		prompt string
		status int
	}{
		{"live session", c, "", http.StatusFound},
		{"live session, prompt=login", c, "login", http.StatusOK},
		{"no session", userAgent(), "", http.StatusOK},
	}
	for _, tt := range tests {
		q.Set("prompt", tt.prompt)
		resp, err := tt.client.Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: got %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
}

// The login_hint shortcut signs in without the form, unless prompt=login
// asks for a fresh sign-in: then the form shows, filled in with the hint.
func TestLoginHintYieldsToPromptLogin(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}, "login_hint": {"ada@example.com"}}
	tests := []struct {
		prompt string
		status int
		forms  []scalekittest.Form
	}{
		{"", http.StatusFound, nil},
		{"consent", http.StatusFound, nil},
		{"login", http.StatusOK, []scalekittest.Form{scalekittest.ScalekitForm}},
	}
	for _, tt := range tests {
		q.Set("prompt", tt.prompt)
		resp, err := userAgent().Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("prompt=%s: got %d, want %d", tt.prompt, resp.StatusCode, tt.status)
		}
		if tt.status == http.StatusOK && !strings.Contains(string(page), `value="ada@example.com"`) {
			t.Errorf("prompt=%s: the form is not filled in with the hint", tt.prompt)
		}
		all := s.Authorizations()
		if got := all[len(all)-1].Forms; !slices.Equal(got, tt.forms) {
			t.Errorf("prompt=%s: forms %v, want %v", tt.prompt, got, tt.forms)
		}
	}
}

// An authorization request from an unknown client, or for a redirect URI
// the client did not register, gets an error page and goes nowhere; every
// other bad request goes back to the app's redirect URI with error,
// error_description and the state.
func TestAuthorizeRefusesBadRequests(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	if err := s.AddClient(scalekittest.Client{ID: "skc_spa", RedirectURIs: []string{callback}}); err != nil {
		t.Fatal(err)
	}
	base := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st-1"}}
	tests := []struct {
		name      string
		change    url.Values
		errorCode string // "" for the error page
	}{
		{"unknown client", url.Values{"client_id": {"skc_nobody"}}, ""},
		{"unregistered redirect", url.Values{"redirect_uri": {"https://evil.example/cb"}}, ""},
		{"redirect with a query", url.Values{"redirect_uri": {callback + "?x=1"}}, ""},
		{"token flow", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"no response_type", url.Values{"response_type": nil}, "invalid_request"},
		{"no openid scope", url.Values{"scope": {"email"}}, "invalid_scope"},
		{"plain PKCE", url.Values{"code_challenge_method": {"plain"}, "code_challenge": {"abc"}}, "invalid_request"},
		{"a method without a challenge", url.Values{"code_challenge_method": {"S256"}}, "invalid_request"},
		{"public client without PKCE", url.Values{"client_id": {"skc_spa"}}, "invalid_request"},
		{"prompt=none with another prompt", url.Values{"prompt": {"none login"}}, "invalid_request"},
		{"prompt=none without a session", url.Values{"prompt": {"none"}}, "login_required"},
		// sso/reference/sso-integration-errors.mdx
		{"unknown organization", url.Values{"organization_id": {"org_999"}}, "invalid_organization_id"},
		{"organization not an ID", url.Values{"organization_id": {"acme"}}, "invalid_organization_id"},
		{"unknown connection", url.Values{"connection_id": {"conn_999"}}, "invalid_connection_id"},
	}
	for _, tt := range tests {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for k, v := range tt.change {
			q[k] = v
		}
		resp, err := userAgent().Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if tt.errorCode == "" {
			if resp.StatusCode != http.StatusBadRequest || loc != nil {
				t.Errorf("%s: got %d to %v, want a 400 page and no redirect", tt.name, resp.StatusCode, loc)
			}
			continue
		}
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), callback+"?") ||
			loc.Query().Get("error") != tt.errorCode || loc.Query().Get("error_description") == "" ||
			loc.Query().Get("state") != "st-1" || loc.Query().Has("code") {
			t.Errorf("%s: got %d to %v, want 302 to the callback with error=%s, a description and the state", tt.name, resp.StatusCode, loc, tt.errorCode)
		}
		if a := s.Authorizations(); a[len(a)-1].Error != tt.errorCode {
			t.Errorf("%s: recorded error %q, want %q", tt.name, a[len(a)-1].Error, tt.errorCode)
		}
	}
}

// An organization or connection the environment has lets the sign-in go
// on, an organization without an upstream to the environment's own form;
// an unknown one is refused even when a live session could have answered.
func TestOrganizationAndConnectionMustExist(t *testing.T) {
	s := newServer(t, scalekittest.Config{Organizations: []scalekittest.Organization{{ID: "org_42"}}})
	c, tok := signIn(t, s, "ada@example.com")
	ownConn := claimsOf(t, tok.IDToken)["amr"].([]any)[0].(string)
	tests := []struct {
		params url.Values
		error  string // "" for a code
	}{
		{url.Values{"organization_id": {"org_42"}}, ""},
		{url.Values{"organization_id": {s.DefaultOrganization().ID}}, ""},
		{url.Values{"connection_id": {ownConn}}, ""},
		{url.Values{"organization_id": {"org_43"}}, "invalid_organization_id"},
		{url.Values{"organization_id": {"org_42"}, "connection_id": {"conn_1"}}, "invalid_connection_id"},
	}
	for _, tt := range tests {
		q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st"}}
		for k, v := range tt.params {
			q[k] = v
		}
		resp, err := c.Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		if loc == nil || loc.Query().Get("error") != tt.error || (tt.error == "") != loc.Query().Has("code") || loc.Query().Get("state") != "st" {
			t.Errorf("%v with a live session: %d to %v, want the callback with error %q", tt.params, resp.StatusCode, loc, tt.error)
		}
	}
}

// prompt=none never shows a page: with a live session it returns a code at
// once; without one, login_required with the state.
func TestPromptNone(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	c, _ := signIn(t, s, "ada@example.com")
	code := authorize(t, s, c, "skc_1", "", url.Values{"prompt": {"none"}, "login_hint": nil})
	if tok := exchange(t, s, code); claimsOf(t, tok.IDToken)["email"] != "ada@example.com" {
		t.Errorf("prompt=none with a session signed in %v", claimsOf(t, tok.IDToken)["email"])
	}
	// The hint does not sign anyone in: prompt=none shows nothing, and
	// the shortcut is a form's.
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"},
		"prompt": {"none"}, "state": {"st"}, "login_hint": {"ada@example.com"}}
	resp, err := userAgent().Get(s.URL + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "login_required" || loc.Query().Get("state") != "st" {
		t.Errorf("prompt=none without a session: %d to %v, want login_required with the state", resp.StatusCode, loc)
	}
}

// The authorization code lives ten minutes, as the guides say: a minute
// short of that it is redeemed, after it refused.
func TestCodeLifetime(t *testing.T) {
	for _, tt := range []struct {
		after  time.Duration
		status int
	}{{9 * time.Minute, http.StatusOK}, {10 * time.Minute, http.StatusBadRequest}} {
		clk := newClock()
		s := newServer(t, scalekittest.Config{Now: clk.Now})
		code := authorize(t, s, userAgent(), "skc_1", "ada@example.com", nil)
		clk.Advance(tt.after)
		if got := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}}); got.status != tt.status {
			t.Errorf("a code redeemed %v later: %d, want %d", tt.after, got.status, tt.status)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  scalekittest.Config
	}{
		{"relative redirect URI", scalekittest.Config{Clients: []scalekittest.Client{{ID: "skc_1", RedirectURIs: []string{"/cb"}}}}},
		{"post-logout URI with a query", scalekittest.Config{Clients: []scalekittest.Client{{ID: "skc_1", PostLogoutRedirectURIs: []string{"https://a.example/out?x=1"}}}}},
		{"user with a bad ID", scalekittest.Config{Users: []scalekittest.User{{ID: "user_1", Email: "a@example.com"}}}},
		{"user in an unknown organization", scalekittest.Config{Users: []scalekittest.User{{Email: "a@example.com", OrganizationID: "org_1"}}}},
		{"user twice", scalekittest.Config{Users: []scalekittest.User{{Email: "a@example.com"}, {Email: "a@example.com"}}}},
		{"organization with a bad ID", scalekittest.Config{Organizations: []scalekittest.Organization{{ID: "acme"}}}},
		{"two upstreams for one domain", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}}, {Domains: []string{"SSO.example"}}}}},
		{"negative retry delay", scalekittest.Config{DeliveryRetryDelays: []time.Duration{-time.Second}}},
		{"client without ID", scalekittest.Config{Clients: []scalekittest.Client{{Secret: "x"}}}},
		{"negative idle timeout", scalekittest.Config{IdleTimeout: -time.Second}},
		{"webhook secret without prefix", scalekittest.Config{WebhookSecret: "c2VjcmV0"}},
		{"relative webhook URL", scalekittest.Config{WebhookURLs: []string{"/hooks"}}},
		{"address in use", scalekittest.Config{Addr: "256.0.0.1:0"}},
		{"upstream options without a route to it", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{ForwardPrompt: true}}}},
		{"upstream domain with an @", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"@sso.example"}}}}},
		{"upstream organization not org_ and digits", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{OrganizationID: "acme"}}}},
		{"upstream connection not conn_ and digits", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{ConnectionID: "conn_okta"}}}},
		{"upstream address unusable", scalekittest.Config{Upstreams: []scalekittest.UpstreamConfig{{Domains: []string{"sso.example"}, Addr: "256.0.0.1:0"}}}},
	}
	for _, tt := range tests {
		s, err := scalekittest.New(tt.cfg)
		if err == nil {
			s.Close()
			t.Errorf("%s: New succeeded, want an error", tt.name)
		} else if !strings.HasPrefix(err.Error(), "scalekittest: ") {
			t.Errorf("%s: error %q lacks the scalekittest: prefix", tt.name, err)
		}
	}
}

func TestDiscovery(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	resp, err := http.Get(s.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer      string   `json:"issuer"`
		EndSession  string   `json:"end_session_endpoint"`
		GrantTypes  []string `json:"grant_types_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		BackChannel bool     `json:"backchannel_logout_supported"`
		Revocation  *string  `json:"revocation_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	// Public clients authenticate with none; no revocation endpoint, whose
	// path Scalekit does not document.
	if doc.Issuer != s.URL || doc.EndSession != s.URL+"/oidc/logout" || !doc.BackChannel ||
		strings.Join(doc.GrantTypes, " ") != "authorization_code refresh_token client_credentials" ||
		strings.Join(doc.AuthMethods, " ") != "client_secret_basic client_secret_post none" || doc.Revocation != nil {
		t.Errorf("discovery %+v", doc)
	}
}
