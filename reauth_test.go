// SPDX-License-Identifier: Apache-2.0

package logout_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/endsession/logout"
)

// After a logout with re-authentication asked, and after every "sign out
// everywhere", the next sign-in on that browser sends prompt=login, once; a
// plain logout, and other browsers, are left alone.
func TestReauthenticateAfterLogout(t *testing.T) {
	tests := []struct {
		name       string
		reauth     bool
		everywhere bool
		want       bool
	}{
		{"plain logout", false, false, false},
		{"ReauthenticateAfterLogout", true, false, true},
		{"sign out everywhere", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newHandler(t, newMiniStore(t), func(c *logout.Config) { c.ReauthenticateAfterLogout = tt.reauth })
			cookies := signIn(t, h, testSession())
			var endpoint http.Handler = h
			if tt.everywhere {
				endpoint = h.Everywhere()
			}
			resp := serve(endpoint, logoutRequest(http.MethodPost, cookies))
			marker, set := setCookies(resp)["__Host-session-reauth"]
			if set != tt.want {
				t.Fatalf("marker set = %v, want %v: %v", set, tt.want, resp.Header.Values("Set-Cookie"))
			}
			if !tt.want {
				return
			}
			for _, attr := range []string{"secure", "httponly"} {
				if _, ok := marker[attr]; !ok {
					t.Errorf("marker lacks %s: %v", attr, marker)
				}
			}
			if marker["path"] != "/" || marker["samesite"] != "Lax" || marker["max-age"] == "0" || marker["max-age"] == "" {
				t.Errorf("marker attributes %v", marker)
			}

			// The browser that signed out: its next sign-in asks again.
			login := httptest.NewRequest(http.MethodGet, testAppOrigin+"/login", nil)
			login.AddCookie(&http.Cookie{Name: "__Host-session-reauth", Value: "1"})
			if !h.PromptLogin(login) {
				t.Error("PromptLogin = false for the browser that signed out")
			}
			// Another browser is not affected.
			if h.PromptLogin(httptest.NewRequest(http.MethodGet, testAppOrigin+"/login", nil)) {
				t.Error("PromptLogin = true for a browser without the marker")
			}
			// Signing in clears the mark: only the first sign-in asks.
			rec := httptest.NewRecorder()
			if err := h.StartSession(rec, login, testSession()); err != nil {
				t.Fatal(err)
			}
			if got := setCookies(rec.Result())["__Host-session-reauth"]; got["max-age"] != "0" {
				t.Errorf("sign-in left the marker: %v", got)
			}
		})
	}
}

// An app built the way Scalekit's guide shows keeps its tokens in plain
// cookies named accessToken, refreshToken and idToken: with IDTokenCookie,
// logout still sends id_token_hint, and expires all three.
func TestScalekitGuideCookies(t *testing.T) {
	guide := []http.Cookie{
		{Name: "accessToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: "refreshToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
		{Name: "idToken", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode},
	}
	h, _ := newHandler(t, newCookieStore(t), func(c *logout.Config) {
		c.ClearCookies = guide
		c.IDTokenCookie = "idToken"
	})
	idToken := testSession().IDToken
	r := logoutRequest(http.MethodPost, nil)
	r.AddCookie(&http.Cookie{Name: "accessToken", Value: "ACCESS-TOKEN-abc"})
	r.AddCookie(&http.Cookie{Name: "refreshToken", Value: "REFRESH-TOKEN-xyz"})
	r.AddCookie(&http.Cookie{Name: "idToken", Value: idToken})
	resp := serve(h, r)
	if got := location(t, resp).Query().Get("id_token_hint"); got != idToken {
		t.Errorf("id_token_hint %q, want the idToken cookie's", got)
	}
	set := setCookies(resp)
	for _, c := range guide {
		if set[c.Name]["max-age"] != "0" {
			t.Errorf("%s not expired: %v", c.Name, set[c.Name])
		}
	}

	r = logoutRequest(http.MethodPost, nil)
	r.AddCookie(&http.Cookie{Name: "idToken", Value: "not a JWT"})
	if got := location(t, serve(h, r)).Query().Get("id_token_hint"); got != "" {
		t.Errorf("a malformed idToken cookie became id_token_hint %q", got)
	}
	if _, err := logout.New(t.Context(), logout.Config{Store: newCookieStore(t), EndSessionEndpoint: testEndSession, PostLogoutRedirectURI: testPostLogout, IDTokenCookie: "idToken"}); err == nil {
		t.Error("IDTokenCookie without a ClearCookies entry was accepted")
	}
}

// A sign-in after a logout takes back the short-lived signed-out signal with
// the re-authentication mark, so the user's other tabs are not told that
// the browser signed out when it has just signed in again.
func TestSignInClearsTheSignedOutSignal(t *testing.T) {
	h, _ := newHandler(t, newCookieStore(t), nil)
	resp := serve(h, logoutRequest(http.MethodPost, signIn(t, h, testSession())))
	var signal *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "-signed-out") && c.MaxAge > 0 {
			signal = c
		}
	}
	if signal == nil {
		t.Fatal("the logout set no signed-out signal")
	}
	r := httptest.NewRequest(http.MethodGet, testAppOrigin+"/callback", nil)
	r.AddCookie(&http.Cookie{Name: signal.Name, Value: signal.Value})
	rec := httptest.NewRecorder()
	if err := h.StartSession(rec, r, testSession()); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		noteSecret(c.Value)
	}
	if got := setCookies(rec.Result())[signal.Name]; got == nil || got["max-age"] != "0" {
		t.Errorf("the sign-in left the signed-out signal in place: %v", got)
	}
}
