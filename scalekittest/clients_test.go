// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/endsession/logout/scalekittest"
)

// Callback and post-logout URIs follow the dashboard's redirects guide: no
// query, no fragment, at most 256 characters, a custom scheme allowed; the
// error names the rule.
func TestRedirectURIRules(t *testing.T) {
	long := "https://app.example.com/" + strings.Repeat("a", 256-len("https://app.example.com/"))
	tests := []struct {
		uri  string
		rule string // "" when accepted
	}{
		{"https://app.example.com/callback", ""},
		{"http://localhost:3000/callback", ""},
		{"myapp://callback", ""},
		{"com.example.app:/oauth2redirect", ""},
		{long, ""},
		{long + "a", "at most 256"},
		{"https://app.example.com/callback?next=1", "no query"},
		{"https://app.example.com/callback?", "no query"},
		{"https://app.example.com/callback#top", "no fragment"},
		{"/callback", "absolute"},
		{"https:///callback", "host"},
		{"myapp:", "host or a path"},
		// Wildcards, in development (redirects.mdx, "Wildcard usage
		// patterns").
		{"https://*.acmecorp.com/callback", ""},
		{"https://auth-*.acmecorp.com/callback", ""},
		{"https://*.auth.acmecorp.com/callback", ""},
		{"http://*.app.localhost:3000/callback", ""},
		{"https://*.com/callback", "top-level domain"},
		{"http://*.localhost:3000/callback", "top-level domain"},
		{"http://*.0.0.1/callback", "top-level domain"},
		{"https://*.*.acmecorp.com/callback", "one per URI"},
		{"https://acmecorp.*.com/callback", "outermost subdomain"},
		{"https://auth.*.acmecorp.com/callback", "outermost subdomain"},
		{"https://app.acmecorp.com/*", "host name"},
		{"http://localhost:*/callback", "host name"},
		{"https://*@app.acmecorp.com/callback", "host name"},
		{"myapp://*.acmecorp.com/callback", "http and https"},
		{"https://*.acmecorp.com/callback?x=1", "no query"},
	}
	s := scalekittest.NewServer()
	defer s.Close()
	for _, tt := range tests {
		for _, field := range []string{"redirect", "post-logout"} {
			c := scalekittest.Client{ID: "skc_1"}
			if field == "redirect" {
				c.RedirectURIs = []string{tt.uri}
			} else {
				c.PostLogoutRedirectURIs = []string{tt.uri}
			}
			err := s.AddClient(c)
			switch {
			case tt.rule == "" && err != nil:
				t.Errorf("%s URI %q: %v, want it accepted", field, tt.uri, err)
			case tt.rule != "" && (err == nil || !strings.Contains(err.Error(), tt.rule)):
				t.Errorf("%s URI %q: %v, want an error naming %q", field, tt.uri, err, tt.rule)
			}
		}
	}
}

// A registered wildcard matches what the guide's patterns allow, at
// /oauth/authorize and /oidc/logout alike: one or more characters of one
// DNS label where the wildcard stands, the rest of the URI unchanged.
func TestWildcardRedirectURIs(t *testing.T) {
	s := newServer(t, scalekittest.Config{Clients: []scalekittest.Client{{ID: "skc_w", Secret: "secret",
		RedirectURIs:           []string{"http://*.app.localhost:3000/callback", "https://auth-*.acmecorp.com/callback"},
		PostLogoutRedirectURIs: []string{"http://*.app.localhost:3000/bye"}}}})
	tests := []struct {
		uri  string
		want bool
	}{
		{"http://eu.app.localhost:3000/callback", true},
		{"http://EU-2.app.localhost:3000/callback", true},
		{"https://auth-eu.acmecorp.com/callback", true},
		{"http://app.localhost:3000/callback", false},        // the wildcard stands for something
		{"http://a.b.app.localhost:3000/callback", false},    // one label
		{"https://auth-.acmecorp.com/callback", false},       // one or more characters
		{"https://eu.acmecorp.com/callback", false},          // the rest of the label too
		{"http://eu.app.localhost:3001/callback", false},     // the port
		{"https://eu.app.localhost:3000/callback", false},    // the scheme
		{"http://eu.app.localhost:3000/callback/x", false},   // the path
		{"http://eu.app.localhost:3000/callback?x=1", false}, // a query
		{"http://evil.example/x.app.localhost:3000/callback", false},
		{"http://evil.example@eu.app.localhost:3000/callback", false},
		{"http://" + strings.Repeat("a", 230) + ".app.localhost:3000/callback", false}, // over 256 characters
	}
	for _, tt := range tests {
		q := url.Values{"client_id": {"skc_w"}, "redirect_uri": {tt.uri}, "response_type": {"code"}, "scope": {"openid"}, "login_hint": {"ada@example.com"}, "state": {"st"}}
		resp, err := userAgent().Get(s.URL + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), tt.uri+"?code=")
		if got != tt.want || (!got && resp.StatusCode != http.StatusBadRequest) {
			t.Errorf("redirect_uri %s: %d to %q; want registered %v", tt.uri, resp.StatusCode, resp.Header.Get("Location"), tt.want)
		}
	}
	// The post-logout URI matches the same way.
	for _, tt := range []struct {
		uri  string
		want bool
	}{{"http://eu.app.localhost:3000/bye", true}, {"http://app.localhost:3000/bye", false}} {
		c := userAgent()
		const cb = "http://eu.app.localhost:3000/callback"
		code := authorize(t, s, c, "skc_w", "ada@example.com", url.Values{"redirect_uri": {cb}})
		tok := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}, "client_id": {"skc_w"}, "client_secret": {"secret"}})
		if tok.status != http.StatusOK {
			t.Fatalf("code exchange through a wildcard redirect URI: %d %q", tok.status, tok.Error)
		}
		resp := logout(t, s, c, url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {tt.uri}})
		if got := resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == tt.uri; got != tt.want || (!got && resp.StatusCode != http.StatusBadRequest) {
			t.Errorf("post_logout_redirect_uri %s: %d to %q; want registered %v", tt.uri, resp.StatusCode, resp.Header.Get("Location"), tt.want)
		}
	}
}
