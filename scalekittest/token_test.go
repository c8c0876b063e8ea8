// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// tokenRequest posts form to /oauth/token, with the client's credentials
// in Basic auth when basic is set, and decodes the answer.
func tokenRequest(t testing.TB, s *scalekittest.Server, form url.Values, basic *url.Userinfo) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		secret, _ := basic.Password()
		req.SetBasicAuth(basic.Username(), secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// A confidential client authenticates with its secret in the form
// (client_secret_post, as every SDK does) or in Basic auth
// (client_secret_basic, as the MCP guide registers one), each form-encoded
// as RFC 6749 asks; never both at once, and never without the secret.
func TestClientAuthentication(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	const odd = "se cret&+/=" // needs form-encoding inside Basic auth
	if err := s.AddClient(scalekittest.Client{ID: "skc_odd", Secret: odd, RedirectURIs: []string{callback}}); err != nil {
		t.Fatal(err)
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	with := func(extra url.Values) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	tests := []struct {
		name   string
		form   url.Values
		basic  *url.Userinfo
		status int
		error  string
	}{
		{"client_secret_post", with(url.Values{"client_id": {"skc_1"}, "client_secret": {"secret"}}), nil, 200, ""},
		{"client_secret_basic", cc, url.UserPassword("skc_1", "secret"), 200, ""},
		{"client_secret_basic, form-encoded", cc, url.UserPassword(url.QueryEscape("skc_odd"), url.QueryEscape(odd)), 200, ""},
		{"client_secret_post, odd secret", with(url.Values{"client_id": {"skc_odd"}, "client_secret": {odd}}), nil, 200, ""},
		{"both at once", with(url.Values{"client_secret": {"secret"}}), url.UserPassword("skc_1", "secret"), 400, "invalid_request"},
		{"wrong secret", with(url.Values{"client_id": {"skc_1"}, "client_secret": {"nope"}}), nil, 401, "invalid_client"},
		{"no secret", with(url.Values{"client_id": {"skc_1"}}), nil, 401, "invalid_client"},
		{"unknown client", cc, url.UserPassword("skc_x", "secret"), 401, "invalid_client"},
	}
	for _, tt := range tests {
		status, got := tokenRequest(t, s, tt.form, tt.basic)
		if status != tt.status || (tt.error != "" && got["error"] != tt.error) {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, got, tt.status, tt.error)
		}
	}
}

// The client_credentials reply carries scope and, by default, the
// documented expires_in of 86,399 seconds; its token is a
// machine-to-machine one, with the scopes array and a tkn_ jti.
func TestClientCredentialsReply(t *testing.T) {
	for _, tt := range []struct {
		life time.Duration
		want float64
	}{{0, 86399}, {time.Hour, 3600}} {
		s := newServer(t, scalekittest.Config{ClientCredentialsLifetime: tt.life})
		status, got := tokenRequest(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {"skc_1"}, "client_secret": {"secret"}}, nil)
		if status != 200 || got["scope"] != "openid" || got["expires_in"] != tt.want || got["token_type"] != "Bearer" {
			t.Fatalf("lifetime %v: reply %v, want scope openid and expires_in %v", tt.life, got, tt.want)
		}
		claims := claimsOf(t, got["access_token"].(string))
		scopes, _ := claims["scopes"].([]any)
		jti, _ := claims["jti"].(string)
		if len(scopes) != 1 || scopes[0] != "openid" || claims["client_id"] != "skc_1" || claims["sub"] != "skc_1" ||
			!regexp.MustCompile(`^tkn_[0-9]+$`).MatchString(jti) || claims["exp"].(float64)-claims["iat"].(float64) != tt.want {
			t.Errorf("lifetime %v: token claims %v", tt.life, claims)
		}
	}
}

// A public client, registered without a secret, signs in with PKCE and
// redeems its code and refreshes with its client_id and the code_verifier
// alone, as the guides for single-page and native apps show. An empty
// client_secret, as Scalekit's Node SDK sends for a client built without
// one, counts as none; a real one, or the client_credentials grant, is
// refused.
func TestPublicClient(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	const native = "myapp://callback"
	if err := s.AddClient(scalekittest.Client{ID: "skc_spa", RedirectURIs: []string{callback, native}}); err != nil {
		t.Fatal(err)
	}
	verifier := "a-verifier-of-forty-three-characters-or-more-xyz"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authorizeTo := func(redirectURI string) string {
		t.Helper()
		q := url.Values{"client_id": {"skc_spa"}, "redirect_uri": {redirectURI}, "response_type": {"code"},
			"scope": {"openid offline_access"}, "login_hint": {"ada@example.com"}, "state": {"st"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		resp, err := userAgent().Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, redirectURI+"?") {
			t.Fatalf("authorize: %d to %q, want %s with a code", resp.StatusCode, loc, redirectURI)
		}
		u, _ := url.Parse(loc)
		return u.Query().Get("code")
	}
	exchangeWith := func(redirectURI string, extra url.Values) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"skc_spa"}, "code": {authorizeTo(redirectURI)}, "redirect_uri": {redirectURI}}
		for k, v := range extra {
			form[k] = v
		}
		return tokenRequest(t, s, form, nil)
	}
	for _, tt := range []struct {
		name   string
		uri    string
		extra  url.Values
		status int
	}{
		{"verifier alone", callback, url.Values{"code_verifier": {verifier}}, 200},
		{"a native app's custom scheme", native, url.Values{"code_verifier": {verifier}}, 200},
		{"empty client_secret", callback, url.Values{"code_verifier": {verifier}, "client_secret": {""}}, 200},
		{"no verifier", callback, nil, 400},
		{"a secret", callback, url.Values{"code_verifier": {verifier}, "client_secret": {"guess"}}, 401},
	} {
		status, got := exchangeWith(tt.uri, tt.extra)
		if status != tt.status {
			t.Errorf("%s: %d %v, want %d", tt.name, status, got, tt.status)
		}
	}
	_, tok := exchangeWith(callback, url.Values{"code_verifier": {verifier}})
	status, renewed := tokenRequest(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {"skc_spa"}, "refresh_token": {tok["refresh_token"].(string)}}, nil)
	if status != 200 || renewed["refresh_token"] == nil || renewed["refresh_token"] == tok["refresh_token"] {
		t.Errorf("refresh with client_id alone: %d %v, want new tokens", status, renewed)
	}
	if status, got := tokenRequest(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {"skc_spa"}}, nil); status != 400 || got["error"] != "unauthorized_client" {
		t.Errorf("client_credentials for a public client: %d %v, want 400 unauthorized_client", status, got)
	}
}
