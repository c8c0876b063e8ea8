// SPDX-License-Identifier: Apache-2.0

package scalekittest_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/endsession/logout/scalekittest"
)

// logout navigates c to /oidc/logout with params.
func logout(t testing.TB, s *scalekittest.Server, c *http.Client, params url.Values) *http.Response {
	t.Helper()
	resp, err := c.Get(s.URL + "/oidc/logout?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestEndSessionRules(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	if err := s.AddClient(scalekittest.Client{ID: "skc_2", Secret: "x", PostLogoutRedirectURIs: []string{"https://other.example/out"}}); err != nil {
		t.Fatal(err)
	}
	other := scalekittest.NewServer() // a foreign issuer's token
	defer other.Close()
	foreign, _ := other.Sign(map[string]any{"iss": other.URL, "sub": "usr_1", "aud": []string{"skc_1"}, "exp": time.Now().Add(time.Hour).Unix()}, "JWT")

	const hint = "HINT"       // replaced by the signed-in session's ID token
	const expired = "EXPIRED" // replaced by an expired ID token of that session
	tests := []struct {
		name   string
		params url.Values
		status int
	}{
		{"hint and registered URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {postLogout}, "state": {"s1"}}, http.StatusFound},
		{"hint, matching client_id", url.Values{"id_token_hint": {hint}, "client_id": {"skc_1"}, "post_logout_redirect_uri": {postLogout}}, http.StatusFound},
		{"hint alone", url.Values{"id_token_hint": {hint}}, http.StatusOK},
		{"expired hint of a live session", url.Values{"id_token_hint": {expired}, "post_logout_redirect_uri": {postLogout}}, http.StatusFound},
		{"bare request", url.Values{}, http.StatusOK},
		{"unregistered URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}}, http.StatusBadRequest},
		{"relative URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"/logged-out"}}, http.StatusBadRequest},
		{"URI with a query", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {postLogout + "?x=1"}}, http.StatusBadRequest},
		{"URI of another client", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://other.example/out"}}, http.StatusBadRequest},
		{"client_id not the token's", url.Values{"id_token_hint": {hint}, "client_id": {"skc_2"}}, http.StatusBadRequest},
		{"foreign token", url.Values{"id_token_hint": {foreign}, "post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest},
		{"garbage token", url.Values{"id_token_hint": {"a.b.c"}}, http.StatusBadRequest},
		{"client_id without hint", url.Values{"client_id": {"skc_1"}, "post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest},
		{"URI without hint", url.Values{"post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest},
		{"client_id alone", url.Values{"client_id": {"skc_1"}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tok := signIn(t, s, "ada@example.com")
			user := s.User("ada@example.com")
			q := url.Values{}
			for k, v := range tt.params {
				q[k] = v
			}
			switch q.Get("id_token_hint") {
			case hint:
				q.Set("id_token_hint", tok.IDToken)
			case expired:
				claims := claimsOf(t, tok.IDToken)
				claims["iat"], claims["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
				old, err := s.Sign(claims, "JWT")
				if err != nil {
					t.Fatal(err)
				}
				q.Set("id_token_hint", old)
			}
			before := len(s.ActiveSessions(user.ID))
			resp := logout(t, s, c, q)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			after := len(s.ActiveSessions(user.ID))
			if tt.status == http.StatusBadRequest {
				if resp.Header.Get("Location") != "" || after != before {
					t.Errorf("an error redirected (%q) or ended a session (%d -> %d)", resp.Header.Get("Location"), before, after)
				}
				return
			}
			if after != before-1 {
				t.Errorf("active sessions %d -> %d, want one ended", before, after)
			}
			if tt.status == http.StatusFound {
				loc, _ := resp.Location()
				if got := loc.Scheme + "://" + loc.Host + loc.Path; got != postLogout || loc.Query().Get("state") != q.Get("state") {
					t.Errorf("redirected to %v, want %s with state %q", loc, postLogout, q.Get("state"))
				}
			}
		})
	}
}

// TestEndSessionOptions runs the requests Scalekit documents no answer for
// under each reading the fake offers.
func TestEndSessionOptions(t *testing.T) {
	hintless := url.Values{"client_id": {"skc_1"}, "post_logout_redirect_uri": {postLogout}}
	tests := []struct {
		name    string
		cfg     scalekittest.Config
		revoked bool // the hint's session was revoked through the API first
		params  url.Values
		status  int
		endsOwn bool // the cookie's session ends
		wantLoc string
	}{
		{"hintless, default", scalekittest.Config{}, false, hintless, http.StatusBadRequest, false, ""},
		{"hintless, EndHintlessLogout", scalekittest.Config{HintlessLogout: scalekittest.EndHintlessLogout}, false, hintless, http.StatusOK, true, ""},
		{"hintless, RedirectHintlessLogout", scalekittest.Config{HintlessLogout: scalekittest.RedirectHintlessLogout}, false, hintless, http.StatusFound, true, postLogout},
		{"URI only, RedirectHintlessLogout", scalekittest.Config{HintlessLogout: scalekittest.RedirectHintlessLogout}, false, url.Values{"post_logout_redirect_uri": {postLogout}}, http.StatusFound, true, postLogout},
		{"unregistered URI, RedirectHintlessLogout", scalekittest.Config{HintlessLogout: scalekittest.RedirectHintlessLogout}, false, url.Values{"client_id": {"skc_1"}, "post_logout_redirect_uri": {"https://evil.example/"}}, http.StatusBadRequest, false, ""},
		{"ended hint, default", scalekittest.Config{}, true, url.Values{"post_logout_redirect_uri": {postLogout}}, http.StatusBadRequest, false, ""},
		{"ended hint, AcceptEndedSessionHint", scalekittest.Config{AcceptEndedSessionHint: true}, true, url.Values{"post_logout_redirect_uri": {postLogout}}, http.StatusFound, true, postLogout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.cfg)
			// The browser holds a second session of the same user; the hint
			// (when there is one) is the first session's.
			_, first := signIn(t, s, "ada@example.com")
			c, _ := signIn(t, s, "ada@example.com")
			q := url.Values{}
			for k, v := range tt.params {
				q[k] = v
			}
			if tt.revoked {
				sid := claimsOf(t, first.IDToken)["sid"].(string)
				if _, err := s.RevokeSession(sid); err != nil {
					t.Fatal(err)
				}
				q.Set("id_token_hint", first.IDToken)
			}
			user := s.User("ada@example.com")
			before := len(s.ActiveSessions(user.ID))
			resp := logout(t, s, c, q)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			if got := len(s.ActiveSessions(user.ID)); (got == before-1) != tt.endsOwn {
				t.Errorf("active sessions %d -> %d; want the cookie's session ended: %v", before, got, tt.endsOwn)
			}
			if loc := resp.Header.Get("Location"); loc != tt.wantLoc {
				t.Errorf("Location %q, want %q", loc, tt.wantLoc)
			}
		})
	}
}

// A logout without the server's cookie, such as a server-side call or a
// fetch(), ends nothing, even with a valid hint.
func TestEndSessionNeedsTheCookie(t *testing.T) {
	s := newServer(t, scalekittest.Config{})
	_, tok := signIn(t, s, "ada@example.com")
	resp := logout(t, s, userAgent(), url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {postLogout}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("got %d, want 302", resp.StatusCode)
	}
	if n := len(s.ActiveSessions(s.User("ada@example.com").ID)); n != 1 {
		t.Errorf("%d active sessions, want 1: the request carried no cookie", n)
	}
	reqs := s.LogoutRequests()
	if len(reqs) != 1 || reqs[0].HadCookie || reqs[0].EndedSession != "" || reqs[0].ClientID != "skc_1" {
		t.Errorf("recorded %+v", reqs)
	}
}

// TestLogoutNotifiesEveryApp signs one browser into three apps sharing one
// session. Logging out of one sends a logout token to each back-channel URI
// of all three, the app that asked included (redirects.mdx: "regardless of
// how the logout was initiated"), and a user.logout event to every webhook
// URL.
func TestLogoutNotifiesEveryApp(t *testing.T) {
	hooks := newReceiver(t)
	s := newServer(t, scalekittest.Config{WebhookURLs: []string{hooks.URL + "/hook/1", hooks.URL + "/hook/2"}})
	for _, id := range []string{"skc_2", "skc_3"} {
		err := s.AddClient(scalekittest.Client{ID: id, Secret: "secret", RedirectURIs: []string{callback},
			BackChannelLogoutURIs: []string{hooks.URL + "/bc/" + id + "/a", hooks.URL + "/bc/" + id + "/b"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddClient(scalekittest.Client{ID: "skc_1", Secret: "secret", RedirectURIs: []string{callback},
		PostLogoutRedirectURIs: []string{postLogout}, BackChannelLogoutURIs: []string{hooks.URL + "/bc/skc_1"}}); err != nil {
		t.Fatal(err)
	}
	c := userAgent()
	tok := exchange(t, s, authorize(t, s, c, "skc_1", "ada@example.com", nil))
	authorize(t, s, c, "skc_2", "", url.Values{"login_hint": nil})
	authorize(t, s, c, "skc_3", "", url.Values{"login_hint": nil})
	sid := claimsOf(t, tok.IDToken)["sid"].(string)
	if ses, _ := s.Session(sid); strings.Join(ses.Clients, ",") != "skc_1,skc_2,skc_3" {
		t.Fatalf("session clients %v, want all three apps on one session", ses.Clients)
	}

	resp := logout(t, s, c, url.Values{"id_token_hint": {tok.IDToken}, "post_logout_redirect_uri": {postLogout}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	got := hooks.paths()
	want := []string{"/bc/skc_1", "/bc/skc_2/a", "/bc/skc_2/b", "/bc/skc_3/a", "/bc/skc_3/b", "/hook/1", "/hook/2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("deliveries to %v, want %v", got, want)
	}
	for _, r := range hooks.requests() {
		if strings.HasPrefix(r.path, "/bc/") {
			claims := claimsOf(t, r.form.Get("logout_token"))
			if claims["sid"] != sid || claims["aud"].([]any)[0] != strings.Split(r.path, "/")[2] {
				t.Errorf("logout token to %s: %v", r.path, claims)
			}
		}
	}
	if ses, _ := s.Session(sid); ses.Status != scalekittest.StatusLogout {
		t.Errorf("status %q, want logout", ses.Status)
	}
}
