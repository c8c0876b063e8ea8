package scalekittest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/endsession/logout/scalekittest"
)

const (
	callback   = "https://app.example.com/callback"
	postLogout = "https://app.example.com/logged-out"
)

// signIn runs the authorize step with a login_hint and returns the code and
// a client holding the server's session cookie.
func signIn(t *testing.T, s *scalekittest.Server, email string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid email"}, "login_hint": {email}, "state": {"st"}}
	resp, err := c.Get(s.URL + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize: %d %v", resp.StatusCode, loc)
	}
	return c, loc.Query().Get("code")
}

func newServer(t *testing.T) *scalekittest.Server {
	s := scalekittest.NewServer()
	t.Cleanup(s.Close)
	s.AddClient(scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback}, PostLogoutRedirectURIs: []string{postLogout}})
	return s
}

func idToken(t *testing.T, s *scalekittest.Server, code string) string {
	t.Helper()
	resp, err := http.PostForm(s.URL+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {"skc_1"}, "client_secret": {"secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := jsonDecode(resp, &tok); err != nil || tok.IDToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.IDToken
}

func TestIDTokensVerifyWithGoOIDC(t *testing.T) {
	s := newServer(t)
	_, code := signIn(t, s, "ada@example.com")
	raw := idToken(t, s, code)
	p, err := oidc.NewProvider(context.Background(), s.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Verifier(&oidc.Config{ClientID: "skc_1"}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ SID, Email string }
	tok.Claims(&claims)
	if !strings.HasPrefix(tok.Subject, "usr_") || !strings.HasPrefix(claims.SID, "ses_") || claims.Email != "ada@example.com" {
		t.Errorf("claims sub=%q sid=%q email=%q", tok.Subject, claims.SID, claims.Email)
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	s := newServer(t)
	_, code := signIn(t, s, "ada@example.com")
	idToken(t, s, code)
	resp, _ := http.PostForm(s.URL+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "client_id": {"skc_1"}, "client_secret": {"secret"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second exchange: %d, want 400", resp.StatusCode)
	}
}

func TestEndSessionRules(t *testing.T) {
	s := newServer(t)
	s.AddClient(scalekittest.Client{ID: "skc_2", Secret: "x", PostLogoutRedirectURIs: []string{"https://other.example/out"}})
	other := scalekittest.NewServer() // a foreign issuer's token
	defer other.Close()
	foreign, _ := other.Sign(map[string]any{"iss": other.URL, "sub": "usr_x", "aud": []string{"skc_1"}, "exp": time.Now().Add(time.Hour).Unix()}, "JWT")
	expired, _ := s.Sign(map[string]any{"iss": s.URL, "sub": "usr_x", "aud": []string{"skc_1"}, "exp": time.Now().Add(-time.Hour).Unix()}, "JWT")

	tests := []struct {
		name   string
		params url.Values
		status int
	}{
		{"own token, registered URI", url.Values{"post_logout_redirect_uri": {postLogout}, "state": {"s1"}}, http.StatusFound},
		{"expired own token is accepted", url.Values{"id_token_hint": {expired}, "post_logout_redirect_uri": {postLogout}}, http.StatusFound},
		{"client_id alone", url.Values{"client_id": {"skc_1"}, "post_logout_redirect_uri": {postLogout}}, http.StatusFound},
		{"unregistered URI", url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, http.StatusBadRequest},
		{"relative URI", url.Values{"post_logout_redirect_uri": {"/logged-out"}}, http.StatusBadRequest},
		{"foreign token", url.Values{"id_token_hint": {foreign}, "post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest},
		{"garbage token", url.Values{"id_token_hint": {"a.b.c"}}, http.StatusBadRequest},
		{"client_id not the token's", url.Values{"client_id": {"skc_2"}, "post_logout_redirect_uri": {"https://other.example/out"}}, http.StatusBadRequest},
		{"URI of another client", url.Values{"client_id": {"skc_2"}, "post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest},
		{"no redirect asked", url.Values{}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, code := signIn(t, s, "ada@example.com")
			user := s.User("ada@example.com")
			q := tt.params
			if !q.Has("id_token_hint") && tt.name != "client_id alone" && tt.name != "URI of another client" {
				q.Set("id_token_hint", idToken(t, s, code))
			}
			before := len(s.ActiveSessions(user.ID))
			resp, err := c.Get(s.URL + "/oidc/logout?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			after := len(s.ActiveSessions(user.ID))
			if tt.status == http.StatusBadRequest {
				if resp.Header.Get("Location") != "" || after != before {
					t.Errorf("an error redirected (%q) or ended a session (%d -> %d)", resp.Header.Get("Location"), before, after)
				}
				return
			}
			if after != before-1 {
				t.Errorf("sessions %d -> %d, want one ended", before, after)
			}
			if st := q.Get("state"); st != "" {
				if loc, _ := resp.Location(); loc.Query().Get("state") != st {
					t.Errorf("state not echoed: %v", loc)
				}
			}
		})
	}
}

func TestSecondAuthorizeSkipsTheForm(t *testing.T) {
	s := newServer(t)
	c, _ := signIn(t, s, "ada@example.com")
	q := url.Values{"client_id": {"skc_1"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"openid"}}
	resp, _ := c.Get(s.URL + "/oauth/authorize?" + q.Encode())
	if resp.StatusCode != http.StatusFound {
		t.Errorf("authorize with a live session: %d, want 302 straight back", resp.StatusCode)
	}
	resp, _ = http.Get(s.URL + "/oauth/authorize?" + q.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Errorf("authorize without a session: %d, want 200 (the form)", resp.StatusCode)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
